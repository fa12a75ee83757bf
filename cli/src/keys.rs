//! `svctoken keys list | rotate | revoke`: the key lifecycle from the command line.

use anyhow::{Result, anyhow, bail};
use std::sync::Arc;
use svctoken_issuer::rotation::{self, Event};
use svctoken_issuer::settings::{KeyBackend, Settings};

use svctoken_issuer::store::{FileStore, KeySet, KeyState, KeyStore};
use svctoken_mint::{Clock as _, SystemClock};

use crate::journal::CliJournal;
use crate::{ConfigArgs, settings, time};

/// The store the settings name, which must exist: a mistyped directory is an error naming
/// where it looked, never a new empty store. A replica's lineage in a shared database is
/// opened as it is (an empty one is a replica that has not started yet).
pub(crate) fn existing_store(settings: &Settings) -> Result<Arc<dyn KeyStore>> {
    if settings.replication().is_some() {
        return crate::open_store(settings);
    }
    let dir = settings.data_dir();
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    if FileStore::exists(dir) {
        return crate::open_store(settings);
    }
    // keys.json unseen in a directory this user may not read: say that, not "no store".
    if std::fs::read_dir(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        return Err(crate::data_dir::explain(dir, denied.into()));
    }
    bail!(
        "no key store in {} (no keys.json there); keys commands never create one. Point at the \
         issuer's data directory with --data-dir or SVCTOKEN_DATA_DIR, or with data_dir in the \
         file --config (SVCTOKEN_CONFIG) names; `svctoken serve` creates the store when it \
         first starts",
        shown.display()
    )
}

