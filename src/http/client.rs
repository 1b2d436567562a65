//! Who a request comes from. Behind a reverse proxy the peer is the proxy;
//! the client's address is then the one the trusted proxies added to
//! `X-Forwarded-For` (or, when a request has none, to the standard
//! `Forwarded`). Only proxies named in `HUB_TRUSTED_PROXIES` are
//! believed: a client can write any `X-Forwarded-For` it likes, so the
//! header is read from its right end (what the proxies nearest the hub
//! added) and the first address that is not a trusted proxy is the client.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::Networks;

/// The client's address, or `None` for a request with no peer (in tests
/// that build requests by hand).
pub fn address(req: &HttpRequest, trusted: &Networks) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let mut entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    if entries.is_empty() {
        entries = req
            .headers()
            .get_all("forwarded")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect();
    }
    // Right to left, as far as the entries are addresses: past the
    // proxies, the first one that is not a proxy is who connected to them.
    // All proxies (or no header): the last one believed.
    let believed: Vec<IpAddr> = entries
        .iter()
        .rev()
        .map_while(|entry| entry.trim().parse().ok())
        .collect();
    let client = believed
        .iter()
        .find(|ip| !trusted.contains(**ip))
        .or_else(|| believed.last())
        .copied();
    Some(client.unwrap_or(peer))
}

/// The address in one element of a `Forwarded` header (RFC 7239):
/// `for=192.0.2.1`, `for="[2001:db8::1]:4711"`; an element without one, or
/// with a name (`for=_hidden`, `for=unknown`), gives text that is no address.
fn forwarded_for(element: &str) -> &str {
    let Some(value) = element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.eq_ignore_ascii_case("for").then_some(value)
    }) else {
        return "";
    };
    let value = value.trim_matches('"');
    match value.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        Some(rest) => rest.split_once(']').map_or("", |(ip, _)| ip),
        // `v4` or `v4:port`.
        None => value.split_once(':').map_or(value, |(ip, _)| ip),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::config::Settings;

    fn trusting(list: &str) -> Networks {
        Settings::from_lookup(false, |name| {
            (name == "HUB_TRUSTED_PROXIES").then(|| list.to_owned())
        })
        .unwrap()
        .trusted_proxies
    }

    fn from(peer: &str, forwarded: Option<&str>, trusted: &Networks) -> String {
        let mut req = TestRequest::default().peer_addr(format!("{peer}:4000").parse().unwrap());
        if let Some(header) = forwarded {
            req = req.insert_header(("x-forwarded-for", header));
        }
        address(&req.to_http_request(), trusted)
            .unwrap()
            .to_string()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_from_the_right() {
        let none = trusting("");
        let nginx = trusting("127.0.0.1, 10.0.0.0/8");
        // Not trusted: the header is the client's own words.
        assert_eq!(
            from("198.51.100.7", Some("203.0.113.9"), &none),
            "198.51.100.7"
        );
        assert_eq!(
            from("198.51.100.7", Some("203.0.113.9"), &nginx),
            "198.51.100.7"
        );
        // Trusted: the address the proxy saw, not what the client wrote before it.
        assert_eq!(
            from("127.0.0.1", Some("203.0.113.9, 198.51.100.7"), &nginx),
            "198.51.100.7"
        );
        // Past a chain of trusted proxies.
        assert_eq!(
            from("127.0.0.1", Some("198.51.100.7, 10.1.2.3"), &nginx),
            "198.51.100.7"
        );
        // A trusted peer with no header is the client itself.
        assert_eq!(from("127.0.0.1", None, &nginx), "127.0.0.1");
        // A garbled entry ends what is believed.
        assert_eq!(
            from("127.0.0.1", Some("nonsense, 10.0.0.9"), &nginx),
            "10.0.0.9"
        );
    }

    fn forwarded(peer: &str, header: &str, trusted: &Networks) -> String {
        let req = TestRequest::default()
            .peer_addr(format!("{peer}:4000").parse().unwrap())
            .insert_header(("forwarded", header));
        address(&req.to_http_request(), trusted)
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_standard_forwarded_header_is_read_by_the_same_rule() {
        let nginx = trusting("127.0.0.1, 10.0.0.0/8");
        assert_eq!(
            forwarded(
                "127.0.0.1",
                "for=203.0.113.9, for=198.51.100.7;proto=https",
                &nginx
            ),
            "198.51.100.7"
        );
        assert_eq!(
            forwarded(
                "127.0.0.1",
                r#"for="[2001:db8::1]:4711", for=10.1.2.3"#,
                &nginx
            ),
            "2001:db8::1"
        );
        assert_eq!(
            forwarded("127.0.0.1", "For=192.0.2.5:8080", &nginx),
            "192.0.2.5"
        );
        // A hidden name ends what is believed; untrusted, it is ignored.
        assert_eq!(
            forwarded("127.0.0.1", "for=_hidden, for=10.0.0.9", &nginx),
            "10.0.0.9"
        );
        assert_eq!(
            forwarded("198.51.100.7", "for=203.0.113.9", &trusting("")),
            "198.51.100.7"
        );
    }

    #[test]
    fn a_bad_entry_in_the_setting_is_refused() {
        let bad = Settings::from_lookup(false, |name| {
            (name == "HUB_TRUSTED_PROXIES").then(|| "10.0.0.0/99".to_owned())
        });
        assert!(bad.is_err());
    }
}
