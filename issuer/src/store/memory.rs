//! An in-memory store, for tests and for processes that keep nothing.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use svctoken_jwks::{Algorithm, Jwk, SigningKey, dangerous};
use zeroize::Zeroizing;

use super::{KeySet, KeyStore, StoreLock};
use crate::{Error, Result};

#[derive(Default)]
struct State {
    set: KeySet,
    private: HashMap<String, Zeroizing<String>>,
}

/// Keeps everything in memory. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    writer: Arc<Writer>,
}

/// A writer lock whose guard is owned (`Send + 'static`), as [`StoreLock`] requires.
#[derive(Default)]
struct Writer {
    held: Mutex<bool>,
    released: Condvar,
}

struct WriterGuard(Arc<Writer>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.released.notify_one();
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KeyStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn lock(&self) -> Result<StoreLock> {
        let mut held = self
            .writer
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *held {
            held = self
                .writer
                .released
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *held = true;
        Ok(Box::new(WriterGuard(self.writer.clone())))
    }

    fn load(&self) -> Result<KeySet> {
        Ok(self.state().set.clone())
    }

    fn save(&self, set: &mut KeySet) -> Result<()> {
        let mut state = self.state();
        if state.set.generation != set.generation {
            return Err(super::stale_save(
                self.describe(),
                state.set.generation,
                set.generation,
            ));
        }
        set.generation += 1;
        state.set = set.clone();
        Ok(())
    }

    fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
        let key = match alg {
            Algorithm::RS256 => SigningKey::generate_rsa(rsa_bits)?,
            other => SigningKey::generate(other)?,
        };
        let jwk = key.public_jwk().clone();
        self.state()
            .private
            .insert(key.kid().to_owned(), dangerous::export_pkcs8_pem(&key)?);
        Ok(jwk)
    }

    fn signing_key(&self, kid: &str) -> Result<SigningKey> {
        let state = self.state();
        let pem = state
            .private
            .get(kid)
            .ok_or_else(|| Error::UnknownKey(kid.to_owned()))?;
        Ok(SigningKey::from_pkcs8_pem(pem)?)
    }

    fn destroy_key(&self, kid: &str) -> Result<()> {
        self.state().private.remove(kid);
        Ok(())
    }
}
