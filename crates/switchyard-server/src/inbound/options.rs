//! The headers a client of any format may send to steer one request:
//!
//! - `x-switchyard-timeout-ms`: the request's deadline (never past the gateway's own);
//! - `x-switchyard-max-wait-ms`: how long it may wait for a spent key to free;
//! - `x-switchyard-provider`: the one provider it may be served by;
//! - `x-switchyard-provider-order`: comma-separated providers to try first, in that order
//!   (at most [`MAX_ORDER`], each configured and named once); the route's other providers
//!   come after them;
//! - `cache-control: no-cache` (or `no-store`): the response cache is neither read nor written;
//! - `x-switchyard-tags`: comma-separated tags for the routing rules (at most
//!   [`MAX_TAGS`] of at most [`MAX_TAG_BYTES`] bytes each).
//!
//! A value that cannot be used is refused with a 400 naming the header, never ignored.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, header};
use switchyard::{ProviderId, Router};
use switchyard_core::ChatRequest;

use crate::wire::WireError;

const TIMEOUT: HeaderName = HeaderName::from_static("x-switchyard-timeout-ms");
const MAX_WAIT: HeaderName = HeaderName::from_static("x-switchyard-max-wait-ms");
const PIN: HeaderName = HeaderName::from_static("x-switchyard-provider");
const TAGS: HeaderName = HeaderName::from_static("x-switchyard-tags");
const ORDER: HeaderName = HeaderName::from_static("x-switchyard-provider-order");

/// The most tags a request may carry.
pub(crate) const MAX_TAGS: usize = 16;
/// The longest tag, in bytes.
pub(crate) const MAX_TAG_BYTES: usize = 64;
/// The tag the router's rules read as a pin to one provider.
const PIN_TAG: &str = "provider:";
/// The tag the router's rules read as the request's provider order (`rules::ORDER_TAG`).
const ORDER_TAG: &str = "provider-order:";
/// The most providers a provider order may name.
pub(crate) const MAX_ORDER: usize = 8;

/// What a client asked for in its headers.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ClientOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_wait: Option<Duration>,
    /// `Some(false)` when the client bypasses the cache.
    pub(crate) cache: Option<bool>,
    /// Tags for the request, the provider pin among them.
    pub(crate) tags: Vec<String>,
}

impl ClientOptions {
    /// Reads the headers; providers are checked against `router`'s.
    pub(crate) fn read(headers: &HeaderMap, router: &Router) -> Result<Self, WireError> {
        let mut options = Self {
            timeout: millis(headers, &TIMEOUT)?,
            max_wait: millis(headers, &MAX_WAIT)?,
            ..Self::default()
        };
        let no_cache = headers.get_all(header::CACHE_CONTROL).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value.split(',').any(|directive| {
                    let directive = directive.trim();
                    directive.eq_ignore_ascii_case("no-cache")
                        || directive.eq_ignore_ascii_case("no-store")
                })
            })
        });
        if no_cache {
            options.cache = Some(false);
        }
        if let Some(value) = text(headers, &TAGS)? {
            for tag in value.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
                if options.tags.len() == MAX_TAGS {
                    return Err(WireError(format!("{TAGS}: more than {MAX_TAGS} tags")));
                }
                if tag.len() > MAX_TAG_BYTES {
                    return Err(WireError(format!(
                        "{TAGS}: a tag of {} bytes is longer than the {MAX_TAG_BYTES} accepted",
                        tag.len()
                    )));
                }
                options.tags.push(tag.to_owned());
            }
        }
        if let Some(provider) = text(headers, &PIN)? {
            options.tags.push(format!("{PIN_TAG}{}", provider.trim()));
        }
        if let Some(value) = text(headers, &ORDER)? {
            options.tags.push(format!("{ORDER_TAG}{}", value.trim()));
        }
        let providers = router.providers();
        for listed in options.tags.iter().filter_map(|tag| tag.strip_prefix(ORDER_TAG)) {
            check_order(listed, &providers)?;
        }
        for pinned in options.tags.iter().filter_map(|tag| tag.strip_prefix(PIN_TAG)) {
            if !providers.iter().any(|provider| provider.as_str() == pinned) {
                let valid: Vec<&str> = providers.iter().map(ProviderId::as_str).collect();
                return Err(WireError(format!(
                    "{PIN}: no provider {pinned:?} is configured (valid: {})",
                    valid.join(", ")
                )));
            }
        }
        Ok(options)
    }

    /// The request's deadline: the client's when it is shorter than the gateway's.
    pub(crate) fn timeout(&self, gateway: Option<Duration>) -> Option<Duration> {
        match (self.timeout, gateway) {
            (Some(client), Some(gateway)) => Some(client.min(gateway)),
            (client, gateway) => client.or(gateway),
        }
    }

    /// Adds the tags to `request`.
    pub(crate) fn tag(self, request: &mut ChatRequest) {
        request.tags.extend(self.tags);
    }
}

