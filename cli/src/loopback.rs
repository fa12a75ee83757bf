//! Issuer URLs only this machine can reach: `http://` on a loopback host. `serve` warns when
//! it advertises one it does not serve, and `convex-config` when it would hand one to Convex.

use std::net::{IpAddr, SocketAddr};

/// The host of a loopback URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    /// `localhost`.
    Localhost,
    /// A loopback address (127.0.0.0/8, ::1).
    Ip(IpAddr),
}

/// The host and port of `url` when it is `http://` on a loopback host; `None` for any other
/// URL (https, another host, unparseable).
pub(crate) fn loopback_http(url: &str) -> Option<(Host, u16)> {
    let scheme_len = "http://".len();
    if !url.get(..scheme_len)?.eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &url[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(host_port)?;
    let host = if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.")
    {
        Host::Localhost
    } else {
        let ip: IpAddr = host.parse().ok()?;
        if !ip.is_loopback() {
            return None;
        }
        Host::Ip(ip)
    };
    Some((host, port))
}

/// `host:port`, `[v6]:port` or a host alone (port 80).
fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 80,
    };
    Some((host, port))
}

/// Whether a loopback `host:port` reaches a listener bound to `bound`.
pub(crate) fn reaches(host: Host, port: u16, bound: SocketAddr) -> bool {
    let ip = bound.ip();
    port == bound.port()
        && (ip.is_unspecified()
            || match host {
                Host::Localhost => ip.is_loopback(),
                Host::Ip(host) => host == ip,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn loopback_http_urls_and_the_listeners_they_reach() {
        let v4 = Host::Ip("127.0.0.1".parse().expect("ip"));
        assert_eq!(loopback_http("http://127.0.0.1:8080"), Some((v4, 8080)));
        assert_eq!(
            loopback_http("HTTP://localhost/x"),
            Some((Host::Localhost, 80))
        );
        assert_eq!(
            loopback_http("http://[::1]:9000"),
            Some((Host::Ip("::1".parse().expect("ip")), 9000))
        );
        for other in [
            "https://127.0.0.1:8080",
            "http://auth.example.com",
            "http://10.0.0.1:8080",
            "http://127.0.0.1:port",
            "http:/",
            "",
        ] {
            assert_eq!(loopback_http(other), None, "{other}");
        }
        assert!(reaches(v4, 8080, addr("127.0.0.1:8080")));
        assert!(reaches(v4, 8080, addr("0.0.0.0:8080")));
        assert!(reaches(Host::Localhost, 8080, addr("[::1]:8080")));
        assert!(!reaches(v4, 8080, addr("127.0.0.1:8081")));
        assert!(!reaches(v4, 8080, addr("192.168.1.5:8080")));
        assert!(!reaches(Host::Localhost, 8080, addr("192.168.1.5:8080")));
    }
}
