//! The `Host` check of a gateway without client tokens. Such a gateway is meant for the
//! local machine; a web page the operator visits could still reach it from the browser, by
//! a form post or by DNS rebinding (a name of the attacker's that resolves to 127.0.0.1).
//! The browser then sends the page's host name in `Host`, never the gateway's: so only the
//! loopback names of the listening address, and the names the operator allows, pass.

use std::net::{IpAddr, SocketAddr};

/// Whether `given` (the `Host` header's bytes, if any) names this gateway.
///
/// A request without `Host` passes: HTTP/1.1 requires it and every browser sends it, so its
/// absence means a local tool speaking HTTP/1.0, not a web page.
pub(crate) fn allowed(given: Option<&[u8]>, listen: Option<SocketAddr>, extra: &[String]) -> bool {
    let Some(given) = given else { return true };
    let Ok(given) = std::str::from_utf8(given) else { return false };
    let given = given.trim().to_ascii_lowercase();
    let (name, port) = split(&given);
    if extra.iter().any(|allowed| {
        let allowed = allowed.trim().to_ascii_lowercase();
        match split(&allowed) {
            (allowed_name, None) => allowed_name == name,
            (allowed_name, Some(allowed_port)) => {
                allowed_name == name && Some(allowed_port) == port
            }
        }
    }) {
        return true;
    }
    let local = matches!(name, "localhost" | "127.0.0.1" | "[::1]")
        || listen.is_some_and(|addr| !addr.ip().is_unspecified() && name == bracketed(addr.ip()));
    if !local {
        return false;
    }
    match (listen, port) {
        // Before serving starts (an app used without `serve`) any port is this gateway's.
        (None, _) => true,
        (Some(addr), Some(port)) => port.parse::<u16>().is_ok_and(|port| port == addr.port()),
        // No port in `Host` means the scheme's default.
        (Some(addr), None) => addr.port() == 80,
    }
}

/// `name:port` into its parts; a bracketed IPv6 address keeps its brackets.
fn split(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let (name, rest) = host.split_at(end + 1);
                (name, rest.strip_prefix(':'))
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(host: Option<&str>, listen: &str, extra: &[&str], expected: bool) {
        let listen: SocketAddr = listen.parse().expect("address");
        let extra: Vec<String> = extra.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(allowed(host.map(str::as_bytes), Some(listen), &extra), expected, "{host:?}");
    }

    #[test]
    fn loopback_names_with_the_listening_port_pass() {
        for host in ["localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LocalHost:8080"] {
            check(Some(host), "127.0.0.1:8080", &[], true);
        }
        check(None, "127.0.0.1:8080", &[], true);
        check(Some("localhost"), "127.0.0.1:80", &[], true);
        check(Some("10.0.0.5:8080"), "10.0.0.5:8080", &[], true);
    }

    #[test]
    fn other_names_and_ports_are_refused() {
        check(Some("localhost:9999"), "127.0.0.1:8080", &[], false);
        check(Some("localhost"), "127.0.0.1:8080", &[], false);
        check(Some("evil.example:8080"), "127.0.0.1:8080", &[], false);
        check(Some("127.0.0.1.evil.example:8080"), "127.0.0.1:8080", &[], false);
        check(Some("0.0.0.0:8080"), "0.0.0.0:8080", &[], false);
        check(Some("localhost:8080:1"), "127.0.0.1:8080", &[], false);
        assert!(!allowed(Some(&[0xff, 0xfe]), None, &[]));
    }

    #[test]
    fn allowed_hosts_match_by_name_or_by_name_and_port() {
        check(Some("gateway.lan:8080"), "0.0.0.0:8080", &["gateway.lan"], true);
        check(Some("gateway.lan"), "0.0.0.0:8080", &["gateway.lan"], true);
        check(Some("gateway.lan:8080"), "0.0.0.0:8080", &["gateway.lan:8080"], true);
        check(Some("gateway.lan:9090"), "0.0.0.0:8080", &["gateway.lan:8080"], false);
        check(Some("other.lan:8080"), "0.0.0.0:8080", &["gateway.lan"], false);
    }
}
