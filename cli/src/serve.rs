//! `svctoken serve`: the issuer, with the embedded default's development client.

use std::fs::File;
use std::io::{IsTerminal as _, Read as _, Seek as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use svctoken_issuer::clients::SecretHash;
use svctoken_issuer::settings::{
    ADMIN_LISTEN_OFF, ClientConfig, DEFAULT_LISTEN, Overrides, Settings,
};
use svctoken_issuer::{Issuer, TlsCertificate, TlsListener};
use svctoken_mint::SystemClock;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use zeroize::Zeroizing;

use crate::{ConfigArgs, IssuerArgs, ListenArgs, loopback};

/// `svctoken serve` flags.
#[derive(Args, Clone, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    issuer: IssuerArgs,
    #[command(flatten)]
    listen: ListenArgs,
    /// Address of the admin listener (/metrics, /healthz, /readyz), or `off` (default
    /// 127.0.0.1:8081; port 0 when --listen's port is 0).
    #[arg(long, env = "SVCTOKEN_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Log line format on standard error: `text` (coloured only on a terminal) or `json`.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SVCTOKEN_LOG_FORMAT")]
    log_format: LogFormat,
    /// Where `--issuer` and `--listen` came from, for messages that say what to change.
    #[arg(skip)]
    sources: Sources,
}

/// Where the values of `--issuer` and `--listen` came from (`None`: not given).
#[derive(Clone, Copy, Debug, Default)]
struct Sources {
    issuer: Option<ValueSource>,
    listen: Option<ValueSource>,
}

impl ServeArgs {
    /// Records whether `--issuer` and `--listen` came from the command line or `SVCTOKEN_*`.
    pub(crate) fn note_sources(&mut self, matches: &ArgMatches) {
        self.sources = Sources {
            issuer: matches.value_source("issuer"),
            listen: matches.value_source("listen"),
        };
    }

    /// Where a value that `flag` / `env` set came from, else the file's `key` when the file
    /// sets it differently from the default, else the default.
    fn origin(&self, source: Option<ValueSource>, names: Names, file_sets_it: bool) -> Origin {
        match (source, self.config.config_file()) {
            (Some(ValueSource::CommandLine), _) => Origin::Flag(names.flag),
            (Some(ValueSource::EnvVariable), _) => Origin::Env(names.env),
            (_, Some(file)) if file_sets_it => Origin::File(names.key, file.display().to_string()),
            _ => Origin::Default,
        }
    }
}

/// The flag, variable and file key of one setting.
#[derive(Clone, Copy)]
struct Names {
    flag: &'static str,
    env: &'static str,
    key: &'static str,
}

const ISSUER: Names = Names {
    flag: "--issuer",
    env: "SVCTOKEN_ISSUER",
    key: "issuer",
};

const LISTEN: Names = Names {
    flag: "--listen",
    env: "SVCTOKEN_LISTEN",
    key: "listen",
};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Flag(&'static str),
    Env(&'static str),
    /// The key, in the file.
    File(&'static str, String),
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "from {flag}"),
            Origin::Env(env) => write!(f, "from {env}"),
            Origin::File(key, file) => write!(f, "from {key} in {file}"),
            Origin::Default => write!(f, "the default"),
        }
    }
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
    let mut config = crate::load_config(&args.config)?;
    let mut overrides = args
        .config
        .overrides_with(&args.issuer, args.listen.listen());
    overrides.admin_listen = args.admin_listen.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Bound first: an address in use leaves nothing behind, not even the data directory.
        let listen = config.listen(&overrides)?;
        let default_listen = config
            .listen(&Default::default())
            .is_ok_and(|file| file.to_string() == DEFAULT_LISTEN);
        let listener = bind(
            listen,
            &args.origin(args.sources.listen, LISTEN, !default_listen),
        )
        .await?;
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
        warn_unserved_issuer(
            &settings,
            bound,
            &args.origin(args.sources.issuer, ISSUER, true),
        );
        create_private_dir(&data_dir)?;
        let _held = hold_data_dir(&data_dir)?;
        let store = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || crate::open_store(&settings)).await??
        };
        if settings.clients().iter().next().is_none() {
            tracing::warn!("no [[clients]] are configured: nobody can fetch tokens");
        }
        // Loaded before anything is served, so a bad pair stops the start with its reason.
        let tls = settings.tls().map(TlsCertificate::load).transpose()?;
        let admin = bind_admin(settings.admin_listen()).await?;
        let admin_bound = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        let issuer = tokio::task::spawn_blocking(move || {
            Issuer::open(settings, store, Arc::new(SystemClock))
        })
        .await??;
        let Signals {
            interrupt,
            terminate,
            hangup,
        } = Signals::install()?;
        let shutdown_signal = || shutdown(interrupt, terminate);
        let reloads = tokio::spawn(reload_on_hangup(
            issuer.clone(),
            hangup,
            args.config.clone(),
            overrides.clone(),
        ));
        banner(&issuer, bound, admin_bound, &dev_secret_file);
        match tls {
            Some(certificate) => {
                let listener = TlsListener::new(listener, certificate)?;
                svctoken_issuer::serve(listener, admin, issuer, shutdown_signal()).await?;
            }
            None => svctoken_issuer::serve(listener, admin, issuer, shutdown_signal()).await?,
        }
        reloads.abort();
        println!("svctoken: stopped");
        Ok(())
    })
}