/// A provider order names between one and [`MAX_ORDER`] configured providers, each once.
fn check_order(listed: &str, providers: &[ProviderId]) -> Result<(), WireError> {
    let names: Vec<&str> = listed.split(',').map(str::trim).collect();
    if names.iter().any(|name| name.is_empty()) {
        return Err(WireError(format!(
            "{ORDER}: expected provider names separated by commas, none empty"
        )));
    }
    if names.len() > MAX_ORDER {
        return Err(WireError(format!("{ORDER}: more than {MAX_ORDER} providers")));
    }
    for (idx, name) in names.iter().enumerate() {
        if !providers.iter().any(|provider| provider.as_str() == *name) {
            let valid: Vec<&str> = providers.iter().map(ProviderId::as_str).collect();
            // The name is echoed only when short: it came from the client.
            let shown: String = name.chars().take(64).collect();
            return Err(WireError(format!(
                "{ORDER}: no provider {shown:?} is configured (valid: {})",
                valid.join(", ")
            )));
        }
        if names[..idx].contains(name) {
            return Err(WireError(format!("{ORDER}: provider {name} is named twice")));
        }
    }
    Ok(())
}

/// A header's value as text, if sent.
fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, WireError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    value
        .to_str()
        .map(Some)
        .map_err(|_| WireError(format!("{name}: the value is not visible ASCII text")))
}

/// A header of whole milliseconds, at least 1, cut to the router's longest deadline.
fn millis(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Duration>, WireError> {
    let Some(value) = text(headers, name)? else { return Ok(None) };
    match value.trim().parse::<u64>() {
        Ok(0) | Err(_) => {
            Err(WireError(format!("{name}: expected whole milliseconds, at least 1")))
        }
        Ok(millis) => Ok(Some(Duration::from_millis(millis).min(switchyard::MAX_TIMEOUT))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().expect("a header value"));
        }
        headers
    }

    #[test]
    fn durations_are_whole_milliseconds_cut_to_a_day() {
        let read = |value: &str| millis(&headers(&[("x-switchyard-timeout-ms", value)]), &TIMEOUT);
        assert_eq!(read("1500").expect("ok"), Some(Duration::from_millis(1500)));
        assert_eq!(read("99999999999999").expect("ok"), Some(switchyard::MAX_TIMEOUT));
        for bad in ["0", "-1", "1.5", "soon"] {
            let error = read(bad).expect_err(bad).to_string();
            assert!(error.starts_with("x-switchyard-timeout-ms: expected"), "{error}");
        }
        let client = ClientOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() };
        assert_eq!(client.timeout(Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(client.timeout(None), Some(Duration::from_secs(5)));
        assert_eq!(ClientOptions::default().timeout(None), None);
    }

    #[test]
    fn a_provider_order_names_configured_providers_once_and_at_most_eight() {
        let providers: Vec<ProviderId> =
            ["groq", "openai", "gemini"].into_iter().map(ProviderId::from).collect();
        assert!(check_order("groq, openai", &providers).is_ok());
        let error = |listed: &str| check_order(listed, &providers).expect_err(listed).to_string();
        assert_eq!(
            error("groq,mistral"),
            "x-switchyard-provider-order: no provider \"mistral\" is configured (valid: groq, openai, gemini)"
        );
        assert_eq!(error("groq,groq"), "x-switchyard-provider-order: provider groq is named twice");
        assert!(error("groq,,openai").contains("none empty"));
        let many = ["groq"; MAX_ORDER + 1].join(",");
        assert_eq!(error(&many), "x-switchyard-provider-order: more than 8 providers");
    }
}
