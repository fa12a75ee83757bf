//! `svctoken`: run the issuer, manage its keys and clients, mint tokens offline, and print the
//! Convex `auth.config.ts` entry that trusts it.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use svctoken_issuer::keyring::KeyRing;
use svctoken_issuer::postgres::{Database, PgStore, replica_id_for};
use svctoken_issuer::settings::{Config, Overrides, Settings};
use svctoken_issuer::store::{FileStore, KeyStore, PrivateKeys};
use svctoken_mint::{Clock as _, SystemClock};

mod clients;
mod convex_config;
mod data_dir;
mod doctor;
mod init;
mod journal;
mod keys;
mod loopback;
mod mint;
mod remote;
mod serve;

#[derive(Parser)]
#[command(
    name = "svctoken",
    version,
    about = "Short-lived service JWTs that Convex (and any JWKS-verifying API) trusts",
    after_help = "Quick start:\n  svctoken serve                       # embedded default on 127.0.0.1:8080\n  svctoken init                        # or a svctoken.toml to edit, with the dev client\n  svctoken convex-config --data-uri    # the auth.config.ts entry for Convex"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from; flags win over `SVCTOKEN_*`, which win over the file.
/// `--issuer` and `--listen` are not among them: only the commands that use them take them
/// ([`IssuerArgs`], [`ListenArgs`]).
#[derive(Args, Clone, Debug)]
pub(crate) struct ConfigArgs {
    /// TOML configuration file (default: none, the embedded default).
    #[arg(long, env = "SVCTOKEN_CONFIG")]
    config: Option<PathBuf>,
    /// Key store directory (default ./svctoken-data); with a database, this replica's private
    /// keys and replica id.
    #[arg(long, env = "SVCTOKEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL of the state several replicas share (default: none, one process).
    #[arg(long, env = "SVCTOKEN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// `--issuer`, for the commands whose output names the issuer: `serve`, `mint`,
/// `convex-config`.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct IssuerArgs {
    /// Issuer URL, minted and published exactly as written (default http://<listen>).
    #[arg(long, env = "SVCTOKEN_ISSUER")]
    issuer: Option<String>,
}

