//! The files store (the embedded default): a directory with the key set as JSON and one PEM
//! file per private key.
//!
//! ```text
//! <dir>/keys.json         the key set, replaced atomically (write, fsync, rename, fsync dir)
//! <dir>/private/<kid>.pem PKCS#8 private keys, mode 0600, written the same way
//! <dir>/lock              held (flock) by the one process changing the set
//! ```
//!
//! or, with [`FileStore::open_with`], private keys elsewhere (an HSM).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use svctoken_jwks::{Algorithm, Jwk, SigningKey};

use super::{KeySet, KeyStore, PrivateKeys, StoreLock};
use crate::{Error, Result};

const SET_FILE: &str = "keys.json";

/// A directory-backed key store.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
    private: PrivateKeys,
}

impl FileStore {
    /// Opens the store in `dir`, creating the directory (mode 0700) if needed: what a process
    /// that makes its first key on an empty store uses. See [`FileStore::open_existing`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let private = PrivateKeys::files(dir.join("private"))?;
        Self::open_with(dir, private)
    }

    /// Opens the store in `dir` with its private keys in `private` (an HSM, say) instead of
    /// `<dir>/private`.
    pub fn open_with(dir: impl Into<PathBuf>, private: PrivateKeys) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(Error::io(&dir))?;
        Ok(FileStore { dir, private })
    }

    /// Opens the store in `dir` only if one was created there (it holds a key set), creating
    /// nothing otherwise: for tools that manage an existing issuer's keys, where a mistyped
    /// directory must be an error, not a new empty store.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !Self::exists(&dir) {
            return Err(Error::Store {
                store: dir.display().to_string(),
                message: format!("no key store here (no {SET_FILE})"),
            });
        }
        Self::open(dir)
    }

    /// True when a store was created in `dir` (it holds a key set).
    pub fn exists(dir: &Path) -> bool {
        dir.join(SET_FILE).is_file()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Store {
            store: self.describe(),
            message: message.into(),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (mode `mode`),
/// fsync, rename over `path`, fsync the directory. A crash leaves the old or the new file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(Error::io(&tmp))?;
    file.write_all(bytes).map_err(Error::io(&tmp))?;
    file.sync_all().map_err(Error::io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(Error::io(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

impl KeyStore for FileStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io(&path))?;
        // flock(2): released when the file is closed, including when the process dies.
        file.lock().map_err(Error::io(&path))?;
        // Sweep what a killed writer left: temporary files here, orphaned private keys.
        if let Ok(set) = self.load() {
            self.private.sweep(&set);
            sweep_temporary_files(&self.dir);
        }
        Ok(Box::new(file))
    }

    fn load(&self) -> Result<KeySet> {
        let path = self.dir.join(SET_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| self.err(format!("{} is not a valid key set: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeySet::default()),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    fn save(&self, set: &mut KeySet) -> Result<()> {
        let stored = self.load()?.generation;
        if stored != set.generation {
            return Err(super::stale_save(self.describe(), stored, set.generation));
        }
        set.generation += 1;
        let written = serde_json::to_vec_pretty(set)
            .map_err(|e| self.err(e.to_string()))
            .and_then(|mut json| {
                json.push(b'\n');
                write_atomic(&self.dir.join(SET_FILE), &json, 0o644)
            });
        if written.is_err() {
            set.generation -= 1;
        }
        written
    }

    fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
        self.private.create(alg, rsa_bits)
    }

    fn signing_key(&self, kid: &str) -> Result<SigningKey> {
        self.private.load(kid, &self.describe())
    }

    fn destroy_key(&self, kid: &str) -> Result<()> {
        self.private.destroy(kid)
    }

    fn private_key_location(&self, kid: &str) -> String {
        self.private.location(kid)
    }
}

/// Removes the temporary files a writer killed mid-write left in `dir` (best effort).
pub(super) fn sweep_temporary_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp.") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_is_written_without_temporary_files_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        let jwk = store.create_key(Algorithm::ES256, 2048).expect("create");
        let kid = jwk.kid.as_deref().expect("kid");
        let path = dir.path().join("private").join(format!("{kid}.pem"));
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut set = KeySet::default();
        store.save(&mut set).expect("save");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left behind");
    }

    #[test]
    fn the_lock_holder_sweeps_what_a_killed_writer_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        let named = store.create_key(Algorithm::ES256, 2048).expect("create");
        let orphan = store.create_key(Algorithm::ES256, 2048).expect("create");
        let mut set = KeySet::default();
        set.keys.push(crate::store::KeyRecord {
            kid: named.kid.clone().expect("kid"),
            alg: Algorithm::ES256,
            state: crate::store::KeyState::Active { activated_at: 1 },
            public: named.clone(),
            published_at: 1,
        });
        store.save(&mut set).expect("save");
        let tmp = dir.path().join(".keys.json.tmp.999999");
        fs::write(&tmp, b"half").expect("write");
        drop(store.lock().expect("lock"));
        assert!(!tmp.exists(), "temporary file swept");
        assert!(
            store
                .signing_key(orphan.kid.as_deref().expect("kid"))
                .is_err(),
            "orphan swept"
        );
        assert!(
            store
                .signing_key(named.kid.as_deref().expect("kid"))
                .is_ok(),
            "named key kept"
        );
    }

    #[test]
    fn a_corrupt_key_set_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).expect("open");
        fs::write(dir.path().join(SET_FILE), b"{not json").expect("write");
        let err = store.load().expect_err("corrupt");
        assert!(err.to_string().contains("keys.json"), "{err}");
    }
}
