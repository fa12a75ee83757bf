//! `svctoken`: run the issuer, manage its keys and clients, mint tokens offline, and print the
//! Convex `auth.config.ts` entry that trusts it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use svctoken_issuer::rotation::{self, Event};
use svctoken_issuer::store::{FileStore, KeySet, KeyStore};
use svctoken_issuer::{
    Client, ClientAuth, Clock, Issuer, KeyRing, MintRequest, Minter, Overrides, Profile,
    SecretHash, Settings, SystemClock,
};
use zeroize::Zeroizing;

mod clients;
mod remote;

#[derive(Parser)]
#[command(
    name = "svctoken",
    version,
    about = "Short-lived service JWTs that Convex (and any JWKS-verifying API) trusts",
    after_help = "Quick start:\n  svctoken serve                       # embedded default on 127.0.0.1:8080\n  svctoken convex-config --data-uri    # the auth.config.ts entry for Convex"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from; flags win over `SVCTOKEN_*`, which win over the file.
#[derive(Args, Clone, Debug)]
struct ConfigArgs {
    /// TOML configuration file (default: none, the embedded default).
    #[arg(long, env = "SVCTOKEN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "SVCTOKEN_LISTEN")]
    listen: Option<String>,
    /// Issuer URL, minted and published exactly as written (default http://<listen>).
    #[arg(long, env = "SVCTOKEN_ISSUER")]
    issuer: Option<String>,
    /// Key store directory (default ./svctoken-data).
    #[arg(long, env = "SVCTOKEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the issuer. With no --config it runs on the embedded default: audience `convex`
    /// (Convex customJwt), ES256, keys in ./svctoken-data, and a development client `dev`.
    #[command(
        after_help = "Examples:\n  svctoken serve\n  svctoken serve --config svctoken.toml\n  SVCTOKEN_ISSUER=https://auth.example.com svctoken serve --listen 0.0.0.0:8080"
    )]
    Serve(ConfigArgs),
    /// Manage clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// List, rotate and revoke signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign a token offline with the active key (for scripts and tests).
    #[command(
        after_help = "Examples:\n  svctoken mint --sub svc:backfill --aud convex\n  svctoken mint --sub svc:report --aud convex --ttl 2m --claim team=payments --claim 'tier=2'"
    )]
    Mint {
        /// `sub` claim.
        #[arg(long)]
        sub: String,
        /// `aud` claim: a configured audience.
        #[arg(long)]
        aud: String,
        /// Lifetime (at most the longest client max_ttl, default 5m).
        #[arg(long, default_value = "5m", value_parser = duration)]
        ttl: Duration,
        /// `scope` claim (space-separated).
        #[arg(long)]
        scope: Option<String>,
        /// A custom claim; the value is JSON if it parses as JSON, a string otherwise.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fetch an access token from an issuer as a client and print it (for curl and scripts).
    #[command(
        after_help = "Examples:\n  SVCTOKEN_CLIENT_SECRET=sts_... svctoken token --issuer https://auth.example.com --client-id billing-worker\n  curl -H \"Authorization: Bearer $(svctoken token --issuer http://127.0.0.1:8080 --client-id dev --client-secret-file svctoken-data/dev-client-secret)\" ..."
    )]
    Token(remote::TokenArgs),
    /// Call a Convex function with a token from an issuer; prints its value as JSON.
    #[command(
        after_help = "Examples:\n  svctoken call --deployment https://happy-otter-123.convex.cloud --issuer https://auth.example.com --client-id billing-worker mutation invoices:create '{\"amount\": 12}'\n  (the secret comes from --client-secret-file or SVCTOKEN_CLIENT_SECRET)"
    )]
    Call {
        /// The deployment URL, e.g. https://happy-otter-123.convex.cloud.
        #[arg(long, env = "CONVEX_URL")]
        deployment: String,
        /// query, mutation or action.
        #[arg(value_enum)]
        kind: remote::FunctionKind,
        /// The function, e.g. messages:send.
        path: String,
        /// Its arguments as a JSON object (Convex encoded JSON: {"$integer": ...} for an Int64).
        #[arg(default_value = "{}")]
        args: String,
        #[command(flatten)]
        token: remote::TokenArgs,
    },
    /// Print the convex/auth.config.ts provider entry that trusts this issuer.
    #[command(
        after_help = "Examples:\n  svctoken convex-config --issuer https://auth.example.com\n  svctoken convex-config --data-uri    # embed the JWKS: Convex never fetches it"
    )]
    ConvexConfig {
        /// The audience (default: the only configured one).
        #[arg(long)]
        audience: Option<String>,
        /// Embed the JWKS as a data: URI (customJwt only), with the date to redeploy by.
        #[arg(long)]
        data_uri: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Create a client: prints its secret once, and the [[clients]] block to paste.
    #[command(
        after_help = "Examples:\n  svctoken clients add --id billing-worker --audience convex --scope billing:write"
    )]
    Add(clients::AddArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a hash-chained audit file: every line, its chain, and its head file. Names the
    /// first broken line and exits non-zero when the file was edited, truncated or reordered.
    #[command(after_help = "Examples:\n  svctoken audit verify ./svctoken-data/audit.log")]
    Verify {
        /// The audit file (its `<file>.head` sidecar is read too).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Show every published and revoked key with its schedule.
    #[command(after_help = "Examples:\n  svctoken keys list --data-dir ./svctoken-data")]
    List(ConfigArgs),
    /// Start a rotation now: publish the next key, which signs once verifiers have seen it.
    #[command(after_help = "Examples:\n  svctoken keys rotate --config svctoken.toml")]
    Rotate(ConfigArgs),
    /// Remove a key from the JWKS at once (an emergency). A running issuer picks it up within
    /// seconds.
    #[command(after_help = "Examples:\n  svctoken keys revoke 3Zt2...kid --config svctoken.toml")]
    Revoke {
        /// The kid to revoke (see `keys list`).
        kid: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    svctoken_issuer::parse_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svctoken: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(config) => serve(&config),
        Command::Clients(ClientsCommand::Add(args)) => clients::add(&args),
        Command::Keys(KeysCommand::List(config)) => keys_list(&config),
        Command::Keys(KeysCommand::Rotate(config)) => keys_rotate(&config),
        Command::Keys(KeysCommand::Revoke { kid, config }) => keys_revoke(&kid, &config),
        Command::Mint {
            sub,
            aud,
            ttl,
            scope,
            claims,
            config,
        } => mint(&sub, &aud, ttl, scope.as_deref(), &claims, &config),
        Command::ConvexConfig {
            audience,
            data_uri,
            config,
        } => convex_config(audience.as_deref(), data_uri, &config),
        Command::Audit(AuditCommand::Verify { file }) => audit_verify(&file),
        Command::Token(args) => remote::token(&args),
        Command::Call {
            deployment,
            kind,
            path,
            args,
            token,
        } => remote::call(&deployment, kind, &path, &args, &token),
    }
}

fn settings(args: &ConfigArgs) -> Result<Settings> {
    let overrides = Overrides {
        issuer: args.issuer.clone(),
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
    };
    Ok(Settings::load(args.config.as_deref(), &overrides)?)
}

fn open_store(settings: &Settings) -> Result<Arc<FileStore>> {
    let store = FileStore::open(&settings.data_dir)
        .with_context(|| format!("opening the key store in {}", settings.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// The key ring of the data dir, after one lifecycle run (as `serve` would do at start).
fn open_keyring(settings: &Settings) -> Result<KeyRing> {
    Ok(KeyRing::open(
        open_store(settings)?,
        settings.schedule.clone(),
        settings.audiences.clone(),
        SystemClock.unix_secs(),
    )?)
}

fn serve(args: &ConfigArgs) -> Result<()> {
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
        max_ttl: svctoken_issuer::DEFAULT_TTL,
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

fn audit_verify(file: &Path) -> Result<()> {
    match svctoken_issuer::audit::verify_chain(file) {
        Ok(report) => {
            println!(
                "{}: intact, {} lines, head {}",
                file.display(),
                report.lines,
                report.head
            );
            Ok(())
        }
        Err(broken) if broken.line == 0 => bail!("{}: {}", file.display(), broken.reason),
        Err(broken) => bail!(
            "{}: broken at line {}: {}",
            file.display(),
            broken.line,
            broken.reason
        ),
    }
}

fn time(secs: u64) -> String {
    let formatted = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    formatted.unwrap_or_else(|| secs.to_string())
}

fn keys_list(args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = open_store(&settings)?;
    let set = store.load()?;
    if set.keys.is_empty() {
        println!(
            "no keys yet in {} (the issuer creates one when it starts)",
            store.describe()
        );
    }
    for k in &set.keys {
        let when = |label: &str, t: Option<u64>| {
            t.map(|t| format!(" {label} {}", time(t)))
                .unwrap_or_default()
        };
        println!(
            "{:<43} {:<5} {:<8} published {}{}{}{}{}",
            k.kid,
            k.alg.as_str(),
            format!("{:?}", k.state).to_lowercase(),
            time(k.published_at),
            when(
                "activates",
                k.activate_at.filter(|_| k.activated_at.is_none())
            ),
            when("activated", k.activated_at),
            when("retired", k.retired_at),
            when("leaves JWKS", k.remove_at),
        );
    }
    for r in &set.revoked {
        println!(
            "{:<43} revoked {} (trusted by caching verifiers until {})",
            r.kid,
            time(r.revoked_at),
            time(r.trusted_until)
        );
    }
    Ok(())
}

fn print_events(events: &[Event]) {
    for event in events {
        match event {
            Event::Prepared { kid, activate_at } => {
                println!("published {kid}; it signs from {}", time(*activate_at));
            }
            Event::Activated { kid, early } => {
                println!("{kid} now signs");
                if *early {
                    println!(
                        "  warning: it was published less than jwks_max_age ago; verifiers holding an older cached JWKS may reject its tokens until their cache expires"
                    );
                }
            }
            Event::Retired { kid, remove_at } => {
                println!("{kid} retired; it leaves the JWKS at {}", time(*remove_at));
            }
            Event::Removed { kid } => println!("{kid} removed from the JWKS"),
        }
    }
}

fn keys_rotate(args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = open_store(&settings)?;
    let now = SystemClock.unix_secs();
    let events = rotation::rotate_now(store.as_ref(), &settings.schedule, now)?;
    print_events(&events);
    let set: KeySet = store.load()?;
    match set.prepared() {
        Some(p) if events.is_empty() => println!(
            "a rotation is already under way: {} signs from {}",
            p.kid,
            time(p.activate_at.unwrap_or_default())
        ),
        _ => {}
    }
    Ok(())
}

fn keys_revoke(kid: &str, args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = open_store(&settings)?;
    let now = SystemClock.unix_secs();
    let (revocation, events) = rotation::revoke(store.as_ref(), &settings.schedule, kid, now)
        .map_err(|e| match e {
            svctoken_issuer::Error::UnknownKey(_) => {
                anyhow!("no published key has kid {kid:?}; `svctoken keys list` shows them")
            }
            other => other.into(),
        })?;
    println!("revoked {kid}: it is no longer in the JWKS.");
    println!(
        "Verifiers that cached the JWKS may trust it until {} (jwks_max_age {}); a running issuer serves the new JWKS within {}s.",
        time(revocation.trusted_until),
        humantime::format_duration(settings.schedule.jwks_max_age),
        svctoken_issuer::LIFECYCLE_INTERVAL.as_secs()
    );
    print_events(&events);
    Ok(())
}

fn mint(
    sub: &str,
    aud: &str,
    ttl: Duration,
    scope: Option<&str>,
    claims: &[String],
    args: &ConfigArgs,
) -> Result<()> {
    let settings = settings(args)?;
    if settings.audience(aud).is_none() {
        let names: Vec<_> = settings.audiences.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "--aud {aud:?} is not a configured audience (configured: {})",
            names.join(", ")
        );
    }
    if ttl > settings.schedule.max_token_lifetime {
        bail!(
            "--ttl {} is longer than the longest token lifetime the key schedule allows ({}): raise a client's max_ttl",
            humantime::format_duration(ttl),
            humantime::format_duration(settings.schedule.max_token_lifetime)
        );
    }
    let mut extra = Map::new();
    for claim in claims {
        let (name, value) = claim
            .split_once('=')
            .ok_or_else(|| anyhow!("--claim {claim:?} must look like name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        extra.insert(name.to_owned(), value);
    }
    let ring = open_keyring(&settings)?;
    let minter = Minter::new(&settings.issuer, ring.signer(), Arc::new(SystemClock));
    let minted = minter.mint(&MintRequest {
        subject: sub,
        audience: aud,
        ttl,
        client_id: None,
        scope,
        actor: None,
        prior_actor: None,
        claims: Some(&extra),
    })?;
    println!("{}", minted.token);
    Ok(())
}

fn convex_config(audience: Option<&str>, data_uri: bool, args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let audience = match audience {
        Some(name) => settings
            .audience(name)
            .ok_or_else(|| anyhow!("--audience {name:?} is not configured"))?,
        None if settings.audiences.len() == 1 => &settings.audiences[0],
        None => bail!("several audiences are configured: choose one with --audience"),
    };
    let name = &audience.name;
    match audience.profile {
        Profile::ConvexOidc => {
            if data_uri {
                bail!(
                    "--data-uri works only with the convex-custom-jwt profile: Convex's OIDC provider always fetches discovery and the JWKS"
                );
            }
            println!(
                "// convex/auth.config.ts\nexport default {{\n  providers: [\n    {{\n      domain: {:?},\n      applicationID: {name:?},\n    }},\n  ],\n}};",
                settings.issuer
            );
        }
        Profile::ConvexCustomJwt | Profile::Generic => {
            if audience.profile == Profile::Generic {
                eprintln!(
                    "note: audience {name:?} has the generic profile; Convex verifies only what convex-custom-jwt allows"
                );
            }
            let (jwks, note) = if data_uri {
                let ring = open_keyring(&settings)?;
                let published = ring.published();
                let rendered = published
                    .jwks(Some(name))
                    .ok_or_else(|| anyhow!("no JWKS for audience {name:?}"))?;
                let until = svctoken_issuer::copy_valid_until(&published.set, &settings.schedule)
                    .map(time)
                    .unwrap_or_else(|| "the next rotation".into());
                (
                    svctoken_jwks::data_uri(&rendered.jwks),
                    format!(
                        "      // The JWKS is embedded: Convex never fetches it. Redeploy with a fresh\n      // `svctoken convex-config --data-uri` before {until}, when the next key signs.\n"
                    ),
                )
            } else {
                (settings.audience_jwks_uri(name), String::new())
            };
            println!(
                "// convex/auth.config.ts\nexport default {{\n  providers: [\n    {{\n      type: \"customJwt\",\n      applicationID: {name:?},\n      issuer: {:?},\n{note}      jwks: {jwks:?},\n      algorithm: \"{}\",\n    }},\n  ],\n}};",
                settings.issuer, settings.schedule.algorithm
            );
        }
    }
    Ok(())
}
