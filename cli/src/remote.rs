//! `svctoken token` and `svctoken call`: the client side, for scripts and `curl`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;
use svctoken_client::{AuthMethod, ClientCredentials, ConvexClient, Endpoint, TokenCache};
use zeroize::Zeroizing;

/// How to obtain a token from an issuer as a client.
#[derive(Args, Clone, Debug)]
pub(crate) struct TokenArgs {
    /// The issuer URL; its token endpoint is discovered from
    /// <issuer>/.well-known/openid-configuration.
    // The same variable as serve's issuer, deliberately: services and their issuer agree on
    // one URL. `serve` warns when it would advertise a loopback issuer it does not serve,
    // which is what an export meant for these commands does to a serve in the same shell.
    #[arg(long, env = "SVCTOKEN_ISSUER")]
    issuer: String,
    /// The client id.
    #[arg(long, env = "SVCTOKEN_CLIENT_ID")]
    client_id: String,
    /// A file holding the client secret. Without it, the secret is read from the
    /// SVCTOKEN_CLIENT_SECRET environment variable (never from a flag, which `ps` would show).
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// The audience to ask for (default: the client's only audience).
    #[arg(long)]
    audience: Option<String>,
    /// Scopes to ask for, space-separated (default: all of the client's).
    #[arg(long)]
    scope: Option<String>,
    /// Send the secret in the form body (client_secret_post) instead of Basic.
    #[arg(long)]
    client_secret_post: bool,
    /// Authenticate with this PEM private key (private_key_jwt) instead of a secret: PKCS#8
    /// `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`.
    #[arg(long, conflicts_with_all = ["client_secret_file", "client_secret_post"])]
    private_key: Option<PathBuf>,
    /// Act on behalf of this subject (the client's act_as policy must allow it).
    #[arg(long)]
    subject: Option<String>,
}

/// Which kind of Convex function.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FunctionKind {
    /// A query.
    Query,
    /// A mutation.
    Mutation,
    /// An action.
    Action,
}

impl TokenArgs {
    fn source(&self) -> Result<ClientCredentials> {
        let endpoint = Endpoint::Issuer(self.issuer.trim_end_matches('/').to_owned());
        let mut source = match &self.private_key {
            Some(key) => ClientCredentials::from_key_file(endpoint, &self.client_id, key)?,
            None => self.secret_source(endpoint)?,
        };
        if let Some(a) = &self.audience {
            source = source.audience(a);
        }
        if let Some(s) = &self.scope {
            source = source.scope(s);
        }
        if let Some(s) = &self.subject {
            source = source.subject(s);
        }
        Ok(source)
    }

    fn secret_source(&self, endpoint: Endpoint) -> Result<ClientCredentials> {
        let secret = read_client_secret(self.client_secret_file.as_deref())?;
        let mut source = ClientCredentials::new(endpoint, &self.client_id, secret.as_str());
        if self.client_secret_post {
            source = source.auth_method(AuthMethod::ClientSecretPost);
        }
        Ok(source)
    }
}

/// The client secret from `path` (trimmed), or else from `SVCTOKEN_CLIENT_SECRET`; never empty.
pub(crate) fn read_client_secret(path: Option<&Path>) -> Result<Zeroizing<String>> {
    let secret = match path {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the client secret from {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => Zeroizing::new(std::env::var("SVCTOKEN_CLIENT_SECRET").map_err(|_| {
            anyhow!(
                "no client secret: pass --client-secret-file FILE or set SVCTOKEN_CLIENT_SECRET"
            )
        })?),
    };
    if secret.is_empty() {
        bail!("the client secret is empty");
    }
    Ok(secret)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints an access token.
pub(crate) fn token(args: &TokenArgs) -> Result<()> {
    let tokens = TokenCache::new(args.source()?);
    let token = runtime()?.block_on(tokens.token())?;
    println!("{}", token.as_str());
    Ok(())
}

/// Calls a Convex function and prints its value as JSON.
pub(crate) fn call(
    deployment: &str,
    kind: FunctionKind,
    path: &str,
    args_json: &str,
    token_args: &TokenArgs,
) -> Result<()> {
    let args: Value = serde_json::from_str(args_json)
        .with_context(|| format!("ARGS_JSON {args_json:?} is not JSON"))?;
    if !args.is_object() {
        bail!("ARGS_JSON must be a JSON object, like '{{\"id\": 1}}'");
    }
    let client = ConvexClient::new(deployment, TokenCache::new(token_args.source()?))?;
    let value: Value = runtime()?
        .block_on(async {
            match kind {
                FunctionKind::Query => client.query(path, &args).await,
                FunctionKind::Mutation => client.mutation(path, &args).await,
                FunctionKind::Action => client.action(path, &args).await,
            }
        })
        .map_err(|e| match &e {
            svctoken_client::Error::Function {
                data: Some(data), ..
            } => anyhow!("{e} (errorData: {data})"),
            _ => anyhow!(e),
        })?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
