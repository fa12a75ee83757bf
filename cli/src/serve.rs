//! `svctoken serve`: the issuer, with the embedded default's development client.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde_json::Map;
use svctoken_issuer::{Client, ClientAuth, Issuer, SecretHash, Settings};
use svctoken_mint::SystemClock;
use zeroize::Zeroizing;

use crate::{ConfigArgs, open_store, settings};

/// Runs the issuer until SIGINT or SIGTERM.
pub(crate) fn serve(args: &ConfigArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut settings = settings(args)?;
    let store = open_store(&settings)?;
    let dev_secret_file = settings.data_dir.join("dev-client-secret");
    if settings.embedded_default {
        settings
            .clients
            .push(dev_client(&dev_secret_file, &settings)?);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let bound = listener.local_addr()?;
        if settings.issuer_follows_listen {
            settings.issuer = format!("http://{bound}");
        }
        if settings.clients.is_empty() {
            tracing::warn!("no [[clients]] are configured: nobody can fetch tokens");
        }
        let issuer = tokio::task::spawn_blocking(move || {
            Issuer::open(settings, store, Arc::new(SystemClock))
        })
        .await??;
        banner(&issuer, bound, &dev_secret_file);
        svctoken_issuer::serve(listener, issuer, shutdown_signal()).await?;
        println!("svctoken: stopped");
        Ok(())
    })
}

/// The development client of the embedded default; its secret is made once, kept in a 0600
/// file, and never printed.
fn dev_client(path: &Path, settings: &Settings) -> Result<Client> {
    let secret = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = svctoken_issuer::generate_secret()?;
            write_new_secret_file(path, &secret)?;
            secret
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(Client {
        id: "dev".into(),
        auth: ClientAuth::Secret(SecretHash::of(&secret)),
        subject: "svc:dev".into(),
        audiences: settings.audiences.iter().map(|a| a.name.clone()).collect(),
        scopes: vec![],
        max_ttl: svctoken_mint::DEFAULT_TTL,
        claims: Map::new(),
        act_as: vec![],
    })
}

fn write_new_secret_file(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

fn banner(issuer: &Issuer, bound: std::net::SocketAddr, dev_secret_file: &Path) {
    let s = issuer.settings();
    let key = issuer.minter().active_key();
    println!("svctoken: issuer {} listening on {bound}", s.issuer);
    println!("  discovery: {}/.well-known/openid-configuration", s.issuer);
    println!("  JWKS:      {}", s.jwks_uri());
    println!("  token:     {}", s.token_endpoint());
    println!("  signing:   {} key {}", key.algorithm(), key.kid());
    if s.embedded_default {
        println!(
            "embedded default: development client \"dev\", secret in {}",
            dev_secret_file.display()
        );
        println!("fetch a token:");
        println!(
            "  curl -s -u \"dev:$(cat {})\" -d grant_type=client_credentials {}",
            dev_secret_file.display(),
            s.token_endpoint()
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
