//! `[telemetry]`: OpenTelemetry traces, exported over OTLP/HTTP when `otlp_endpoint` is set
//! (after `${VAR}` expansion: `otlp_endpoint = "${OTEL_ENDPOINT:-}"` leaves them off unless the
//! variable is set). Read when the gateway starts; a reload keeps the running exporter.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use switchyard_server::TelemetryConfig;
use toml::Spanned;

use super::{ConfigError, Loaded};

/// The longest an export may take: the exporter's thread waits that long at most.
const MAX_EXPORT_TIMEOUT_SECS: f64 = 300.0;

/// `[telemetry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetrySection {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); traces are off without.
    pub(crate) otlp_endpoint: Option<Spanned<String>>,
    /// The `service.name` of the spans (default `switchyard`).
    pub(crate) service_name: Option<Spanned<String>>,
    /// The share of requests traced, 0 to 1 (default 1).
    pub(crate) sample_ratio: Option<Spanned<f64>>,
    /// How long one export may take (default 10).
    pub(crate) export_timeout_secs: Option<Spanned<f64>>,
}

/// The exporter's settings, or `None` when `[telemetry]` sets no endpoint.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the line and field of a bad value.
pub(crate) fn telemetry_settings(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
) -> Result<Option<TelemetryConfig>, ConfigError> {
    let Some(section) = &loaded.file.telemetry else { return Ok(None) };
    let Some(endpoint) = &section.otlp_endpoint else { return Ok(None) };
    let otlp_endpoint = loaded.expand(endpoint, "otlp_endpoint", vars)?;
    if otlp_endpoint.is_empty() {
        return Ok(None);
    }
    if let Err(error) = switchyard_server::traces_url(&otlp_endpoint) {
        let message = match error {
            switchyard_server::TelemetryError::Endpoint { reason } => reason,
            other => other.to_string(),
        };
        return Err(loaded.invalid(endpoint.span(), "otlp_endpoint", message));
    }
    let mut config = TelemetryConfig { otlp_endpoint, ..TelemetryConfig::default() };
    if let Some(name) = &section.service_name {
        if name.get_ref().trim().is_empty() {
            return Err(loaded.invalid(name.span(), "service_name", "expected a name"));
        }
        config.service_name.clone_from(name.get_ref());
    }
    if let Some(ratio) = &section.sample_ratio {
        let given = *ratio.get_ref();
        if !(0.0..=1.0).contains(&given) {
            return Err(loaded.invalid(
                ratio.span(),
                "sample_ratio",
                "expected a share of requests from 0 to 1",
            ));
        }
        config.sample_ratio = given;
    }
    if let Some(secs) = &section.export_timeout_secs {
        let given = *secs.get_ref();
        config.export_timeout = Duration::try_from_secs_f64(given)
            .ok()
            .filter(|timeout| !timeout.is_zero() && given <= MAX_EXPORT_TIMEOUT_SECS)
            .ok_or_else(|| {
                loaded.invalid(
                    secs.span(),
                    "export_timeout_secs",
                    format!(
                        "expected a positive number of seconds, at most {MAX_EXPORT_TIMEOUT_SECS}"
                    ),
                )
            })?;
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn settings(text: &str, vars: &[(&str, &str)]) -> Result<Option<TelemetryConfig>, String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        let loaded =
            Loaded::parse(Path::new("s.toml"), text.to_owned()).map_err(|e| e.to_string())?;
        telemetry_settings(&loaded, &vars).map_err(|error| error.to_string())
    }

    #[test]
    fn telemetry_is_off_without_an_endpoint() {
        assert_eq!(settings("", &[]), Ok(None));
        assert_eq!(settings("[telemetry]\nservice_name = \"gw\"\n", &[]), Ok(None));
        assert_eq!(settings("[telemetry]\notlp_endpoint = \"${OTEL:-}\"\n", &[]), Ok(None));
    }

    #[test]
    fn telemetry_settings_are_read() {
        let text = "[telemetry]\notlp_endpoint = \"${OTEL}\"\nservice_name = \"gw-eu\"\nsample_ratio = 0.25\nexport_timeout_secs = 2.5\n";
        let config = settings(text, &[("OTEL", "http://collector:4318")]).expect("valid");
        assert_eq!(
            config,
            Some(TelemetryConfig {
                otlp_endpoint: "http://collector:4318".to_owned(),
                service_name: "gw-eu".to_owned(),
                sample_ratio: 0.25,
                export_timeout: Duration::from_millis(2500),
            })
        );
    }

    #[test]
    fn bad_telemetry_values_name_their_line() {
        let error = |text: &str| settings(text, &[]).expect_err("refused");
        assert_eq!(
            error("# traces\n[telemetry]\notlp_endpoint = \"collector:4317\"\n"),
            "s.toml:3: otlp_endpoint: expected an http:// or https:// URL (OTLP over HTTP, port 4318)"
        );
        let leaked = error("[telemetry]\notlp_endpoint = \"https://u:hunter2@otel.example\"\n");
        assert!(leaked.starts_with("s.toml:2: otlp_endpoint: credentials"), "{leaked}");
        assert!(!leaked.contains("hunter2"), "a credential in an error: {leaked}");
        let base = "[telemetry]\notlp_endpoint = \"http://c:4318\"\n";
        assert_eq!(
            error(&format!("{base}sample_ratio = 1.5\n")),
            "s.toml:3: sample_ratio: expected a share of requests from 0 to 1"
        );
        assert_eq!(
            error(&format!("{base}service_name = \" \"\n")),
            "s.toml:3: service_name: expected a name"
        );
        assert!(
            error(&format!("{base}export_timeout_secs = 0.0\n"))
                .starts_with("s.toml:3: export_timeout_secs: expected a positive number")
        );
        assert!(
            error(&format!("{base}capture = true\n")).starts_with("s.toml:3:"),
            "unknown fields are refused"
        );
    }
}