/// `--listen`, for the commands that use the address: `serve` binds it, `convex-config` prints
/// the URLs of the default issuer `http://<listen>`.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct ListenArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "SVCTOKEN_LISTEN")]
    listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the issuer. With no --config it runs on the embedded default: audience `convex`
    /// (Convex customJwt), ES256, keys in ./svctoken-data, and a development client `dev`.
    #[command(
        after_help = "Examples:\n  svctoken serve\n  svctoken serve --config svctoken.toml\n  SVCTOKEN_ISSUER=https://auth.example.com svctoken serve --listen 0.0.0.0:8080\n  svctoken serve --config svctoken.toml --admin-listen 10.0.0.5:8081   # /metrics, /healthz, /readyz for Prometheus and the load balancer"
    )]
    Serve(serve::ServeArgs),
    /// Write a svctoken.toml to edit: the embedded default's settings, its development client
    /// `dev` (with the secret `serve` made, if any) and every main key with its default.
    #[command(
        after_help = "Examples:\n  svctoken init\n  svctoken init --config /etc/svctoken/svctoken.toml --data-dir /var/lib/svctoken\n  svctoken init --force    # overwrite an existing svctoken.toml"
    )]
    Init(init::InitArgs),
    /// Manage clients.
    #[command(
        subcommand,
        after_help = "Examples:\n  svctoken clients add --id billing-worker --audience convex --scope billing:write\n  svctoken clients add --id billing-worker --jwk-file billing-worker.pub.pem --act-as 'user:*'"
    )]
    Clients(ClientsCommand),
    /// List, rotate and revoke signing keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  svctoken keys list\n  svctoken keys rotate --config svctoken.toml\n  svctoken keys revoke 3Zt2...kid --data-dir ./svctoken-data"
    )]
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
        /// Lifetime (at most the longest client max_ttl, 5m if none is longer; default 5m).
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
        #[command(flatten)]
        issuer: IssuerArgs,
    },
    /// Check the audit trail.
    #[command(
        subcommand,
        after_help = "Examples:\n  svctoken audit verify ./svctoken-data/audit.log\n  svctoken audit verify --database-url postgres://svctoken@db.internal/svctoken"
    )]
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
    /// Check a live issuer the way Convex will: discovery, issuer spelling, JWKS and its
    /// caching, a standby key, TLS, clock skew and, with credentials, a token (and a call).
    /// Prints pass/warn/fail lines; exits 0 when nothing failed, 1 when something did.
    #[command(
        after_help = "Examples:\n  svctoken doctor --issuer https://auth.example.com --audience convex\n  svctoken doctor --issuer http://127.0.0.1:8080 --client-id dev --client-secret-file svctoken-data/dev-client-secret\n  svctoken doctor --issuer https://auth.example.com --audience convex --client-id billing-worker --private-key billing-worker.pem --deployment https://happy-otter-123.convex.cloud --function auth:whoami\n\nFor --function, export a query from the Convex app that reports the caller, e.g. with the npm package:\n  import { whoami as diagnose } from \"svctoken/convex\";\n  export const whoami = query({ args: {}, handler: (ctx) => diagnose(ctx) })"
    )]
    Doctor(doctor::DoctorArgs),
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
        #[command(flatten)]
        issuer: IssuerArgs,
        #[command(flatten)]
        listen: ListenArgs,
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
    /// Verify a hash-chained audit file (every line, its chain, and its head file), or every
    /// replica's chain in the database replicas share. Names the first broken line and exits
    /// non-zero when a chain was edited, truncated or reordered.
    #[command(
        after_help = "Examples:\n  svctoken audit verify ./svctoken-data/audit.log\n  svctoken audit verify --database-url postgres://svctoken@db.internal/svctoken"
    )]
    Verify {
        /// The audit file (its `<file>.head` sidecar is read too).
        #[arg(
            required_unless_present = "database_url",
            conflicts_with = "database_url"
        )]
        file: Option<PathBuf>,
        /// Verify the chains in this database instead.
        #[arg(long, env = "SVCTOKEN_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Show every published and revoked key with its schedule, and which key is the standby
    /// (and whether caching verifiers hold it yet).
    #[command(after_help = "Examples:\n  svctoken keys list --data-dir ./svctoken-data")]
    List(ConfigArgs),
    /// Start a rotation now: the standby signs as soon as caching verifiers hold it (at once if
    /// it was published jwks_max_age + 5s ago), and a new standby is published.
    #[command(after_help = "Examples:\n  svctoken keys rotate --config svctoken.toml")]
    Rotate(ConfigArgs),
    /// Remove a key from the JWKS at once (an emergency) and destroy its private key. Revoking
    /// the signing key hands over to the standby, which caching verifiers already hold; a
    /// warning on stderr says for how long verifiers may reject tokens when it was published too
    /// recently (or there was none). A running issuer picks it up within seconds.
    #[command(after_help = "Examples:\n  svctoken keys revoke 3Zt2...kid --config svctoken.toml")]
    Revoke {
        /// The kid to revoke (see `keys list`). A kid may start with `-` (base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    svctoken_issuer::settings::parse_duration(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = parse();
    // A command whose output is piped into `head` ends when the reader goes, as Unix tools
    // do. Not `serve`: it writes to its log and to sockets, and must outlive either reader.
    if !matches!(cli.command, Command::Serve(_)) {
        sigpipe::reset();
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svctoken: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, parsed.
///
/// Help is not wrapped when standard output is not a terminal (`svctoken serve --help | less`,
/// a file, a test): each example stays on one line, as it is typed, instead of being cut
/// mid-command at clap's 100-column fallback. On a terminal, clap wraps at its width.
fn parse() -> Cli {
    let mut command = Cli::command();
    if !std::io::stdout().is_terminal() {
        command = command.term_width(0);
    }
    let matches = command.get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Serve(args), Some(("serve", serve))) = (&mut cli.command, matches.subcommand())
    {
        args.note_sources(serve);
    }
    cli
}

fn run(command: Command) -> Result<ExitCode> {
    let done = match command {
        Command::Doctor(args) => return Ok(doctor::doctor(&args)),
        Command::Serve(args) => serve::serve(&args),
        Command::Init(args) => init::init(&args),
        Command::Clients(ClientsCommand::Add(args)) => clients::add(&args),
        Command::Keys(KeysCommand::List(config)) => keys::keys_list(&config),
        Command::Keys(KeysCommand::Rotate(config)) => keys::keys_rotate(&config),
        Command::Keys(KeysCommand::Revoke { kid, config }) => keys::keys_revoke(&kid, &config),
        Command::Mint {
            sub,
            aud,
            ttl,
            scope,
            claims,
            config,
            issuer,
        } => mint::mint(&sub, &aud, ttl, scope.as_deref(), &claims, &config, &issuer),
        Command::ConvexConfig {
            audience,
            data_uri,
            config,
            issuer,
            listen,
        } => {
            let overrides = config.overrides_with(&issuer, listen.listen());
            convex_config::convex_config(audience.as_deref(), data_uri, &config, overrides)
        }
        Command::Audit(AuditCommand::Verify {
            file: Some(file), ..
        }) => audit_verify(&file),
        Command::Audit(AuditCommand::Verify {
            database_url: Some(url),
            ..
        }) => audit_verify_database(&url),
        Command::Audit(AuditCommand::Verify { .. }) => {
            bail!("name an audit file, or --database-url")
        }
        Command::Token(args) => remote::token(&args),
        Command::Call {
            deployment,
            kind,
            path,
            args,
            token,
        } => remote::call(&deployment, kind, &path, &args, &token),
    };
    done.map(|()| ExitCode::SUCCESS)
}

impl ConfigArgs {
    /// The overrides these flags (and `SVCTOKEN_*` variables) give; no `issuer`, no `listen`.
    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            issuer: None,
            listen: None,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            // `serve`'s own flag.
            admin_listen: None,
        }
    }

    /// The overrides, with `--issuer` and a `listen`.
    pub(crate) fn overrides_with(&self, issuer: &IssuerArgs, listen: Option<String>) -> Overrides {
        Overrides {
            issuer: issuer.issuer.clone(),
            listen,
            ..self.overrides()
        }
    }

    /// The configuration file named by `--config` or `SVCTOKEN_CONFIG`, if any.
    pub(crate) fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }
}

