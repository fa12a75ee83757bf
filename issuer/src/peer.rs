//! Where a token request came from: [`Peer`], and [`TrustedProxies`], which reads the client's
//! address from `Forwarded` (RFC 7239) or `X-Forwarded-For` only when the TCP peer is one of
//! the configured proxies.
//!
//! # The rule
//!
//! A forwarding header is a list of hops, the client first; each proxy appends the address it
//! received the request from. Only the entries appended by proxies we trust can be believed,
//! so the list is walked from the right: every entry naming a trusted proxy is skipped, and
//! the first one that does not is the client (if every entry is a trusted proxy, the leftmost
//! is). Entries left of the client are never read, so whatever a client writes there (a
//! spoofed address, garbage) changes nothing.
//!
//! The TCP peer is used instead when it is not a trusted proxy (the headers are then ignored
//! whatever they say), when neither header is present, and when the walk reaches an entry that
//! is not an address (garbage, `unknown`, an obfuscated `_name`, a `Forwarded` element without
//! `for=`): a request is never refused because of these headers.
//!
//! When both headers are present they must name the same client: a proxy writes one of them
//! and may pass the other through from the client untouched, and from the request alone there
//! is no telling which, so a disagreement falls back to the TCP peer.
//!
//! Elements are split on `,` and parameters on `;` without regard to quoted strings: quoting
//! can't then let a client's unterminated `"` swallow the elements our proxies appended after
//! it. A quoted value is taken only whole (no escapes inside); no address needs more.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;

use crate::{Error, Result};

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address a request came from, with its port when known (a `Forwarded` hop may carry one,
/// an `X-Forwarded-For` entry usually does not). Displayed as `203.0.113.7:4711`,
/// `203.0.113.7`, `[2001:db8::17]:4711` or `2001:db8::17`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    ip: IpAddr,
    port: Option<u16>,
}

impl Peer {
    /// An address and, when known, its port. IPv4-mapped IPv6 addresses are kept as IPv4.
    pub fn new(ip: IpAddr, port: Option<u16>) -> Self {
        Peer {
            ip: ip.to_canonical(),
            port,
        }
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The port, when known.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer::new(addr.ip(), Some(addr.port()))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => SocketAddr::new(self.ip, port).fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The proxies (`trusted_proxies`, a list of CIDRs) whose forwarding headers are believed; see
/// the module docs for the rule. Empty by default: the TCP peer is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses (`127.0.0.1`, `::1`); the
    /// error names the entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let nets = entries
            .iter()
            .map(|entry| {
                let text = entry.as_ref().trim();
                text.parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        Error::Config(format!(
                            "trusted_proxies: {text:?} is not a CIDR like \"10.0.0.0/8\" or an address"
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        Ok(TrustedProxies { nets })
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is inside one of the CIDRs (an IPv4-mapped IPv6 address as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that arrived from `tcp` with `headers`.
    pub fn client(&self, tcp: SocketAddr, headers: &HeaderMap) -> Peer {
        let tcp = Peer::from(tcp);
        if !self.contains(tcp.ip) {
            return tcp;
        }
        let forwarded = values(headers, &FORWARDED).map(|v| self.walk(v, forwarded_hop));
        let xff = values(headers, &X_FORWARDED_FOR).map(|v| self.walk(v, xff_hop));
        let client = match (forwarded, xff) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => one,
            (Some(Some(a)), Some(Some(b))) if a.ip == b.ip => Some(a),
            (Some(_), Some(_)) => None,
        };
        client.unwrap_or(tcp)
    }

    /// Walks the comma-separated hops of `list` from the right; `None` when it reaches one
    /// that is not an address.
    fn walk(&self, list: Option<Vec<&str>>, hop: fn(&str) -> Option<Peer>) -> Option<Peer> {
        let mut client = None;
        for element in list?.into_iter().rev() {
            let peer = hop(element.trim())?;
            client = Some(peer);
            if !self.contains(peer.ip) {
                break;
            }
        }
        client
    }
}

/// Every element of every `name` header, in order: `None` when there is no such header, `Some`
/// with no usable list when one is not visible ASCII.
fn values<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<Option<Vec<&'h str>>> {
    let mut all = headers.get_all(name).iter().peekable();
    all.peek()?;
    let mut elements = Vec::new();
    for value in all {
        match value.to_str() {
            Ok(text) => elements.extend(text.split(',')),
            Err(_) => return Some(None),
        }
    }
    Some(Some(elements))
}

/// The `for=` node of one `Forwarded` element, if it is an address.
fn forwarded_hop(element: &str) -> Option<Peer> {
    for pair in element.split(';') {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            return node(unquote(value.trim())?);
        }
    }
    None
}

/// A token, or a quoted string without escapes, unquoted.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        None => Some(value),
        Some(rest) => rest
            .strip_suffix('"')
            .filter(|inner| !inner.contains(['"', '\\'])),
    }
}

/// An RFC 7239 node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`, `[2001:db8::17]:4711`;
/// an obfuscated port (`:_x`) counts as no port. `unknown` and obfuscated names are not
/// addresses. A bare IPv6 address is accepted too.
fn node(text: &str) -> Option<Peer> {
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = ip.parse().ok()?;
        let port = match after {
            "" => None,
            _ => port(after.strip_prefix(':')?)?,
        };
        return Some(Peer::new(IpAddr::V6(ip), port));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Peer::new(ip, None));
    }
    let (ip, p) = text.split_once(':')?;
    Some(Peer::new(IpAddr::V4(ip.parse().ok()?), port(p)?))
}

