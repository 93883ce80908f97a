//! A test per setting of `[router]`, `[cache]`, `[probes]`, `tier`, the default daily reset,
//! `weight`, `prefer_provider` and `keys_env`: the value is read, and a bad one is refused
//! with its file and line.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::America::Los_Angeles;
use switchyard_quota::{DayBoundary, ModelMatch};

use super::super::build::{UpstreamLimits, build, keys, provider_quota};
use super::*;

const PROVIDER: &str = "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nkeys = [\"gsk_a\"]\nmodels = [\"m\"]\n";
const ROUTE: &str = "\n[[routes]]\nname = \"default\"\ntargets = [\"groq/m\"]\n";

/// The base provider and route (lines 1 to 10), then `extra` from line 11.
fn loaded(extra: &str) -> Result<Loaded, String> {
    Loaded::parse(Path::new("s.toml"), format!("{PROVIDER}{ROUTE}{extra}"))
        .map_err(|error| error.to_string())
}

fn config(extra: &str) -> Result<RouterConfig, String> {
    router_config(&loaded(extra)?, &UpstreamLimits::default()).map_err(|error| error.to_string())
}

/// Builds `text` whole, for the errors found only while building.
fn build_error(text: &str) -> String {
    let clock: Arc<dyn switchyard_core::Clock> = Arc::new(switchyard_core::ManualClock::default());
    let loaded = match Loaded::parse(Path::new("s.toml"), text.to_owned()) {
        Ok(loaded) => loaded,
        Err(error) => return error.to_string(),
    };
    match build(&loaded, &HashMap::new(), clock) {
        Ok(_) => String::new(),
        Err(error) => error.to_string(),
    }
}

#[test]
fn router_section_sets_retries_backoff_circuit_and_the_overload_cap() {
    let defaults = config("").expect("no [router]");
    assert_eq!(defaults.retries_same, 1);
    assert_eq!(defaults.max_in_flight, None);
    assert_eq!(defaults.backoff, Backoff::default());
    assert!(defaults.cache.is_none());
    let given = "[router]\nretries_same = 0\nmax_in_flight = 64\nwait_queue = 10\n[router.backoff]\nbase_secs = 0.5\nmax_secs = 4\njitter = 0.2\n[router.circuit]\nfailure_threshold = 3\nopen_secs = 20\nhalf_open_probes = 2\nramp_secs = 10\nramp_floor = 0.5\n";
    let config = config(given).expect("valid");
    assert_eq!(config.retries_same, 0);
    assert_eq!(config.max_in_flight, Some(64));
    assert_eq!(config.wait_queue, 10);
    assert_eq!(
        config.backoff,
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(4),
            stated_jitter: 0.2
        }
    );
    assert_eq!(
        config.circuit,
        CircuitConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(20),
            half_open_probes: 2,
            ramp_for: Duration::from_secs(10),
            ramp_floor: 0.5,
        }
    );
}

#[test]
fn router_section_values_out_of_range_name_their_line() {
    let error = |extra: &str| config(extra).expect_err(extra);
    assert_eq!(
        error("[router]\nretries_same = 11\n"),
        "s.toml:12: retries_same: expected a whole number from 0 to 10"
    );
    assert_eq!(
        error("[router]\nmax_in_flight = 0\n"),
        "s.toml:12: max_in_flight: expected a whole number from 1 to 1000000"
    );
    assert_eq!(
        error("[router]\nwait_queue = 2000000\n"),
        "s.toml:12: wait_queue: expected a whole number from 0 to 1000000"
    );
    assert_eq!(
        error("[router.backoff]\nbase_secs = 2\nmax_secs = 1\n"),
        "s.toml:13: max_secs: expected max_secs at least base_secs"
    );
    assert_eq!(
        error("[router.backoff]\njitter = 1.5\n"),
        "s.toml:12: jitter: expected a share from 0 to 1"
    );
    assert_eq!(
        error("[router.circuit]\nfailure_threshold = 0\n"),
        "s.toml:12: failure_threshold: expected a whole number from 1 to 1000"
    );
    assert_eq!(
        error("[router.circuit]\nramp_floor = 0\n"),
        "s.toml:12: ramp_floor: expected a share above 0 and at most 1"
    );
    assert_eq!(
        error("[router.circuit]\nopen_secs = -5\n"),
        "s.toml:12: open_secs: expected a positive number of seconds"
    );
    assert!(
        error("[router]\nretry = 1\n").starts_with("s.toml:12:1: retry: unknown field `retry`"),
        "an unknown field is refused"
    );
}

