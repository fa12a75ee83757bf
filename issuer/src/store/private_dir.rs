//! [`PrivateKeyDir`]: private keys as PKCS#8 PEM files in one directory, mode 0600, written
//! atomically. The files store keeps its keys here, and so does each replica of a store shared
//! on PostgreSQL (its private keys never leave the replica's own `data_dir`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use svctoken_jwks::{Algorithm, Jwk, SigningKey, dangerous};
use zeroize::Zeroizing;

use super::KeySet;
use super::files::{sweep_temporary_files, write_atomic};
use crate::{Error, Result};

/// A directory of private keys, one `<kid>.pem` file each.
#[derive(Clone, Debug)]
pub(crate) struct PrivateKeyDir {
    dir: PathBuf,
}

impl PrivateKeyDir {
    /// The directory `dir`, created (mode 0700) if needed.
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(Error::io(&dir))?;
        Ok(PrivateKeyDir { dir })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn path(&self, kid: &str) -> Result<PathBuf> {
        check_kid(kid)?;
        Ok(self.dir.join(format!("{kid}.pem")))
    }

    /// Where the key `kid` lives: its file.
    pub(crate) fn location(&self, kid: &str) -> String {
        self.dir.join(format!("{kid}.pem")).display().to_string()
    }

    /// Generates a key pair, writes its private half durably (0600), returns its public JWK.
    pub(crate) fn create(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
        let key = match alg {
            Algorithm::RS256 => SigningKey::generate_rsa(rsa_bits)?,
            other => SigningKey::generate(other)?,
        };
        let pem = dangerous::export_pkcs8_pem(&key)?;
        write_atomic(&self.path(key.kid())?, pem.as_bytes(), 0o600)?;
        Ok(key.public_jwk().clone())
    }

    /// Loads the private key `kid`, checking the file holds that key.
    pub(crate) fn load(&self, kid: &str, store: &str) -> Result<SigningKey> {
        let path = self.path(kid)?;
        let pem = match fs::read_to_string(&path) {
            Ok(pem) => Zeroizing::new(pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Store {
                    store: store.to_owned(),
                    message: format!(
                        "the private key of {kid} is missing ({} does not exist): restore it \
                         from a backup, or run `svctoken keys revoke {kid}` to withdraw the key \
                         (the standby signs in its place)",
                        path.display()
                    ),
                });
            }
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let key = SigningKey::from_pkcs8_pem(&pem)?;
        if key.kid() != kid {
            return Err(Error::Store {
                store: store.to_owned(),
                message: format!("{} holds key {}, not {kid}", path.display(), key.kid()),
            });
        }
        Ok(key)
    }

    /// Deletes the private key `kid`; a missing one is not an error.
    pub(crate) fn destroy(&self, kid: &str) -> Result<()> {
        let path = self.path(kid)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes what a process killed mid-write left behind: temporary files, and private keys
    /// `set` does not name (written, then the process died before saving the set). Only call
    /// it with the store's lock held, when no writer can be between those two steps. Best
    /// effort: a failure here costs disk space, never a key.
    pub(crate) fn sweep(&self, set: &KeySet) {
        sweep_temporary_files(&self.dir);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let orphan = (name.to_string_lossy().strip_suffix(".pem"))
                .is_some_and(|kid| set.get(kid).is_none());
            if orphan {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Refuses what is not a kid: a kid is a base64url thumbprint, and anything else never names
/// a file or a token object.
pub(crate) fn check_kid(kid: &str) -> Result<()> {
    let ok = !kid.is_empty()
        && kid.len() <= 128
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::UnknownKey(kid.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_0600_and_only_kids_name_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = PrivateKeyDir::open(dir.path().join("private")).expect("open");
        let jwk = keys.create(Algorithm::ES256, 2048).expect("create");
        let kid = jwk.kid.as_deref().expect("kid");
        let mode = fs::metadata(keys.path(kid).expect("path"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(keys.load(kid, "t").expect("load").kid(), kid);
        for bad in ["", "../keys", "a/b", "a.pem"] {
            assert!(
                matches!(keys.load(bad, "t"), Err(Error::UnknownKey(_))),
                "{bad:?}"
            );
        }
        keys.destroy(kid).expect("destroy");
        keys.destroy(kid).expect("destroying twice is fine");
        let missing = keys.load(kid, "t").expect_err("destroyed").to_string();
        assert!(
            missing.contains(&format!("`svctoken keys revoke {kid}`")),
            "{missing}"
        );
    }
}
