//! `svctoken mint`: a token signed offline with the active key.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value};
use svctoken_issuer::settings::{MAX_TTL_LIMIT, Settings};
use svctoken_mint::{
    Clock as _, DEFAULT_TTL, MintRequest, Minter, SystemClock, check_custom_claims,
};

use crate::{ConfigArgs, IssuerArgs, open_keyring, settings_with};

/// Prints a token for `sub` and `aud`.
pub(crate) fn mint(
    sub: &str,
    aud: &str,
    ttl: Duration,
    scope: Option<&str>,
    claims: &[String],
    args: &ConfigArgs,
    issuer: &IssuerArgs,
) -> Result<()> {
    // No --listen here (mint binds nothing), but the default issuer is http://<listen>: read
    // SVCTOKEN_LISTEN as serve does, so a token minted in serve's environment names its issuer.
    let overrides = args.overrides_with(issuer, std::env::var("SVCTOKEN_LISTEN").ok());
    let settings = settings_with(args, overrides)?;
    if settings.audience(aud).is_none() {
        let names: Vec<_> = settings
            .audiences()
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        bail!(
            "--aud {aud:?} is not a configured audience (configured: {})",
            names.join(", ")
        );
    }
    check_ttl(ttl, &settings, args)?;
    let mut extra = Map::new();
    for claim in claims {
        let (name, value) = claim
            .split_once('=')
            .ok_or_else(|| anyhow!("--claim {claim:?} must look like name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        extra.insert(name.to_owned(), value);
    }
    // Before the key store is opened (or created): a refused claim changes nothing on disk.
    check_custom_claims(&extra)?;
    let ring = open_keyring(&settings)?;
    if !ring.can_sign(SystemClock.unix_secs()) {
        bail!(
            "this replica may not sign yet: its first key signs once every verifier holds it \
             (`svctoken keys list` says when), or its lease lapsed. Mint with the configuration \
             and data directory of a replica that serves tokens"
        );
    }
    let minter = Minter::new(
        settings.issuer().clone(),
        ring.signer(),
        Arc::new(SystemClock),
    );
    let minted = minter.mint(
        &MintRequest::new(sub, aud)
            .ttl(ttl)
            .scope(scope)
            .claims(&extra),
    )?;
    println!("{}", minted.token.secret());
    Ok(())
}

/// Refuses a `--ttl` beyond the cap, saying the cap and where it comes from: the longest
/// client `max_ttl` (5m when none is longer), for which retired keys stay published.
fn check_ttl(ttl: Duration, settings: &Settings, args: &ConfigArgs) -> Result<()> {
    let cap = settings.schedule().max_token_lifetime;
    if ttl <= cap {
        return Ok(());
    }
    let file = args.config_file().map_or_else(
        || "the embedded default (no --config)".to_owned(),
        |f| f.display().to_string(),
    );
    let longest = settings.clients().iter().max_by_key(|c| c.max_ttl);
    let source = match longest {
        Some(client) if client.max_ttl == cap => format!(
            "the longest max_ttl of the clients in {file}, client {:?}'s",
            client.id
        ),
        _ => format!(
            "the default token lifetime {}: no client in {file} has a longer max_ttl",
            humantime::format_duration(DEFAULT_TTL)
        ),
    };
    bail!(
        "--ttl {} is longer than this issuer's tokens may live: at most {} ({source}; a retired \
         key stays published that long, so no token outlives its key in the JWKS). Ask for at \
         most {}, or raise a client's max_ttl (up to {}h) in the configuration file{}",
        humantime::format_duration(ttl),
        humantime::format_duration(cap),
        humantime::format_duration(cap),
        MAX_TTL_LIMIT.as_secs() / 3600,
        if args.config_file().is_none() {
            " (`svctoken init` writes one)"
        } else {
            ""
        }
    )
}
