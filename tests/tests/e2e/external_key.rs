//! A key held outside the process (an HSM) that takes its time to sign: while it signs, the
//! issuer's other requests go on, and other signatures run side by side, beyond the worker
//! threads' count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use svctoken_issuer::store::{KeySet, KeyStore, MemoryStore, StoreLock};
use svctoken_jwks::{Algorithm, ExternalKey, Jwk, SigningKey};
use svctoken_mint::SystemClock;
use svctoken_tests::harness::{spawn_issuer_with, worker_client};

/// Signs with a key in memory after a pause, counting how many signatures are under way.
struct SlowDevice {
    key: SigningKey,
    signing: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl ExternalKey for SlowDevice {
    fn sign(&self, message: &[u8]) -> svctoken_jwks::Result<Vec<u8>> {
        let now = self.signing.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        self.signing.fetch_sub(1, Ordering::SeqCst);
        self.key.sign(message)
    }
}

/// A memory store whose keys sign through a [`SlowDevice`].
struct SlowStore {
    inner: MemoryStore,
    signing: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl KeyStore for SlowStore {
    fn describe(&self) -> String {
        "slow device".into()
    }
    fn lock(&self) -> svctoken_issuer::Result<StoreLock> {
        self.inner.lock()
    }
    fn load(&self) -> svctoken_issuer::Result<KeySet> {
        self.inner.load()
    }
    fn save(&self, set: &mut KeySet) -> svctoken_issuer::Result<()> {
        self.inner.save(set)
    }
    fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> svctoken_issuer::Result<Jwk> {
        self.inner.create_key(alg, rsa_bits)
    }
    fn signing_key(&self, kid: &str) -> svctoken_issuer::Result<SigningKey> {
        let key = self.inner.signing_key(kid)?;
        let public = key.public_jwk().clone();
        let device = SlowDevice {
            key,
            signing: Arc::clone(&self.signing),
            most: Arc::clone(&self.most),
        };
        Ok(SigningKey::external(&public, Arc::new(device))?)
    }
    fn destroy_key(&self, kid: &str) -> svctoken_issuer::Result<()> {
        self.inner.destroy_key(kid)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_device_holds_up_neither_other_requests_nor_other_signatures() {
    let (signing, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let store = Arc::new(SlowStore {
        inner: MemoryStore::new(),
        signing: Arc::clone(&signing),
        most: Arc::clone(&most),
    });
    let t = spawn_issuer_with(&worker_client(""), store, Arc::new(SystemClock)).await;
    most.store(0, Ordering::SeqCst);
    let t = Arc::new(t);
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let t = Arc::clone(&t);
            tokio::spawn(async move { t.token(&[]).await })
        })
        .collect();
    // While eight signatures wait on the device, the JWKS answers.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        signing.load(Ordering::SeqCst) > 0,
        "the signatures are under way"
    );
    let jwks = t.jwks(&format!("{}/.well-known/jwks.json", t.url)).await;
    assert!(!jwks.keys.is_empty());
    assert!(
        signing.load(Ordering::SeqCst) > 0,
        "answered while they signed"
    );
    for request in requests {
        let token = request.await.expect("join");
        t.verify(&token, "convex").await;
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        most > 2,
        "at most {most} signatures at once: the two worker threads were held"
    );
}