#[test]
fn cache_section_sizes_the_cache_and_a_caching_route_alone_gets_the_default() {
    let cache = config("[cache]\nmax_bytes = 1048576\nttl_secs = 30\n").expect("valid").cache;
    assert_eq!(cache, Some(CacheConfig { max_bytes: 1 << 20, ttl: Duration::from_secs(30) }));
    let text = format!(
        "{PROVIDER}\n[[routes]]\nname = \"default\"\ntargets = [\"groq/m\"]\ncache = true\n"
    );
    let loaded = Loaded::parse(Path::new("s.toml"), text).expect("parses");
    let cache = router_config(&loaded, &UpstreamLimits::default()).expect("valid").cache;
    assert_eq!(cache, Some(CacheConfig::default()));
    assert_eq!(
        config("[cache]\nttl_secs = 0\n").expect_err("zero ttl"),
        "s.toml:12: ttl_secs: expected a positive number of seconds"
    );
    assert_eq!(
        config("[cache]\nmax_bytes = 10\n").expect_err("tiny cache"),
        "s.toml:12: max_bytes: expected a whole number from 1024 to 68719476736"
    );
}

#[test]
fn probes_run_one_task_per_interval_over_the_providers_that_want_them() {
    let providers = "[[providers]]\nname = \"a\"\nkind = \"openai\"\npreset = \"groq\"\nmodels = [\"m\"]\n[[providers]]\nname = \"b\"\nkind = \"openai\"\npreset = \"groq\"\nmodels = [\"m\"]\nprobe_interval_secs = 30\n[[providers]]\nname = \"c\"\nkind = \"openai\"\npreset = \"groq\"\nmodels = [\"m\"]\nprobe = false\n";
    let route = "[[routes]]\nname = \"r\"\ntargets = [\"a/m\"]\n";
    let read = |probes_section: &str| -> Result<Vec<(u64, Vec<String>, u64)>, String> {
        let text = format!("{providers}{route}{probes_section}");
        let loaded = Loaded::parse(Path::new("s.toml"), text).map_err(|e| e.to_string())?;
        let configs = probes(&loaded).map_err(|e| e.to_string())?;
        Ok(configs
            .into_iter()
            .map(|config| {
                let names = config.providers.iter().map(|p| p.as_str().to_owned()).collect();
                (config.interval.as_secs(), names, config.timeout.as_secs())
            })
            .collect())
    };
    // Without [probes], only the provider that asked is probed.
    assert_eq!(read("").expect("valid"), [(30, vec!["b".to_owned()], 30)]);
    assert_eq!(
        read("[probes]\ninterval_secs = 60\ntimeout_secs = 5\n").expect("valid"),
        [(30, vec!["b".to_owned()], 5), (60, vec!["a".to_owned()], 5)]
    );
    assert_eq!(
        read("[probes]\nenabled = false\n").expect("valid"),
        [(30, vec!["b".to_owned()], 30)]
    );
    assert_eq!(
        read("[probes]\ninterval_secs = 5\n").expect_err("too often"),
        "s.toml:22: interval_secs: expected at least 10 seconds (each round spends a request of every key)"
    );
}

