//! Run with: `cargo run -p svctoken-client --example convex_call`
//!
//! Fetches a token from a local svctoken issuer as a client and calls a Convex function with
//! it, printing the function's value. Configured by environment variables:
//!
//! - `CONVEX_URL` (required): the deployment, e.g. `https://happy-otter-123.convex.cloud`;
//! - `SVCTOKEN_ISSUER` (default `http://127.0.0.1:8080`, what `svctoken serve` runs on);
//! - `SVCTOKEN_CLIENT_ID` (default `dev`);
//! - `SVCTOKEN_CLIENT_SECRET`, or the file `SVCTOKEN_CLIENT_SECRET_FILE` (default
//!   `./svctoken-data/dev-client-secret`, where `svctoken serve` keeps the `dev` secret);
//! - `CONVEX_FUNCTION` (default `messages:list`) and `CONVEX_ARGS` (a JSON object, default `{}`).

use std::env;
use std::error::Error;

use serde_json::Value;
use svctoken_client::{ClientCredentials, ConvexClient, Endpoint, TokenCache};

/// What the example needs.
pub(crate) struct Config {
    pub(crate) deployment: String,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) function: String,
    pub(crate) args: Value,
}

impl Config {
    fn from_env() -> Result<Config, Box<dyn Error>> {
        let var = |name: &str, default: &str| env::var(name).unwrap_or_else(|_| default.to_owned());
        let client_secret = match env::var("SVCTOKEN_CLIENT_SECRET") {
            Ok(secret) => secret,
            Err(_) => {
                let file = var(
                    "SVCTOKEN_CLIENT_SECRET_FILE",
                    "./svctoken-data/dev-client-secret",
                );
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("no SVCTOKEN_CLIENT_SECRET and {file}: {e}"))?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Config {
            deployment: env::var("CONVEX_URL")
                .map_err(|_| "set CONVEX_URL to your deployment's URL")?,
            issuer: var("SVCTOKEN_ISSUER", "http://127.0.0.1:8080"),
            client_id: var("SVCTOKEN_CLIENT_ID", "dev"),
            client_secret,
            function: var("CONVEX_FUNCTION", "messages:list"),
            args: serde_json::from_str(&var("CONVEX_ARGS", "{}"))?,
        })
    }
}

/// Fetches a token and calls the query.
pub(crate) async fn call(config: &Config) -> Result<Value, Box<dyn Error>> {
    // One cache per process: every call reuses the token until shortly before it expires.
    let source = ClientCredentials::new(
        Endpoint::Issuer(config.issuer.clone()),
        &config.client_id,
        &config.client_secret,
    )
    .audience("convex");
    let convex = ConvexClient::new(&config.deployment, TokenCache::new(source))?;
    Ok(convex.query(&config.function, &config.args).await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let value = call(&Config::from_env()?).await?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
