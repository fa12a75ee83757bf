//! `svctoken mint`: a token signed offline with the active key.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value};
use svctoken_mint::{Clock as _, MintRequest, Minter, SystemClock, check_custom_claims};

use crate::{ConfigArgs, open_keyring, settings};

/// Prints a token for `sub` and `aud`.
pub(crate) fn mint(
    sub: &str,
    aud: &str,
    ttl: Duration,
    scope: Option<&str>,
    claims: &[String],
    args: &ConfigArgs,
) -> Result<()> {
    let settings = settings(args)?;
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
    if ttl > settings.schedule().max_token_lifetime {
        bail!(
            "--ttl {} is longer than the longest token lifetime the key schedule allows ({}): raise a client's max_ttl",
            humantime::format_duration(ttl),
            humantime::format_duration(settings.schedule().max_token_lifetime)
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
