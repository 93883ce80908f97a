//! The cascades users describe, across providers that speak different wire formats.

use std::sync::Arc;
use std::time::Duration;

use switchyard::{RouterError, Skip, StrategyKind};
use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_core::{Clock, KeyId, ManualClock, Provider, ProviderId};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::{
    AnthropicWire, Failure, Fault, FaultRule, GeminiWire, MockUpstream, Unit, Window,
};
use switchyard_openai::Preset;
use switchyard_quota::{QuotaConfig, QuotaGroup};

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request};

fn shared(clock: &ManualClock) -> Arc<dyn Clock> {
    Arc::new(clock.clone())
}

async fn gemini(
    clock: &ManualClock,
    keys: Vec<switchyard_mock::KeyScript>,
) -> (MockUpstream, Arc<dyn Provider>) {
    let mock = MockUpstream::builder(GeminiWire)
        .clock(clock.clone())
        .time_zone(chrono_tz::America::Los_Angeles)
        .keys(keys)
        .models(["gemini-2.0-flash"])
        .start()
        .await
        .expect("gemini mock starts");
    let config =
        GeminiConfig { base_url: format!("http://{}", mock.addr()), ..GeminiConfig::new("gemini") };
    let provider = Gemini::try_new(config, shared(clock)).expect("gemini adapter");
    (mock, Arc::new(provider))
}

async fn anthropic(
    clock: &ManualClock,
    keys: Vec<switchyard_mock::KeyScript>,
) -> (MockUpstream, Arc<dyn Provider>) {
    let mock = MockUpstream::builder(AnthropicWire)
        .clock(clock.clone())
        .keys(keys)
        .models(["claude-3-5-haiku-latest"])
        .start()
        .await
        .expect("anthropic mock starts");
    let config = AnthropicConfig {
        base_url: format!("http://{}", mock.addr()),
        ..AnthropicConfig::new("anthropic")
    };
    let provider = Anthropic::try_new(config, shared(clock)).expect("anthropic adapter");
    (mock, Arc::new(provider))
}

#[tokio::test]
async fn gemini_keys_spent_for_the_day_fall_to_openai_then_anthropic_then_quota_exceeded() {
    let clock = ManualClock::default();
    let (gemini_mock, gemini) =
        gemini(&clock, vec![key("g1").requests_per_day(1), key("g2").requests_per_day(1)]).await;
    let openai_mock = openai_mock(&clock, vec![key("o1").requests_per_day(1)]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &openai_mock, &clock);
    let (anthropic_mock, anthropic) = anthropic(&clock, vec![key("a1").requests_per_day(1)]).await;
    let builder = builder(&clock, QuotaConfig::default())
        .provider(gemini)
        .provider(openai)
        .provider(anthropic);
    let builder = credentials(credentials(builder, "gemini", &["g1", "g2"]), "openai", &["o1"]);
    let router = credentials(builder, "anthropic", &["a1"])
        .route(
            "default",
            StrategyKind::Priority,
            ["gemini/gemini-2.0-flash", "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"],
        )
        .build()
        .expect("router builds");

    let mut served = Vec::new();
    for _ in 0..4 {
        let answer = router.chat("default", &request()).await.expect("served");
        served.push(format!("{}:{}", answer.served_by.provider, answer.served_by.key));
    }
    assert_eq!(served, ["gemini:g1", "gemini:g2", "openai:o1", "anthropic:a1"]);
    // Each key was sent at most one request over its quota: the one that said so.
    for id in ["g1", "g2"] {
        assert!(gemini_mock.counts(id).expect("gemini key").rate_limited <= 1);
    }

    let error = router.chat("default", &request()).await.expect_err("everything spent");
    let RouterError::QuotaExceeded { n_keys, earliest_reset, .. } = &error else {
        panic!("expected QUOTA_EXCEEDED, got {error}");
    };
    assert_eq!(*n_keys, 4);
    assert!(earliest_reset.expect("a reset is known") > clock.utc());
    // Gemini's daily quota is exhausted until midnight in Los Angeles, not merely cooling.
    let status = router
        .ledger()
        .status(&switchyard_core::Candidate::new("gemini", "g1", "gemini-2.0-flash"))
        .await
        .expect("status");
    assert_eq!(status.state.as_str(), "exhausted", "{status:?}");
    assert!(anthropic_mock.counts("a1").expect("a1").served == 1);
}

