//! `svctoken keys list | rotate | revoke`: the key lifecycle from the command line.

use anyhow::{Result, anyhow};
use svctoken_issuer::rotation::{self, Event};
use svctoken_issuer::store::{KeySet, KeyStore};
use svctoken_mint::{Clock as _, SystemClock};

use crate::{ConfigArgs, open_store, settings, time};

/// Prints every published and revoked key with its schedule.
pub(crate) fn keys_list(args: &ConfigArgs) -> Result<()> {
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

/// Starts a rotation now.
pub(crate) fn keys_rotate(args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = open_store(&settings)?;
    let now = SystemClock.unix_secs();
    let events = rotation::rotate_now(store.as_ref(), settings.schedule(), now)?;
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

/// Removes a key from the JWKS at once.
pub(crate) fn keys_revoke(kid: &str, args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = open_store(&settings)?;
    let now = SystemClock.unix_secs();
    let (revocation, events) = rotation::revoke(store.as_ref(), settings.schedule(), kid, now)
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
        humantime::format_duration(settings.schedule().jwks_max_age),
        svctoken_issuer::LIFECYCLE_INTERVAL.as_secs()
    );
    print_events(&events);
    Ok(())
}
