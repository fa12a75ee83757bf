//! `svctoken serve`: the issuer, with the embedded default's development client.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use svctoken_issuer::Issuer;
use svctoken_issuer::clients::SecretHash;
use svctoken_issuer::settings::{ADMIN_LISTEN_OFF, ClientConfig, Config, Overrides};
use svctoken_mint::SystemClock;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::ConfigArgs;

/// `svctoken serve` flags.
#[derive(Args, Clone, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address of the admin listener (/metrics, /healthz, /readyz), or `off` (default
    /// 127.0.0.1:8081; port 0 when --listen's port is 0).
    #[arg(long, env = "SVCTOKEN_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Log line format on standard error: `text` (coloured only on a terminal) or `json`.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SVCTOKEN_LOG_FORMAT")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// Runs the issuer until SIGINT or SIGTERM.
pub(crate) fn serve(args: &ServeArgs) -> Result<()> {
    init_logs(args.log_format);
    let mut config = Config::load(args.config.config.as_deref())?;
    let mut overrides = Overrides {
        admin_listen: args.admin_listen.clone(),
        ..args.config.overrides()
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen(&overrides)?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let bound = listener.local_addr()?;
        // Resolved before `listen` becomes the bound port: its default follows `listen`'s.
        let admin_listen = config.admin_listen(&overrides)?;
        overrides.admin_listen =
            Some(admin_listen.map_or(ADMIN_LISTEN_OFF.to_owned(), |a| a.to_string()));
        overrides.listen = Some(bound.to_string());
        let data_dir = config.data_dir(&overrides);
        let dev_secret_file = data_dir.join("dev-client-secret");
        // A configuration is validated before its key store is opened, so a refused one
        // leaves nothing behind; the embedded default's development client keeps its secret
        // in the data directory, so that directory is made first.
        if config.is_embedded_default() {
            create_private_dir(&data_dir)?;
            config.add_client(dev_client(&dev_secret_file)?);
        }
        let settings = config.validate(&overrides)?;
        let store = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || crate::open_store(&settings)).await??
        };
        if settings.clients().iter().next().is_none() {
            tracing::warn!("no [[clients]] are configured: nobody can fetch tokens");
        }
        let admin = bind_admin(settings.admin_listen()).await?;
        let admin_bound = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        let issuer = tokio::task::spawn_blocking(move || {
            Issuer::open(settings, store, Arc::new(SystemClock))
        })
        .await??;
        banner(&issuer, bound, admin_bound, &dev_secret_file);
        svctoken_issuer::serve(listener, admin, issuer, shutdown_signal()).await?;
        println!("svctoken: stopped");
        Ok(())
    })
}

/// Binds the admin listener, unless it is off.
async fn bind_admin(addr: Option<SocketAddr>) -> Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin listener {addr}"))?;
    Ok(Some(listener))
}

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// The development client of the embedded default; its secret is made once, kept in a 0600
/// file, and never printed.
fn dev_client(path: &Path) -> Result<ClientConfig> {
    let secret = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = svctoken_issuer::clients::generate_secret()?;
            write_new_secret_file(path, &secret)?;
            secret
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(ClientConfig {
        id: "dev".into(),
        secret_sha256: Some(SecretHash::of(&secret).to_hex()),
        ..ClientConfig::default()
    })
}

/// Creates `dir` (mode 0700) if it does not exist.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
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

fn banner(issuer: &Issuer, bound: SocketAddr, admin: Option<SocketAddr>, dev_secret_file: &Path) {
    let s = issuer.settings();
    let key = issuer.minter().active_key();
    println!("svctoken: issuer {} listening on {bound}", s.issuer());
    println!(
        "  discovery: {}",
        s.issuer().join("/.well-known/openid-configuration")
    );
    println!("  JWKS:      {}", s.jwks_uri());
    println!("  token:     {}", s.token_endpoint());
    println!("  signing:   {} key {}", key.algorithm(), key.kid());
    match admin {
        Some(admin) => println!("  admin:     http://{admin} (/metrics, /healthz, /readyz)"),
        None => println!("  admin:     off"),
    }
    let store = issuer.keys().store();
    if let (Some(db), Some(replica)) = (store.database(), store.replica_id()) {
        println!("  replica:   {replica} on {}", db.name());
        if !issuer.keys().can_sign(issuer.clock().unix_secs()) {
            println!(
                "  waiting:   its first key signs once every verifier holds it (/readyz answers \
                 503 until then; the other replicas serve)"
            );
        }
    }
    if s.is_embedded_default() {
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