/// Prints every published and revoked key with its schedule, naming the standby and whether
/// it is ready for an emergency revocation.
pub(crate) fn keys_list(args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = existing_store(&settings)?;
    let set = store.load()?;
    let now = SystemClock.unix_secs();
    let lead = settings.schedule().prepare_lead().as_secs();
    if let (Some(db), Some(replica)) = (store.database(), store.replica_id()) {
        let private = match settings.key_backend() {
            KeyBackend::Files => settings.data_dir().join("private").display().to_string(),
            KeyBackend::Pkcs11(token) => format!("the PKCS#11 token {:?}", token.token_label),
        };
        println!(
            "replica {replica} on {}; its keys (private keys in {private}):",
            db.name(),
        );
    }
    if set.keys.is_empty() {
        println!(
            "no keys yet in {} (the issuer creates one when it starts)",
            store.describe()
        );
    }
    for k in &set.keys {
        let (role, times) = match k.state {
            KeyState::Prepared { activate_at } => {
                let ready = k.published_at + lead;
                let readiness = if ready <= now {
                    "ready: caching verifiers hold it".to_owned()
                } else {
                    format!("ready for an emergency revocation from {}", time(ready))
                };
                (
                    "standby",
                    format!("signs from {} ({readiness})", time(activate_at)),
                )
            }
            KeyState::Active { activated_at } => {
                ("active", format!("signing since {}", time(activated_at)))
            }
            KeyState::Retired {
                activated_at,
                retired_at,
                remove_at,
            } => (
                "retired",
                format!(
                    "signed {} to {}, leaves the JWKS {}",
                    time(activated_at),
                    time(retired_at),
                    time(remove_at)
                ),
            ),
        };
        println!(
            "{:<43} {:<5} {role:<8} published {} {times}",
            k.kid,
            k.alg.as_str(),
            time(k.published_at),
        );
        // Where the private half is, checked: loaded (and, in an HSM, made to sign once).
        let location = store.private_key_location(&k.kid);
        match store.signing_key(&k.kid) {
            Ok(_) => println!("    private key: {location}"),
            Err(e) => println!("    private key: MISSING from {location}: {e}"),
        }
    }
    if set.active().is_some() && set.prepared().is_none() {
        println!(
            "no standby: revoking the signing key now would make caching verifiers reject \
             tokens for up to {}; the issuer publishes one on its next lifecycle run",
            humantime::format_duration(settings.schedule().prepare_lead())
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
    let peers = store.peer_keys()?;
    if !peers.is_empty() {
        println!("published by the other replicas (every replica serves them):");
    }
    for p in &peers {
        println!(
            "{:<43} {:<5} {:<8} replica {}",
            p.key.kid,
            p.key.alg.as_str(),
            p.key.state.name(),
            p.replica_id
        );
    }
    Ok(())
}

fn print_events(events: &[Event]) {
    for event in events {
        match event {
            Event::Prepared {
                kid, activate_at, ..
            } => {
                println!(
                    "published {kid} as the standby; it signs from {}",
                    time(*activate_at)
                );
            }
            Event::Rescheduled {
                kid, activate_at, ..
            } => {
                println!(
                    "the standby {kid} signs from {}, once caching verifiers hold it",
                    time(*activate_at)
                );
            }
            // Only a revocation activates a key early, and it warns about that itself.
            Event::Activated { kid, .. } => println!("{kid} now signs"),
            Event::Retired { kid, remove_at, .. } => {
                println!("{kid} retired; it leaves the JWKS at {}", time(*remove_at));
            }
            Event::Removed { kid, .. } => println!("{kid} removed from the JWKS"),
            Event::Revoked { kid, .. } => println!("{kid} revoked"),
        }
    }
}

/// Starts a rotation now: the standby signs as soon as caching verifiers hold it.
pub(crate) fn keys_rotate(args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let store = existing_store(&settings)?;
    let journal = CliJournal::new(&settings, store.as_ref());
    let now = SystemClock.unix_secs();
    let events = rotation::rotate_now(store.as_ref(), settings.schedule(), now, &journal)?;
    print_events(&events);
    if events.is_empty() {
        let set: KeySet = store.load()?;
        if let (Some(active), Some(standby)) = (set.active(), set.prepared())
            && let (KeyState::Active { activated_at }, KeyState::Prepared { activate_at }) =
                (active.state, standby.state)
        {
            if now < activated_at + settings.schedule().prepare_lead().as_secs() {
                println!(
                    "nothing to do: {} has signed only since {} (a rotation has just \
                     happened); its standby {} signs from {}. If {} is compromised, revoke it.",
                    active.kid,
                    time(activated_at),
                    standby.kid,
                    time(activate_at),
                    active.kid
                );
            } else {
                println!(
                    "a rotation is already under way: the standby {} signs from {}, once \
                     caching verifiers hold it",
                    standby.kid,
                    time(activate_at)
                );
            }
        }
    }
    println!(
        "A running issuer picks this up within {}s.",
        svctoken_issuer::LIFECYCLE_INTERVAL.as_secs()
    );
    journal.finish()
}

/// Removes a key from the JWKS at once, says what happened and until when verifiers may still
/// trust it, and warns on standard error when verifiers may reject the new signing key's
/// tokens.
pub(crate) fn keys_revoke(kid: &str, args: &ConfigArgs) -> Result<()> {
    let settings = settings(args)?;
    let schedule = settings.schedule();
    let store = existing_store(&settings)?;
    let journal = CliJournal::new(&settings, store.as_ref());
    let now = SystemClock.unix_secs();
    let revoked = rotation::revoke(store.as_ref(), schedule, kid, now, &journal).map_err(|e| match e {
        svctoken_issuer::Error::UnknownKey(_) => match peer_of(store.as_ref(), kid) {
            Some(replica) => anyhow!(
                "{kid} is a key of replica {replica}, whose private key is there: run `svctoken \
                 keys revoke {kid}` with that replica's configuration and data directory"
            ),
            None => anyhow!("no published key has kid {kid:?}; `svctoken keys list` shows them"),
        },
        other => other.into(),
    })?;
    let what = match revoked.was {
        KeyState::Active { .. } => "the signing key",
        KeyState::Prepared { .. } => "the standby (it never signed)",
        KeyState::Retired { .. } => "a retired key (it no longer signed)",
    };
    println!(
        "revoked {kid}, {what}: it is no longer in the JWKS and its private key is destroyed."
    );
    let stops_signing = if revoked.successor.is_some() {
        ", and stops signing with it,"
    } else {
        ""
    };
    println!(
        "Verifiers that cached the JWKS may trust it until {} (jwks_max_age {}); a running \
         issuer serves the new JWKS{stops_signing} within {}s.",
        time(revoked.revocation.trusted_until),
        humantime::format_duration(schedule.jwks_max_age),
        svctoken_issuer::LIFECYCLE_INTERVAL.as_secs()
    );
    println!(
        "A Convex deployment given the JWKS as a data: URI (`svctoken convex-config \
         --data-uri`) trusts it until it is redeployed with a new `svctoken convex-config \
         --data-uri`."
    );
    if let Some(successor) = &revoked.successor {
        if successor.was_standby {
            println!(
                "The standby {} signs from now (published {}).",
                successor.kid,
                time(successor.published_at)
            );
        }
        match revoked.rejections_until(schedule) {
            None => println!(
                "Every verifier that obeys the JWKS cache headers already holds it: no token \
                 it signs is rejected."
            ),
            Some(until) => warn_rejections(successor, until, now),
        }
    }
    // The revocation itself was said above; the rest is what followed from it.
    print_events(revoked.events.get(1..).unwrap_or_default());
    if matches!(revoked.was, KeyState::Prepared { .. })
        && let Some(standby) = store.load()?.prepared()
    {
        println!(
            "Until {}, caching verifiers may not hold the new standby yet: revoking the signing \
             key before then would make them reject tokens for a while.",
            time(standby.published_at + schedule.prepare_lead().as_secs())
        );
    }
    journal.finish()
}

/// The replica publishing `kid`, when another replica does.
fn peer_of(store: &dyn KeyStore, kid: &str) -> Option<String> {
    let peers = store.peer_keys().ok()?;
    peers
        .into_iter()
        .find(|p| p.key.kid == kid)
        .map(|p| p.replica_id)
}

/// The loud warning for a revocation after which caching verifiers may reject the new signing
/// key's tokens until `until`.
fn warn_rejections(successor: &rotation::Successor, until: u64, now: u64) {
    let window = humantime::format_duration(std::time::Duration::from_secs(until - now));
    let why = if successor.was_standby {
        format!(
            "the standby {} was published only at {}, less than jwks_max_age + 5s ago",
            successor.kid,
            time(successor.published_at)
        )
    } else {
        format!(
            "there was no standby: {} was made now and signs at once",
            successor.kid
        )
    };
    eprintln!(
        "\n*** WARNING: verifiers may REJECT new tokens for up to {window} ***\n\
         {why}. Verifiers such as Convex that cached the JWKS before it was published never \
         refetch it for an unknown key: they reject its tokens until their copy expires, at \
         the latest {}.\n",
        time(until)
    );
}
