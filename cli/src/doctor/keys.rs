//! `svctoken doctor --config`: the key store that file names, checked on this machine: where
//! its private keys live (files or a PKCS#11 token), and that each published key's private half
//! loads and signs.

use std::path::Path;

use svctoken_issuer::settings::KeyBackend;

use super::report::{Outcome, Report};
use crate::ConfigArgs;

/// Adds the `key backend` and `private keys` lines for the store `config` names (with
/// `SVCTOKEN_DATA_DIR` and `SVCTOKEN_DATABASE_URL` applied, as `serve` applies them).
pub(super) fn check(config: &Path, report: &mut Report) {
    let args = ConfigArgs {
        config: Some(config.to_owned()),
        data_dir: std::env::var_os("SVCTOKEN_DATA_DIR").map(Into::into),
        database_url: std::env::var("SVCTOKEN_DATABASE_URL").ok(),
    };
    let settings = match crate::settings(&args) {
        Ok(settings) => settings,
        Err(e) => {
            report.add("key backend", Outcome::fail(format!("{e:#}")));
            return;
        }
    };
    let backend = match settings.key_backend() {
        KeyBackend::Files => format!(
            "files: PKCS#8 files, mode 0600, in {}",
            settings.data_dir().join("private").display()
        ),
        KeyBackend::Pkcs11(token) => format!(
            "pkcs11: the PKCS#11 token {:?} of {} (private keys generated in it, never \
             extractable; up to {} sessions)",
            token.token_label,
            token.module.display(),
            token.sessions
        ),
    };
    let store = match crate::keys::existing_store(&settings) {
        Ok(store) => store,
        Err(e) => {
            report.add("key backend", Outcome::fail(format!("{backend}: {e:#}")));
            return;
        }
    };
    report.add("key backend", Outcome::pass(backend));
    let set = match store.load() {
        Ok(set) => set,
        Err(e) => {
            report.add("private keys", Outcome::fail(format!("{e:#}")));
            return;
        }
    };
    let missing: Vec<String> = (set.keys.iter())
        .filter_map(|k| {
            store
                .signing_key(&k.kid)
                .err()
                .map(|e| format!("{}: {e}", k.kid))
        })
        .collect();
    let outcome = if !missing.is_empty() {
        Outcome::fail(missing.join("; "))
    } else if set.keys.is_empty() {
        Outcome::warn(format!(
            "no keys yet in {} (the issuer makes them when it starts)",
            store.describe()
        ))
    } else {
        Outcome::pass(format!(
            "{} published keys, each loads and signs (the active one: {})",
            set.keys.len(),
            (set.active()).map_or_else(
                || "none yet".to_owned(),
                |k| store.private_key_location(&k.kid)
            )
        ))
    };
    report.add("private keys", outcome);
}
