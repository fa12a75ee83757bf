//! [`PrivateKeys`]: where a store's private keys live, files or an HSM, whichever store holds
//! the key set (the files store, or a replica's lineage on PostgreSQL).

use svctoken_jwks::{Algorithm, Jwk, SigningKey};

use super::KeySet;
use super::pkcs11::{Pkcs11Config, Pkcs11Keys};
use super::private_dir::PrivateKeyDir;
use crate::Result;
use crate::settings::{KeyBackend, Settings};

/// The private halves of a store's keys: PKCS#8 files (mode 0600) in a directory, or objects
/// in a PKCS#11 token that never leave it.
#[derive(Clone, Debug)]
pub struct PrivateKeys(Backend);

#[derive(Clone, Debug)]
enum Backend {
    Files(PrivateKeyDir),
    Pkcs11(Pkcs11Keys),
}

impl PrivateKeys {
    /// Files in `dir` (created 0700).
    pub fn files(dir: impl Into<std::path::PathBuf>) -> Result<Self> {
        Ok(PrivateKeys(Backend::Files(PrivateKeyDir::open(
            dir.into(),
        )?)))
    }

    /// The token `config` names, logged in; `owner` (the replica id) names this process's
    /// objects among whatever else the token holds.
    pub fn pkcs11(config: &Pkcs11Config, owner: &str) -> Result<Self> {
        Ok(PrivateKeys(Backend::Pkcs11(Pkcs11Keys::open(
            config, owner,
        )?)))
    }

    /// What `settings` name: `[keys] backend`, files in `<data_dir>/private` by default.
    /// The objects in a token carry `replica_id`, or with none (one process, the files store)
    /// the id kept in `<data_dir>/replica-id`.
    pub fn open(settings: &Settings, replica_id: Option<&str>) -> Result<Self> {
        let data_dir = settings.data_dir();
        match settings.key_backend() {
            KeyBackend::Files => Self::files(data_dir.join("private")),
            KeyBackend::Pkcs11(config) => {
                let owner = match replica_id {
                    Some(id) => id.to_owned(),
                    None => {
                        std::fs::create_dir_all(data_dir).map_err(crate::Error::io(data_dir))?;
                        crate::postgres::replica_id_for(None, data_dir)?
                    }
                };
                Self::pkcs11(config, &owner)
            }
        }
    }

    /// Where they live, for messages: a directory, or a token and its module.
    pub fn describe(&self) -> String {
        match &self.0 {
            Backend::Files(dir) => format!("files in {}", dir.dir().display()),
            Backend::Pkcs11(keys) => keys.describe().to_owned(),
        }
    }

    /// Where the key `kid` lives: its file, or its PKCS#11 URI (RFC 7512).
    pub fn location(&self, kid: &str) -> String {
        match &self.0 {
            Backend::Files(dir) => dir.location(kid),
            Backend::Pkcs11(keys) => keys.location(kid),
        }
    }

    pub(crate) fn create(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
        match &self.0 {
            Backend::Files(dir) => dir.create(alg, rsa_bits),
            Backend::Pkcs11(keys) => keys.create(alg, rsa_bits),
        }
    }

    pub(crate) fn load(&self, kid: &str, store: &str) -> Result<SigningKey> {
        match &self.0 {
            Backend::Files(dir) => dir.load(kid, store),
            Backend::Pkcs11(keys) => keys.load(kid),
        }
    }

    pub(crate) fn destroy(&self, kid: &str) -> Result<()> {
        match &self.0 {
            Backend::Files(dir) => dir.destroy(kid),
            Backend::Pkcs11(keys) => keys.destroy(kid),
        }
    }

    /// Removes what a killed writer left (see the backends); call it with the lock held.
    pub(crate) fn sweep(&self, set: &KeySet) {
        match &self.0 {
            Backend::Files(dir) => dir.sweep(set),
            Backend::Pkcs11(keys) => keys.sweep(set),
        }
    }
}