impl ListenArgs {
    /// `--listen` / `SVCTOKEN_LISTEN`, if given.
    pub(crate) fn listen(&self) -> Option<String> {
        self.listen.clone()
    }
}

/// The configuration file `--config` / `SVCTOKEN_CONFIG` names, or the embedded default;
/// a missing file is named as the configuration file it is, once.
pub(crate) fn load_config(args: &ConfigArgs) -> Result<Config> {
    let path = args.config_file();
    match Config::load(path) {
        Ok(config) => Ok(config),
        Err(svctoken_issuer::Error::Io { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            let path = path.unwrap_or(Path::new("")).display();
            bail!("config file {path} (from --config/SVCTOKEN_CONFIG) not found")
        }
        Err(e) => Err(e.into()),
    }
}

/// The validated settings of `args`.
pub(crate) fn settings(args: &ConfigArgs) -> Result<Settings> {
    settings_with(args, args.overrides())
}

/// The validated settings of `args`, with `overrides` (such as a `listen`) in place of theirs.
pub(crate) fn settings_with(args: &ConfigArgs, overrides: Overrides) -> Result<Settings> {
    Ok(load_config(args)?.validate(&overrides)?)
}

/// The key store the settings name: the files store in `data_dir` (created if need be), or,
/// with a `database_url`, this replica's lineage in the database replicas share; its private
/// keys in `data_dir` or in the PKCS#11 token `[keys]` names.
pub(crate) fn open_store(settings: &Settings) -> Result<Arc<dyn KeyStore>> {
    let dir = settings.data_dir();
    let Some(replication) = settings.replication() else {
        let store = PrivateKeys::open(settings, None)
            .and_then(|keys| FileStore::open_with(dir, keys))
            .map_err(|e| {
                let e = anyhow::Error::from(e)
                    .context(format!("opening the key store in {}", dir.display()));
                data_dir::explain(dir, e)
            })?;
        return Ok(Arc::new(store));
    };
    let db = Database::connect(replication.url())?;
    let replica = replica_id_for(replication.replica_id(), dir)?;
    let keys = PrivateKeys::open(settings, Some(&replica))?;
    let store = PgStore::open_with(db, &replica, keys, replication.lease())?;
    Ok(Arc::new(store))
}

/// The key ring the settings name, after one lifecycle run (as `serve` would do at start),
/// whose changes are recorded in the audit trail.
pub(crate) fn open_keyring(settings: &Settings) -> Result<KeyRing> {
    let store = open_store(settings)?;
    let journal = journal::CliJournal::new(settings, store.as_ref());
    let ring = KeyRing::open(
        store,
        settings.schedule().clone(),
        settings.audiences().to_vec(),
        SystemClock.unix_secs(),
        &journal,
    )?;
    journal.finish()?;
    Ok(ring)
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

fn audit_verify_database(url: &str) -> Result<()> {
    let db = Database::connect(url)?;
    let chains = svctoken_issuer::postgres::verify_database(&db)?;
    if chains.is_empty() {
        println!("{}: no audit chains yet", db.name());
    }
    let mut broken = 0;
    for chain in &chains {
        match &chain.verified {
            Ok(report) => println!(
                "{} replica {}: intact, {} lines, head {}",
                db.name(),
                chain.replica_id,
                report.lines,
                report.head
            ),
            Err(e) => {
                broken += 1;
                eprintln!("{} replica {}: broken: {e}", db.name(), chain.replica_id);
            }
        }
    }
    if broken > 0 {
        bail!("{broken} of {} audit chains are broken", chains.len());
    }
    Ok(())
}

/// RFC 3339 UTC for seconds since the epoch.
pub(crate) fn time(secs: u64) -> String {
    let formatted = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    formatted.unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command, KeysCommand};

    #[test]
    fn keys_revoke_takes_a_kid_that_starts_with_a_hyphen() {
        let cli = Cli::try_parse_from(["svctoken", "keys", "revoke", "-Zt2aB", "--data-dir", "d"])
            .expect("a kid starting with '-' parses");
        let Command::Keys(KeysCommand::Revoke { kid, .. }) = cli.command else {
            panic!("not keys revoke");
        };
        assert_eq!(kid, "-Zt2aB");
    }
}
