//! `trusted_proxies`: the peer recorded in the audit trail is the TCP peer unless that peer is
//! a trusted proxy, in which case `Forwarded` / `X-Forwarded-For` name the client. The tests
//! connect from 127.0.0.1, so trusting `127.0.0.0/8` makes the test client a proxy.

use std::sync::Arc;

use svctoken_mint::MockClock;
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, TestIssuer, spawn_issuer, worker_client};

const START: u64 = 1_800_000_000;

/// Sends a client credentials request with `headers`; `good` picks the right secret or a wrong
/// one. Returns the HTTP status and the peer of the audit event it produced.
async fn peer_of(t: &TestIssuer, headers: &[(&str, &str)], good: bool) -> (u16, String) {
    let before = t.audit_events().len();
    let secret = if good { CLIENT_SECRET } else { "wrong" };
    let mut request = t
        .http
        .post(format!("{}/oauth/token", t.url))
        .basic_auth(CLIENT_ID, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let status = request.send().await.expect("token request").status();
    let events = t.audit_events();
    assert_eq!(events.len(), before + 1, "one event per request");
    let peer = events[before].peer.clone().expect("a peer");
    (status.as_u16(), peer)
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let t = spawn_issuer(&worker_client(""), Arc::new(MockClock::at_unix(START))).await;
    for headers in [
        &[("x-forwarded-for", "198.51.100.9")][..],
        &[("forwarded", "for=198.51.100.9")],
        &[("forwarded", "for=\"[2001:db8::17]:4711\"")],
    ] {
        for good in [true, false] {
            let (status, peer) = peer_of(&t, headers, good).await;
            assert_eq!(status, if good { 200 } else { 401 });
            assert!(peer.starts_with("127.0.0.1:"), "{headers:?}: {peer}");
        }
    }
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_in_either_syntax() {
    let config = format!(
        "trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n{}",
        worker_client("")
    );
    let t = spawn_issuer(&config, Arc::new(MockClock::at_unix(START))).await;
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("x-forwarded-for", "198.51.100.9")], "198.51.100.9"),
        // A spoofed leftmost entry, then the client, then another of our proxies.
        (
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.9, 10.1.2.3")],
            "198.51.100.9",
        ),
        (
            &[("forwarded", "for=\"[2001:db8::17]:4711\";proto=https")],
            "[2001:db8::17]:4711",
        ),
        (
            &[(
                "forwarded",
                "for=6.6.6.6, for=\"198.51.100.9:5000\", for=10.1.2.3",
            )],
            "198.51.100.9:5000",
        ),
        (&[("x-forwarded-for", "2001:db8::17")], "2001:db8::17"),
        // Both, agreeing.
        (
            &[
                ("forwarded", "for=198.51.100.9"),
                ("x-forwarded-for", "198.51.100.9"),
            ],
            "198.51.100.9",
        ),
        // Garbage and disagreement fall back to the TCP peer; the request is still served.
        (&[("x-forwarded-for", "not an address")], "127.0.0.1:"),
        (
            &[
                ("forwarded", "for=6.6.6.6"),
                ("x-forwarded-for", "198.51.100.9"),
            ],
            "127.0.0.1:",
        ),
    ];
    for (headers, expected) in cases {
        for good in [true, false] {
            let (status, peer) = peer_of(&t, headers, good).await;
            assert_eq!(status, if good { 200 } else { 401 }, "{headers:?}");
            assert!(peer.starts_with(expected), "{headers:?}: {peer}");
        }
    }
    // A request refused before it is parsed (not a form) is attributed the same way.
    let response = t
        .http
        .post(format!("{}/oauth/token", t.url))
        .header("x-forwarded-for", "198.51.100.9")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let last = t.audit_events().pop().expect("an event");
    assert_eq!(last.peer.as_deref(), Some("198.51.100.9"));
}
