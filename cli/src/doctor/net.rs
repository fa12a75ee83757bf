//! The network side of `svctoken doctor`: bounded GETs and POSTs, and the issuer's TLS
//! certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use reqwest::header::{HeaderMap, HeaderName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use x509_cert::Certificate;
use x509_cert::der::Decode as _;

/// The bound on every network exchange (connect, TLS, request and response).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a response body read (a JWKS or discovery document is a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// A response: status, headers and body.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The body (at most 1 MiB).
    pub(crate) body: Vec<u8>,
}

impl Fetched {
    /// Every line of header `name`, comma-joined; `None` when absent or not text.
    pub(crate) fn header(&self, name: HeaderName) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// Whether `Content-Type` is one of `allowed` (and its charset, if any, utf-8), as Convex
    /// requires of discovery and the JWKS.
    pub(crate) fn content_type_is(&self, allowed: &[&str]) -> bool {
        let Some(value) = self.header(reqwest::header::CONTENT_TYPE) else {
            return false;
        };
        let mut parts = value.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        allowed.contains(&media.as_str())
            && parts.all(|param| match param.split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                    value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                }
                _ => true,
            })
    }
}

/// The HTTP client: 5 s bounds, no redirects (only the URLs given are contacted), rustls.
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// GETs `url`.
pub(crate) async fn get(http: &reqwest::Client, url: &str) -> Result<Fetched> {
    read(http.get(url).send().await, url).await
}

/// POSTs `body` as JSON to `url` with `Authorization: Bearer <token>`.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<Fetched> {
    let sent = http.post(url).bearer_auth(token).json(body).send().await;
    read(sent, url).await
}

/// Reads a response, with an error that names the URL and the cause (refused, timed out, ...).
async fn read(sent: reqwest::Result<reqwest::Response>, url: &str) -> Result<Fetched> {
    let mut response = sent.map_err(|e| anyhow!("can't reach {url}: {}", cause(&e)))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow!("reading the answer of {url}: {}", cause(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            bail!("{url} answered more than 1 MiB");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// The innermost cause of a request error, with "timed out" said plainly.
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {}s", TIMEOUT.as_secs());
    }
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// What the TLS handshake told about the server's certificate.
#[derive(Debug)]
pub(crate) enum PeerCertificate {
    /// The end-entity certificate's `notAfter`.
    NotAfter(SystemTime),
    /// rustls refused the certificate as expired.
    Expired,
}

/// Connects to `host:port` over TLS (rustls on ring, the web PKI roots, SNI `host`) and returns
/// the end-entity certificate's `notAfter`; `Err` when it could not be had.
pub(crate) async fn certificate_not_after(host: &str, port: u16) -> Result<PeerCertificate> {
    let connect = async {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| anyhow!("{host:?} is not a TLS server name"))?;
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        let tls = match tls {
            Ok(tls) => tls,
            Err(e) if is_expired(&e) => return Ok(PeerCertificate::Expired),
            Err(e) => bail!("the TLS handshake with {host}:{port} failed: {e}"),
        };
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| anyhow!("{host}:{port} sent no certificate"))?;
        not_after(leaf.as_ref()).map(PeerCertificate::NotAfter)
    };
    tokio::time::timeout(TIMEOUT, connect).await.map_err(|_| {
        anyhow!(
            "no TLS handshake with {host}:{port} within {}s",
            TIMEOUT.as_secs()
        )
    })?
}

/// Whether a handshake failed on an expired certificate.
fn is_expired(error: &std::io::Error) -> bool {
    matches!(
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
        ))
    )
}

/// The `notAfter` of a DER certificate.
fn not_after(der: &[u8]) -> Result<SystemTime> {
    let certificate = Certificate::from_der(der).context("parsing the certificate")?;
    Ok(certificate
        .tbs_certificate
        .validity
        .not_after
        .to_system_time())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// A self-signed P-256 certificate (CN=doctor.test), notAfter 2036-11-30T11:47:58Z.
    const CERTIFICATE: &str = "MIIBgTCCASegAwIBAgIUHuVBpAY08REB6kOArqFWRNPtibYwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLZG9jdG9yLnRlc3QwHhcNMjYxMjAzMTE0NzU4WhcNMzYxMTMwMTE0NzU4WjAWMRQwEgYDVQQDDAtkb2N0b3IudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABK3O2FNEXJZAkaMJAR8v64FmWKN8lQKgaViZhq65l7GHi4XHAO3zr6RAU/+zdytxwvHPOa5pK+8P7tdzJvOVVyOjUzBRMB0GA1UdDgQWBBRxo8aKUrsWmsdxkyKeG7Sx3OdpSDAfBgNVHSMEGDAWgBRxo8aKUrsWmsdxkyKeG7Sx3OdpSDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDdk8cb1MA/ygjztnr0cCBUJT9ZtWPm+IhYeadVNqaewQIgMyKYddPoZ5GWqsNfYCZSsGhYSAbT03Yvs7tci9DQVoE=";

    #[test]
    fn not_after_is_read_from_the_certificate() {
        let der = STANDARD.decode(CERTIFICATE).expect("base64");
        let expected = SystemTime::UNIX_EPOCH + Duration::from_secs(2_111_658_478);
        assert_eq!(not_after(&der).expect("certificate"), expected);
        assert!(not_after(b"not a certificate").is_err());
        assert!(not_after(&der[..der.len() / 2]).is_err());
    }

    #[tokio::test]
    async fn a_peer_that_is_not_tls_is_an_error_not_a_panic() {
        // Nobody listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        assert!(certificate_not_after("127.0.0.1", port).await.is_err());
        // A listener that closes every connection at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let error = certificate_not_after("127.0.0.1", port)
            .await
            .expect_err("no TLS there");
        assert!(error.to_string().contains("127.0.0.1"), "{error:#}");
    }
}
