//! Export, import and the JSON file store: the users' shape, exact restore, and bad input that
//! is refused without losing anything.

use std::time::Duration;

use switchyard_core::{ErrorKind, LimitScope, ManualClock};
use switchyard_score::{JsonFileStore, ScoreError, Scorer, StatsSnapshot, StatsStore, Status};

use crate::support::{candidate, failure, scorer, success};

fn busy_scorer(clock: &ManualClock) -> switchyard_score::AdaptiveScorer {
    let scorer = scorer(clock);
    for round in 0..30u64 {
        scorer.record(&candidate(0), success(800 + round * 10));
        scorer.record(&candidate(1), failure(ErrorKind::ServerError, 2_000));
        scorer.record(&candidate(2), success(1_500));
        clock.advance(Duration::from_secs(1));
    }
    scorer.record_quality(&candidate(0), 0.9).expect("in range");
    scorer.record(&candidate(2), failure(ErrorKind::RateLimited { scope: LimitScope::Minute }, 30));
    clock.advance(Duration::from_secs(5));
    scorer
}

#[test]
fn export_has_the_users_shape() {
    let clock = ManualClock::default();
    let scorer = busy_scorer(&clock);
    let json: serde_json::Value =
        serde_json::from_str(&scorer.export().to_json()).expect("export is JSON");
    let healthy = &json["providers"]["provider-0"]["keys"]["key-0"]["models"]["model-0"];
    assert_eq!(healthy["status"], "healthy");
    assert_eq!(healthy["successCount"], 30);
    assert_eq!(healthy["failCount"], 0);
    assert_eq!(healthy["totalTokensUsed"], 3_000);
    assert_eq!(healthy["avgResponseTime"], 945.0); // mean of 800, 810, ..., 1090
    assert_eq!(healthy["lastSuccess"], "2026-01-15T12:00:29Z");
    assert!(healthy["lastError"].is_null());
    assert!(healthy["qualityScore"].as_f64().is_some_and(|quality| quality > 0.75));
    assert!(healthy["state"]["successes"].as_f64().is_some_and(|count| count > 29.0));
    let failing = &json["providers"]["provider-1"]["keys"]["key-1"]["models"]["model-1"];
    assert_eq!(failing["status"], "failing");
    assert_eq!(failing["lastErrorKind"]["kind"], "server_error");
    assert_eq!(failing["lastError"], "2026-01-15T12:00:29Z");
    let limited = &json["providers"]["provider-2"]["keys"]["key-2"]["models"]["model-0"];
    assert_eq!(limited["status"], "healthy", "one rate limit says little");
    assert_eq!(limited["lastErrorKind"]["kind"], "rate_limited");
}

#[test]
fn a_file_store_keeps_scores_across_a_restart() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut store = JsonFileStore::new(directory.path().join("scores.json"));
    let clock = ManualClock::default();
    let before = busy_scorer(&clock);
    assert_eq!(store.load().expect("missing file is no error"), None);
    assert_eq!(store.save_from(&before).expect("saves"), 3);

    let after = scorer(&clock);
    assert_eq!(store.restore_into(&after).expect("restores"), 3);
    let candidates: Vec<_> = (0..4).map(candidate).collect();
    assert_eq!(before.score(&candidates), after.score(&candidates));
    assert!(!directory.path().join("scores.json.tmp").exists(), "the temporary file was renamed");
}

#[test]
fn a_damaged_file_is_a_json_error() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("scores.json");
    std::fs::write(&path, "{\"providers\": [").expect("write");
    let error = JsonFileStore::new(&path).load().expect_err("damaged");
    assert!(matches!(error, ScoreError::Json(_)), "{error:?}");
}

