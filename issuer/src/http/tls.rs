//! HTTPS on the public listener (`[tls] cert` and `key`), with rustls on ring.
//!
//! - [`TlsCertificate`] holds the certificate and key in use, and reloads them when their
//!   files change (checked every [`RELOAD_INTERVAL`]): new handshakes get the new certificate,
//!   open connections keep theirs. A pair that can't be loaded (half-written, mismatched, a
//!   key without permission) is logged and the one in use is kept.
//! - [`TlsListener`] accepts TCP connections and runs each handshake in a task of its own,
//!   bounded by [`HANDSHAKE_TIMEOUT`] and at most [`MAX_HANDSHAKES`] at a time, so a slow or
//!   silent client never holds up the others; finished connections are handed to the server.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::serve::Listener;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::settings::TlsConfig;
use crate::{Error, Result};

/// How often the certificate and key files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// The longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 1024;

/// The certificate in use, reloaded when its files change.
#[derive(Debug)]
pub struct TlsCertificate {
    files: TlsConfig,
    current: ArcSwap<CertifiedKey>,
    /// The files' modification times and sizes when last loaded (or last found unloadable).
    seen: Mutex<Option<Stamp>>,
}

type Stamp = [(Option<SystemTime>, u64); 2];

impl TlsCertificate {
    /// Loads the pair named in `[tls]`; the error says which file and what is wrong.
    pub fn load(files: &TlsConfig) -> Result<Arc<TlsCertificate>> {
        let stamp = stamp(files);
        let key = load_pair(files)?;
        warn_if_key_readable_by_others(&files.key);
        Ok(Arc::new(TlsCertificate {
            files: files.clone(),
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new(stamp),
        }))
    }

    /// The leaf certificate in use (DER).
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current.load().cert[0].clone()
    }

    /// Reloads the pair if either file changed since it was last read; true if it did.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if now.is_none() || *seen == now {
                return false;
            }
            *seen = now;
        }
        match load_pair(&self.files) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "TLS certificate files changed but can't be loaded; keeping the one in use");
                false
            }
        }
    }

    /// The rustls configuration serving this certificate (HTTP/1.1 and HTTP/2).
    fn server_config(self: &Arc<Self>) -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for TlsCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Modification times and sizes of both files; `None` when either can't be read.
fn stamp(files: &TlsConfig) -> Option<Stamp> {
    let one = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

fn load_pair(files: &TlsConfig) -> Result<CertifiedKey> {
    let fail = |path: &Path, why: String| Error::Config(format!("[tls] {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| fail(&files.cert, format!("no PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(fail(&files.cert, "holds no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        fail(
            &files.key,
            format!("no PEM private key (PKCS#8, SEC1 or PKCS#1) ({e})"),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(&files.key, format!("not a usable key ({e})")))?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|e| {
        fail(
            &files.key,
            format!("is not the key of {} ({e})", files.cert.display()),
        )
    })?;
    Ok(certified)
}

fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            key = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the TLS private key is readable by other users: chmod 600 it"
        );
    }
}

/// A listener whose connections are TLS streams, handshaken off the accept path.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TlsListener {
    /// Serves TLS with `certificate` on `listener`, reloading the certificate as its files
    /// change.
    pub fn new(listener: TcpListener, certificate: Arc<TlsCertificate>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(certificate.server_config()));
        let (ready_tx, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(accept(listener, acceptor, ready_tx));
        let reloading = tokio::spawn(async move {
            let mut every = tokio::time::interval(RELOAD_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let certificate = certificate.clone();
                // File reads block: off the async workers.
                let _ = tokio::task::spawn_blocking(move || certificate.reload_if_changed()).await;
            }
        });
        Ok(TlsListener {
            ready,
            local,
            tasks: vec![accepting, reloading],
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task is gone (only when dropped): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