#[test]
fn a_route_prefers_only_a_provider_of_its_targets_and_weights_are_bounded() {
    let route = |extra: &str| {
        format!("{PROVIDER}\n[[routes]]\nname = \"default\"\ntargets = [\"groq/m\"]\n{extra}")
    };
    let loaded =
        Loaded::parse(Path::new("s.toml"), route("prefer_provider = \"groq\"\n")).expect("parses");
    assert_eq!(
        prefer_provider(&loaded, &loaded.file.routes[0]).expect("valid"),
        Some(ProviderId::from("groq"))
    );
    assert_eq!(
        build_error(&route("prefer_provider = \"openai\"\n")),
        "s.toml:11: prefer_provider: expected a provider of the route's targets: groq"
    );
    let weighted = PROVIDER.replace(
        "models = [\"m\"]\n",
        "models = [\"m\", \"n\"]\nweight = 3\n[providers.per_model.n]\nweight = 7\n",
    );
    let loaded = Loaded::parse(Path::new("s.toml"), format!("{weighted}{ROUTE}")).expect("parses");
    let section = &loaded.file.providers[0];
    assert_eq!(weight(&loaded, section, "m").expect("valid"), Some(3));
    assert_eq!(weight(&loaded, section, "n").expect("valid"), Some(7));
    let zero = PROVIDER.replace("models = [\"m\"]\n", "models = [\"m\"]\nweight = 0\n");
    assert_eq!(
        build_error(&format!("{zero}{ROUTE}")),
        "s.toml:7: weight: expected a whole number from 1 to 1000"
    );
}

fn quota(provider: &str) -> Result<Option<ProviderQuota>, String> {
    let text = format!("{provider}\n[[routes]]\nname = \"r\"\ntargets = [\"p/m\"]\n");
    let loaded = Loaded::parse(Path::new("s.toml"), text).map_err(|e| e.to_string())?;
    provider_quota(&loaded, &loaded.file.providers[0]).map_err(|e| e.to_string())
}

#[test]
fn a_tier_fills_limits_from_the_preset_and_given_limits_win_field_by_field() {
    let groq = "[[providers]]\nname = \"p\"\nkind = \"openai\"\npreset = \"groq\"\nmodels = [\"llama-3.3-70b-versatile\", \"m\"]\ntier = \"groq-free\"\n";
    let filled = quota(groq).expect("valid").expect("limits");
    let expected = presets::groq_free("p");
    assert_eq!(filled.day, DayBoundary::Rolling);
    assert_eq!(filled.models.len(), expected.models.len());
    for (got, want) in filled.models.iter().zip(&expected.models) {
        assert_eq!(got.limits, want.limits);
    }
    let overridden = quota(&format!("{groq}limits = {{ requests_per_minute = 5 }}\n"))
        .expect("valid")
        .expect("limits");
    let llama = overridden
        .models
        .iter()
        .find(|rule| rule.models == ModelMatch::Exact("llama-3.3-70b-versatile".into()))
        .expect("the preset's rule");
    let preset_llama = &expected.models[0].limits;
    assert_eq!(llama.limits[0], Limit::per_minute(5), "the minute limit is the file's");
    assert_eq!(llama.limits[1..], preset_llama[1..], "the other limits stay the preset's");
    // A model the preset does not know gets the file's limits.
    assert_eq!(
        overridden.models.last().map(|rule| (&rule.models, &rule.limits)),
        Some((&ModelMatch::Any, &vec![Limit::per_minute(5)]))
    );
    let error = quota(&groq.replace("groq-free", "groq-pro")).expect_err("unknown tier");
    assert_eq!(
        error,
        "s.toml:6: tier: unknown tier; expected one of groq-free, gemini-free, openrouter-free, openrouter-free-credits"
    );
}