#[test]
fn a_store_that_cannot_write_names_the_file() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("no-such-dir").join("scores.json");
    let error = JsonFileStore::new(&path).save(&StatsSnapshot::default()).expect_err("no dir");
    assert!(matches!(&error, ScoreError::File { action: "write", .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-dir"), "{error}");
}

fn state_of<'a>(
    snapshot: &'a mut StatsSnapshot,
    candidate: &switchyard_core::Candidate,
) -> &'a mut switchyard_score::ExactState {
    snapshot
        .providers
        .get_mut(&candidate.provider)
        .and_then(|provider| provider.keys.get_mut(&candidate.key))
        .and_then(|key| key.models.get_mut(&candidate.model))
        .and_then(|model| model.state.as_mut())
        .expect("exported with state")
}

#[test]
fn a_bad_snapshot_is_refused_whole() {
    let clock = ManualClock::default();
    let scorer = busy_scorer(&clock);
    let candidates: Vec<_> = (0..4).map(candidate).collect();
    let scores = scorer.score(&candidates);
    let mut snapshot = scorer.export();
    // Candidate 0 changes validly, candidate 2 is broken: neither may land.
    let (c0, c2) = (candidate(0), candidate(2));
    state_of(&mut snapshot, &c0).failures = 25.0;
    state_of(&mut snapshot, &c2).successes = -1.0;
    let error = scorer.import(&snapshot).expect_err("negative count");
    match &error {
        ScoreError::InvalidSnapshot { candidate, field, .. } => {
            assert_eq!(candidate, &c2);
            assert_eq!(*field, "state.successes");
        }
        other => panic!("expected InvalidSnapshot, got {other:?}"),
    }
    assert!(error.to_string().contains("key-2"), "{error}");
    assert_eq!(scorer.score(&candidates), scores, "nothing was imported");
}

#[test]
fn a_file_from_another_tool_imports_from_its_counts() {
    let json = r#"{
      "providers": {
        "groq": { "keys": { "groq-1": { "models": { "llama-3.3-70b-versatile": {
          "status": "active", "avgResponseTime": 900, "successCount": 95, "failCount": 5,
          "totalTokensUsed": 120000, "qualityScore": 0.8,
          "lastSuccess": "2026-01-15T11:59:00Z", "lastError": "2026-01-15T11:00:00Z"
        }}}}},
        "gemini": { "keys": { "g1": { "models": { "gemini-2.0-flash": {
          "avgResponseTime": 2500, "successCount": 10, "failCount": 90,
          "lastSuccess": "2026-01-15T08:00:00Z", "lastError": "2026-01-15T11:58:00Z"
        }}}}}
      }
    }"#;
    // "active" is another tool's status word: status is derived, so it is ignored.
    let snapshot = StatsSnapshot::from_json(json).expect("users' shape reads");
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    scorer.import(&snapshot).expect("imports");
    let groq = switchyard_core::Candidate::new("groq", "groq-1", "llama-3.3-70b-versatile");
    let gemini = switchyard_core::Candidate::new("gemini", "g1", "gemini-2.0-flash");
    let scores = scorer.score(&[groq.clone(), gemini.clone()]);
    assert!(scores[0] > scores[1], "{scores:?}");
    let exported = scorer.export();
    let model = &exported.providers[&groq.provider].keys[&groq.key].models[&groq.model];
    assert_eq!(model.success_count, 95);
    assert_eq!(model.total_tokens_used, 120_000);
    assert_eq!(model.avg_response_time, Some(900.0));
    assert_eq!(model.status, Status::Healthy);
    let model = &exported.providers[&gemini.provider].keys[&gemini.key].models[&gemini.model];
    assert_eq!(model.status, Status::Failing);
}

#[test]
fn a_newer_snapshot_version_is_refused() {
    let error = StatsSnapshot::from_json(r#"{"version": 2, "providers": {}}"#).expect_err("newer");
    assert!(matches!(error, ScoreError::UnsupportedVersion(2)), "{error:?}");
}

#[test]
fn quality_outside_0_and_1_is_refused_and_changes_nothing() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    for value in [-0.1, 1.5, f64::NAN] {
        let error = scorer.record_quality(&candidate(0), value).expect_err("out of range");
        assert!(matches!(error, ScoreError::QualityOutOfRange { .. }), "{error:?}");
        assert!(error.to_string().contains("key-0"), "{error}");
    }
    assert!(scorer.is_empty());
}