#[tokio::test]
async fn groq_key_1_then_key_2_then_mistral_then_gemini() {
    let clock = ManualClock::default();
    let groq_mock = openai_mock(
        &clock,
        vec![key("q1").requests_per_minute(1), key("q2").requests_per_minute(1)],
    )
    .await;
    let groq = openai_provider("groq", Preset::Groq, &groq_mock, &clock);
    let mistral_mock = openai_mock(&clock, vec![key("m1").requests_per_minute(1)]).await;
    let mistral = openai_provider("mistral", Preset::Mistral, &mistral_mock, &clock);
    let (_gemini_mock, gemini) = gemini(&clock, vec![key("g1")]).await;
    let builder =
        builder(&clock, QuotaConfig::default()).provider(groq).provider(mistral).provider(gemini);
    let builder = credentials(credentials(builder, "groq", &["q1", "q2"]), "mistral", &["m1"]);
    let router = credentials(builder, "gemini", &["g1"])
        .route(
            "free",
            StrategyKind::Priority,
            [
                "groq/llama-3.3-70b-versatile",
                "mistral/mistral-small-latest",
                "gemini/gemini-2.0-flash",
            ],
        )
        .build()
        .expect("router builds");

    let mut served = Vec::new();
    for _ in 0..5 {
        let answer = router.chat("free", &request()).await.expect("served");
        served.push(answer.served_by.key.to_string());
    }
    assert_eq!(served, ["q1", "q2", "m1", "g1", "g1"]);
    // A minute later the free keys are whole again and the cascade starts over.
    clock.advance(Duration::from_secs(61));
    let answer = router.chat("free", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "q1");
}

#[tokio::test]
async fn keys_of_one_quota_group_cool_together() {
    let clock = ManualClock::default();
    let groq_mock = openai_mock(&clock, vec![key("q1"), key("q2")]).await;
    groq_mock.inject(
        FaultRule::once(Fault::Fail(Failure::RateLimited {
            window: Window::Minute,
            unit: Unit::Tokens,
            limit: 12_000,
            used: 11_990,
            requested: 400,
            retry_after: Duration::from_secs(30),
        }))
        .for_key("q1"),
    );
    let groq = openai_provider("groq", Preset::Groq, &groq_mock, &clock);
    let mistral_mock = openai_mock(&clock, vec![key("m1")]).await;
    let mistral = openai_provider("mistral", Preset::Mistral, &mistral_mock, &clock);
    let quota = QuotaConfig {
        groups: vec![QuotaGroup {
            name: "org-1".into(),
            provider: ProviderId::new("groq"),
            keys: vec![KeyId::new("q1"), KeyId::new("q2")],
        }],
        ..QuotaConfig::default()
    };
    let builder =
        credentials(builder(&clock, quota).provider(groq).provider(mistral), "groq", &["q1", "q2"]);
    let router = credentials(builder, "mistral", &["m1"])
        .route(
            "free",
            StrategyKind::Priority,
            ["groq/llama-3.3-70b-versatile", "mistral/mistral-small-latest"],
        )
        .build()
        .expect("router builds");

    let answer = router.chat("free", &request()).await.expect("served");
    // q1's 429 cooled the whole organization: q2 was skipped, not called, and Mistral served.
    assert_eq!(answer.served_by.key.as_str(), "m1");
    assert_eq!(
        groq_mock.counts("q2").expect("q2").requests,
        0,
        "rotating inside one group gains nothing"
    );
    let q2 = answer
        .trace
        .considered
        .iter()
        .find(|entry| entry.candidate.key.as_str() == "q2")
        .expect("q2 considered");
    assert!(matches!(&q2.skipped, Some(Skip::Quota { kind: "cooling_down", .. })), "{q2:?}");
    clock.advance(Duration::from_secs(31));
    let answer = router.chat("free", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "q1", "the group is back after its cooldown");
}