/// On each SIGHUP, reads the configuration file again and hands it to the running issuer,
/// which takes up its clients, audiences, trusted issuers, trusted proxies and rate limits. A
/// file that doesn't load or validate, or that changes what only a restart can, is refused
/// with its reason in the log, and the configuration in use is kept.
async fn reload_on_hangup(
    issuer: Issuer,
    mut hangups: Signal,
    config: ConfigArgs,
    overrides: Overrides,
) {
    while hangups.recv().await.is_some() {
        let (config, overrides) = (config.clone(), overrides.clone());
        let read = tokio::task::spawn_blocking(move || {
            let config = crate::load_config(&config)?;
            if config.is_embedded_default() {
                anyhow::bail!(
                    "no configuration file to reload: this issuer runs the embedded default \
                     (start it with --config to reload one)"
                );
            }
            Ok(config.validate(&overrides)?)
        })
        .await;
        let outcome = match read {
            Ok(Ok(settings)) => issuer.reload(settings).await.map_err(anyhow::Error::from),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow!("reading the configuration stopped: {e}")),
        };
        if let Err(e) = outcome {
            tracing::error!(
                "SIGHUP: the new configuration is refused, the one in use is kept: {e:#}"
            );
        }
    }
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

/// Binds `listen`; an error names where the address came from and what to change.
async fn bind(listen: SocketAddr, origin: &Origin) -> Result<TcpListener> {
    let e = match TcpListener::bind(listen).await {
        Ok(listener) => return Ok(listener),
        Err(e) => e,
    };
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another process already listens there (`ss -ltnp 'sport = :{}'` names it)",
            listen.port()
        ),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "no network interface of this machine has that address".to_owned()
        }
        _ => e.to_string(),
    };
    bail!(
        "cannot listen on {listen} ({origin}): {why}. Choose another address with --listen or \
         SVCTOKEN_LISTEN (or listen in the configuration file)"
    )
}

/// Warns (one line on standard error) when the issuer is an `http://` loopback URL this
/// process does not serve: its tokens and discovery would name an issuer nobody serves.
///
/// `SVCTOKEN_ISSUER` names the issuer to serve here and the issuer to ask in `svctoken token`
/// and `call`. One variable for both is deliberate (a deployment's services and its issuer
/// agree on one URL), but a shell that exported it for the client commands and then starts
/// `serve` advertises it; the loopback case is the one that is surely a mistake, since a
/// loopback URL is reachable only through this machine's listeners.
fn warn_unserved_issuer(settings: &Settings, bound: SocketAddr, origin: &Origin) {
    let url = settings.issuer().as_str();
    let Some((host, port)) = loopback::loopback_http(url) else {
        return;
    };
    if loopback::reaches(host, port, bound) {
        return;
    }
    let fix = match origin {
        Origin::Env(env) => format!(
            "unset {env} in the shell that runs serve (it is also the issuer `svctoken token` \
             and `call` ask: give them --issuer instead), or set it to http://{bound}"
        ),
        Origin::Flag(flag) => {
            format!("drop {flag} (the default is http://<listen>) or make it http://{bound}")
        }
        Origin::File(key, file) => {
            format!("remove {key} from {file} or make it http://{bound}")
        }
        Origin::Default => format!("set --issuer to http://{bound}"),
    };
    tracing::warn!(
        "the issuer {url} ({origin}) is a loopback URL this issuer does not serve (it listens \
         on {bound}): its tokens and discovery would name an issuer nobody serves; {fix}"
    );
}

/// Takes `<data_dir>/serve.lock` for as long as the returned file is open: one `serve` per
/// data directory. Two would both rotate the same keys and append to one audit chain, each
/// unaware of the other's schedule; the second is refused, naming the first one's pid.
fn hold_data_dir(data_dir: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
        .map_err(|e| crate::data_dir::explain(data_dir, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            let shown = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
            return Err(anyhow!(
                "another svctoken serve{pid} holds {}: stop it first, or give this one its own \
                 data directory with --data-dir or SVCTOKEN_DATA_DIR",
                shown.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

/// The development client of the embedded default; its secret is made once, kept in a 0600
/// file, and never printed.
pub(crate) fn dev_client(path: &Path) -> Result<ClientConfig> {
    let secret = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = svctoken_issuer::clients::generate_secret()?;
            write_new_secret_file(path, &secret).map_err(|e| {
                crate::data_dir::explain(path.parent().unwrap_or(Path::new(".")), e)
            })?;
            secret
        }
        Err(e) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            let e = anyhow::Error::from(e).context(format!("reading {}", path.display()));
            return Err(crate::data_dir::explain(dir, e));
        }
    };
    Ok(ClientConfig {
        id: "dev".into(),
        secret_sha256: Some(SecretHash::of(&secret).to_hex()),
        ..ClientConfig::default()
    })
}

/// Creates `dir` (mode 0700) if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
        .map_err(|e| crate::data_dir::explain(dir, e))
}

fn write_new_secret_file(path: &Path, secret: &str) -> Result<()> {
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

/// The signals `serve` handles, registered before the banner says it serves: a SIGTERM or
/// SIGHUP sent as soon as the banner is out is handled, never the default action (exit).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        let on =
            |kind: SignalKind, name: &str| signal(kind).with_context(|| format!("watching {name}"));
        Ok(Signals {
            interrupt: on(SignalKind::interrupt(), "SIGINT")?,
            terminate: on(SignalKind::terminate(), "SIGTERM")?,
            hangup: on(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// Resolves at the first SIGINT or SIGTERM.
async fn shutdown(mut interrupt: Signal, mut terminate: Signal) {
    tokio::select! {
        _ = interrupt.recv() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down");
}
