//! HTTPS on the public listener: tokens over TLS, the certificate replaced on disk taken up by
//! new connections without dropping open ones, and a bad pair refused with its reason.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_issuer::store::MemoryStore;
use svctoken_issuer::{Issuer, TlsCertificate, TlsListener};
use svctoken_mint::SystemClock;
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, worker_client};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM, certificate DER).
fn certificate() -> (String, String, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("rcgen");
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        certified.cert.der().clone(),
    )
}

/// Replaces `path`'s content at once (write aside, rename), as deployment tools do.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).expect("write");
    std::fs::rename(&aside, path).expect("rename");
}

fn connector(trusted: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    connector(trusted).connect(name, tcp).await
}

/// One HTTP/1.1 GET on an open connection (kept alive): the status and body.
async fn get(stream: &mut TlsStream<TcpStream>, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().expect("status");
                return (status, text[end + 4..end + 4 + length].to_owned());
            }
        }
    }
}

#[tokio::test]
async fn serves_https_and_takes_up_a_replaced_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_a, key_a, der_a) = certificate();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_a).expect("cert");
    std::fs::write(&key_path, &key_a).expect("key");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = format!(
        "[tls]\ncert = {cert_path:?}\nkey = {key_path:?}\n[audit]\nfile = \"\"\n{}",
        worker_client("")
    );
    let overrides = Overrides {
        listen: Some(addr.to_string()),
        ..Overrides::default()
    };
    let settings = Settings::from_toml(&config, &overrides).expect("settings");
    // With [tls], the default issuer is https.
    assert_eq!(settings.issuer().as_str(), format!("https://{addr}"));
    let pair = TlsCertificate::load(settings.tls().expect("tls")).expect("pair loads");
    let issuer = tokio::task::spawn_blocking(move || {
        Issuer::open(
            settings,
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock),
        )
    })
    .await
    .expect("join")
    .expect("issuer");
    let listener = TlsListener::new(listener, pair).expect("tls listener");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(svctoken_issuer::serve(listener, None, issuer, async move {
        let _ = stopped.await;
    }));

    // A token over HTTPS, with a client that trusts certificate A.
    let http = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_der(&der_a).expect("der"))
        .build()
        .expect("client");
    let response = http
        .post(format!("https://{addr}/oauth/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token over https");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["access_token"].as_str().is_some());

    // A connection opened before the certificate changes.
    let mut open = connect(addr, &der_a).await.expect("handshake with A");
    assert_eq!(get(&mut open, "/.well-known/jwks.json").await.0, 200);

    // Replace the pair, key first: in between, the files don't match and A stays in use.
    let (cert_b, key_b, der_b) = certificate();
    replace(&key_path, &key_b);
    replace(&cert_path, &cert_b);
    let deadline = Instant::now() + svctoken_issuer::tls::RELOAD_INTERVAL * 4;
    let mut fresh = loop {
        match connect(addr, &der_b).await {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(Instant::now() < deadline, "certificate B never served: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let served = fresh
        .get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone();
    assert_eq!(served, der_b);
    assert_eq!(
        get(&mut fresh, "/.well-known/openid-configuration").await.0,
        200
    );
    // Clients that only trust A are now refused; the connection opened under A still works.
    assert!(connect(addr, &der_a).await.is_err());
    let (status, body) = get(&mut open, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("https://{addr}")));

    let _ = stop.send(());
    drop(open);
    drop(fresh);
    server.await.expect("join").expect("served");
}

#[test]
fn a_pair_that_does_not_match_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_a, _, _) = certificate();
    let (_, key_b, _) = certificate();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_a).expect("cert");
    std::fs::write(&key, &key_b).expect("key");
    let config = |cert: &Path, key: &Path| {
        format!("listen = \"127.0.0.1:0\"\n[tls]\ncert = {cert:?}\nkey = {key:?}\n")
    };
    let load = |text: String| {
        let settings = Settings::from_toml(&text, &Overrides::default()).expect("settings");
        TlsCertificate::load(settings.tls().expect("tls"))
            .expect_err("refused")
            .to_string()
    };
    assert!(load(config(&cert, &key)).contains("is not the key of"));
    assert!(load(config(&dir.path().join("none.pem"), &key)).contains("none.pem"));
    // A key where the certificate should be: the file is named and what it lacks.
    let swapped = load(config(&key, &key));
    assert!(
        swapped.contains("key.pem") && swapped.contains("CERTIFICATE"),
        "{swapped}"
    );
}