/// A node's port: digits, or an obfuscated `_name` (known to exist, not disclosed).
fn port(text: &str) -> Option<Option<u16>> {
    if text.starts_with('_') {
        return Some(None);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(Some)
}

/// One `X-Forwarded-For` entry: an address, or an address with a port as some proxies write it
/// (`192.0.2.43:47011`, `[2001:db8::17]:4711`).
fn xff_hop(entry: &str) -> Option<Peer> {
    entry
        .parse::<IpAddr>()
        .map(|ip| Peer::new(ip, None))
        .or_else(|_| entry.parse::<SocketAddr>().map(Peer::from))
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    const PROXY: &str = "10.0.0.2:50000";

    fn trusted() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8", "fd00::/8", "192.168.1.1"]).unwrap()
    }

    fn client(tcp: &str, headers: &[(&str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        trusted().client(tcp.parse().unwrap(), &map).to_string()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        for headers in [
            &[("x-forwarded-for", "198.51.100.9")][..],
            &[("forwarded", "for=198.51.100.9")],
            &[
                ("forwarded", "for=10.0.0.7"),
                ("x-forwarded-for", "10.0.0.7"),
            ],
        ] {
            assert_eq!(client("203.0.113.7:4242", headers), "203.0.113.7:4242");
        }
        let none = TrustedProxies::default();
        let mut map = HeaderMap::new();
        map.insert(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.9"));
        assert_eq!(
            none.client(PROXY.parse().unwrap(), &map).to_string(),
            PROXY,
            "no trusted proxies: headers are never read"
        );
    }

    #[test]
    fn x_forwarded_for_from_a_trusted_proxy_walks_right_to_left() {
        let cases = [
            ("198.51.100.9", "198.51.100.9"),
            // The client wrote the leftmost entries; our proxies appended the rest.
            ("1.1.1.1, 198.51.100.9", "198.51.100.9"),
            ("1.1.1.1, 198.51.100.9, 10.1.2.3", "198.51.100.9"),
            (
                "garbage, 198.51.100.9, 10.1.2.3, 192.168.1.1",
                "198.51.100.9",
            ),
            ("198.51.100.9:5555", "198.51.100.9:5555"),
            ("2001:db8::17", "2001:db8::17"),
            ("[2001:db8::17]:4711, fd00::1", "[2001:db8::17]:4711"),
            ("::ffff:198.51.100.9", "198.51.100.9"),
            // Every hop is one of ours: the first one is the client.
            ("10.9.9.9, 10.1.2.3", "10.9.9.9"),
        ];
        for (xff, expected) in cases {
            assert_eq!(
                client(PROXY, &[("x-forwarded-for", xff)]),
                expected,
                "{xff}"
            );
        }
        // Two header lines are one list, in order.
        assert_eq!(
            client(
                PROXY,
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "198.51.100.9")
                ]
            ),
            "198.51.100.9"
        );
    }

    #[test]
    fn forwarded_from_a_trusted_proxy_with_ipv6_ports_and_several_hops() {
        let cases = [
            ("for=198.51.100.9", "198.51.100.9"),
            ("For=\"198.51.100.9:4711\";proto=https", "198.51.100.9:4711"),
            (
                "for=\"[2001:db8:cafe::17]:4711\"",
                "[2001:db8:cafe::17]:4711",
            ),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]:_hidden\"", "2001:db8:cafe::17"),
            (
                "for=192.0.2.60;proto=http;by=203.0.113.43, for=198.51.100.9, for=\"[fd00::5]\"",
                "198.51.100.9",
            ),
            (
                "by=10.0.0.2;for=198.51.100.9;host=auth.example",
                "198.51.100.9",
            ),
            // A client's unterminated quote can't swallow what our proxy appended.
            ("for=\"1.1.1.1, for=198.51.100.9", "198.51.100.9"),
        ];
        for (forwarded, expected) in cases {
            assert_eq!(
                client(PROXY, &[("forwarded", forwarded)]),
                expected,
                "{forwarded}"
            );
        }
        // Both headers, agreeing (a proxy that writes both): the Forwarded hop, with its port.
        assert_eq!(
            client(
                PROXY,
                &[
                    ("forwarded", "for=\"198.51.100.9:4711\""),
                    ("x-forwarded-for", "198.51.100.9")
                ]
            ),
            "198.51.100.9:4711"
        );
    }

    #[test]
    fn garbage_falls_back_to_the_tcp_peer() {
        for (name, value) in [
            ("x-forwarded-for", ""),
            ("x-forwarded-for", "not-an-address"),
            ("x-forwarded-for", "198.51.100.9, unknown"),
            ("x-forwarded-for", "198.51.100.9,,10.1.2.3"),
            ("x-forwarded-for", "300.1.1.1"),
            ("forwarded", "for=unknown"),
            ("forwarded", "for=_hidden"),
            ("forwarded", "proto=https"),
            ("forwarded", "for"),
            ("forwarded", "for=\"198.51.100.9"),
            ("forwarded", "for=\"[2001:db8::17\""),
            ("forwarded", "for=\"198.51.100.9:99999\""),
            ("forwarded", "for=\"198.51.100.9:\""),
            ("forwarded", "for=\"1.2.3.4\\\"\""),
        ] {
            assert_eq!(client(PROXY, &[(name, value)]), PROXY, "{name}: {value}");
        }
        // Not visible ASCII.
        let mut map = HeaderMap::new();
        map.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.9\xff").unwrap(),
        );
        assert_eq!(
            trusted().client(PROXY.parse().unwrap(), &map).to_string(),
            PROXY
        );
        // The two headers disagree: one of them came from the client.
        assert_eq!(
            client(
                PROXY,
                &[
                    ("forwarded", "for=1.1.1.1"),
                    ("x-forwarded-for", "198.51.100.9")
                ]
            ),
            PROXY
        );
    }

    #[test]
    fn parsing_the_list() {
        let proxies = TrustedProxies::parse(&["10.0.0.1/8", " ::1 ", "2001:db8::/32"]).unwrap();
        assert!(proxies.contains("10.200.0.1".parse().unwrap()));
        assert!(proxies.contains("::ffff:10.0.0.9".parse().unwrap()));
        assert!(proxies.contains("::1".parse().unwrap()));
        assert!(!proxies.contains("11.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.com", "", "10.0.0.0/8/8"] {
            let err = TrustedProxies::parse(&[bad]).unwrap_err().to_string();
            assert!(err.contains("trusted_proxies"), "{bad}: {err}");
        }
        assert!(TrustedProxies::parse::<&str>(&[]).unwrap().is_empty());
    }
}
