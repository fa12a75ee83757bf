//! `svctoken keys list | rotate | revoke`: the key lifecycle from the command line.

use anyhow::{Context as _, Result, anyhow, bail};
use svctoken_issuer::rotation::{self, Event};
use svctoken_issuer::settings::Settings;
use svctoken_issuer::store::{FileStore, KeySet, KeyState, KeyStore};
use svctoken_mint::{Clock as _, SystemClock};

use crate::{ConfigArgs, settings, time};

/// The store the settings name, which must exist: a mistyped directory is an error naming
/// where it looked, never a new empty store.
fn existing_store(settings: &Settings) -> Result<FileStore> {
    let dir = settings.data_dir();
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    match FileStore::open_existing(dir) {
        Ok(store) => Ok(store),
        Err(svctoken_issuer::Error::Store { .. }) => bail!(
            "no key store in {} (no keys.json there); keys commands never create one. Point at \
             the issuer's data directory with --data-dir or SVCTOKEN_DATA_DIR, or with data_dir \
             in the file --config (SVCTOKEN_CONFIG) names; `svctoken serve` creates the store \
             when it first starts",
            shown.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening the key store in {}", shown.display())),
    }
}

/// Prints every published and revoked key with its schedule.
pub(crate) fn keys_list(args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = existing_store(&settings)?;
    let set = store.load()?;
    if set.keys.is_empty() {
        println!(
            "no keys yet in {} (the issuer creates one when it starts)",
            store.describe()
        );
    }
    for k in &set.keys {
        let times = match k.state {
            KeyState::Prepared { activate_at } => format!("activates {}", time(activate_at)),
            KeyState::Active { activated_at } => format!("activated {}", time(activated_at)),
            KeyState::Retired {
                activated_at,
                retired_at,
                remove_at,
            } => format!(
                "activated {} retired {} leaves JWKS {}",
                time(activated_at),
                time(retired_at),
                time(remove_at)
            ),
        };
        println!(
            "{:<43} {:<5} {:<8} published {} {times}",
            k.kid,
            k.alg.as_str(),
            k.state.name(),
            time(k.published_at),
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
    let store = existing_store(&settings)?;
    let now = SystemClock.unix_secs();
    let events = rotation::rotate_now(&store, settings.schedule(), now)?;
    print_events(&events);
    let set: KeySet = store.load()?;
    if let Some(p) = set.prepared().filter(|_| events.is_empty())
        && let KeyState::Prepared { activate_at } = p.state
    {
        println!(
            "a rotation is already under way: {} signs from {}",
            p.kid,
            time(activate_at)
        );
    }
    Ok(())
}

/// Removes a key from the JWKS at once.
pub(crate) fn keys_revoke(kid: &str, args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = existing_store(&settings)?;
    let now = SystemClock.unix_secs();
    let (revocation, events) =
        rotation::revoke(&store, settings.schedule(), kid, now).map_err(|e| match e {
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