#[test]
fn a_gemini_providers_day_ends_at_midnight_in_los_angeles_unless_reset_says_otherwise() {
    let gemini = "[[providers]]\nname = \"p\"\nkind = \"gemini\"\nmodels = [\"m\"]\nlimits = { requests_per_day = 10 }\n";
    let pacific = quota(gemini).expect("valid").expect("limits");
    assert_eq!(pacific.day, DayBoundary::Midnight(Los_Angeles));
    assert_eq!(pacific.models[0].limits, [Limit::requests_per_day(10, Los_Angeles)]);
    let utc = quota(&format!("{gemini}reset = \"00:00 UTC\"\n")).expect("valid").expect("limits");
    assert_eq!(utc.day, DayBoundary::Midnight(Tz::UTC));
    assert_eq!(utc.models[0].limits, [Limit::requests_per_day(10, Tz::UTC)]);
    // Without limits the zone still says when a day's 429 ends.
    let bare = quota("[[providers]]\nname = \"p\"\nkind = \"gemini\"\nmodels = [\"m\"]\n")
        .expect("valid")
        .expect("a day boundary");
    assert_eq!((bare.day, bare.models.len()), (DayBoundary::Midnight(Los_Angeles), 0));
    // Other kinds keep a rolling day.
    let openai = gemini.replace("kind = \"gemini\"", "kind = \"openai\"");
    let rolling = quota(&openai).expect("valid").expect("limits");
    assert_eq!(rolling.day, DayBoundary::Rolling);
    assert_eq!(rolling.models[0].limits, [Limit::requests_per_day(10, Tz::UTC)]);
    // The gemini-free tier with `reset` moves the preset's days to that zone.
    let tier = "[[providers]]\nname = \"p\"\nkind = \"gemini\"\nmodels = [\"gemini-2.0-flash\"]\ntier = \"gemini-free\"\nreset = \"00:00 UTC\"\n";
    let moved = quota(tier).expect("valid").expect("limits");
    assert_eq!(moved.day, DayBoundary::Midnight(Tz::UTC));
    assert!(
        moved
            .models
            .iter()
            .flat_map(|rule| &rule.limits)
            .all(|limit| limit.window != Window::Day(Los_Angeles)),
        "{moved:?}"
    );
}

fn key_ids(keys_env: &str, vars: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let text = format!(
        "[[providers]]\nname = \"gemini\"\nkind = \"gemini\"\nmodels = [\"m\"]\nkeys_env = \"{keys_env}\"\n{ROUTE}"
    );
    let loaded = Loaded::parse(Path::new("s.toml"), text).expect("parses");
    let vars: HashMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let mut warnings = Vec::new();
    let credentials = keys(&loaded, &loaded.file.providers[0], &vars, &mut warnings).expect("keys");
    (credentials.iter().map(|c| c.id().as_str().to_owned()).collect(), warnings)
}

#[test]
fn keys_env_splits_comma_lists_and_numbers_variables_naturally() {
    let (ids, warnings) = key_ids("GEMINI_KEYS", &[("GEMINI_KEYS", "k1, k2,k3"), ("OTHER", "x")]);
    assert_eq!(ids, ["GEMINI_KEYS-1", "GEMINI_KEYS-2", "GEMINI_KEYS-3"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let (ids, warnings) = key_ids("GEMINI_KEYS", &[("GEMINI_KEYS", "k1,,k1")]);
    assert_eq!(ids, ["GEMINI_KEYS-1"]);
    assert_eq!(warnings.len(), 2, "an empty item and a repeat: {warnings:?}");
    let numbered = [
        ("KEY_10", "s10"),
        ("KEY_2", "s2"),
        ("KEY_1", "s1"),
        ("KEY", "s0"),
        ("KEY_9", "s9"),
        ("KEY_11", "a,b"),
    ];
    let (ids, _) = key_ids("KEY*", &numbered);
    assert_eq!(ids, ["KEY", "KEY_1", "KEY_2", "KEY_9", "KEY_10", "KEY_11-1", "KEY_11-2"]);
    let message = build_error(&format!(
        "[[providers]]\nname = \"gemini\"\nkind = \"gemini\"\nmodels = [\"m\"]\nkeys_env = \"A-B\"\n{}",
        ROUTE.replace("groq/m", "gemini/m")
    ));
    assert_eq!(
        message,
        "s.toml:5: keys_env: expected a variable name, or a prefix ending in `*`, like GROQ_API_KEY*"
    );
}

#[test]
fn natural_order_compares_numbers_as_numbers() {
    let mut names = vec!["K_10", "K_2", "K_02x", "K_1", "K", "K_b", "K_a10", "K_a9"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(names, ["K", "K_1", "K_2", "K_02x", "K_10", "K_a9", "K_a10", "K_b"]);
    assert_eq!(natural_cmp("K_007", "K_7"), Ordering::Equal);
}
