//! SoftHSM2 tokens for the tests of the PKCS#11 key backend, each set in a temporary directory
//! of its own (a `softhsm2.conf` naming a token directory there, passed as `SOFTHSM2_CONF`).
//!
//! SoftHSM2 comes from Debian's `softhsm2` package (`scripts/install-test-deps` installs it).
//! Without it a test skips with a printed reason, except under `CI=true`, where that is a
//! failure.
//!
//! The module reads `SOFTHSM2_CONF` once, when a process first initialises it, and a test may
//! not set a variable in its own process; so a test that uses a token in process
//! ([`SoftHsm::in_child`]) runs itself again in a child process that has it.

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use svctoken_issuer::store::PrivateKeys;
use svctoken_issuer::store::pkcs11::{PinSource, Pkcs11Config};

use crate::interop::under_ci;

/// Where Debian's package puts the module.
pub const MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

/// The user PIN of every test token.
pub const USER_PIN: &str = "1234-test-pin";
const SO_PIN: &str = "5678-test-so-pin";
/// Set in the child process [`SoftHsm::in_child`] starts: the directory its parent made.
const CHILD_DIR: &str = "SVCTOKEN_TEST_SOFTHSM_DIR";

/// Tokens `token-0`, `token-1`... in a temporary directory.
pub struct SoftHsm {
    dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
    module: PathBuf,
}

/// Skips a test (prints why and returns `None`), or fails it under CI.
fn unavailable<T>(what: &str, why: impl std::fmt::Display) -> Option<T> {
    if under_ci() {
        panic!(
            "{what}: {why}; under CI=true SoftHSM2 must be installed (scripts/install-test-deps \
             installs Debian's softhsm2)"
        );
    }
    eprintln!("SKIPPED: {what}: {why} (apt-get install softhsm2 to run it)");
    None
}

impl SoftHsm {
    /// A directory with `tokens` initialised tokens (`token-0`...), each with [`USER_PIN`], or
    /// `None` (a printed skip) when SoftHSM2 is not installed.
    pub fn new(what: &str, tokens: usize) -> Option<SoftHsm> {
        let Some(module) = MODULE_PATHS.iter().map(Path::new).find(|p| p.exists()) else {
            return unavailable(what, "the SoftHSM2 module is not installed");
        };
        let owned = tempfile::tempdir().expect("tempdir");
        let dir = owned.path().to_owned();
        std::fs::create_dir(dir.join("tokens")).expect("token directory");
        std::fs::write(
            dir.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        let pin = dir.join("pin");
        std::fs::write(&pin, format!("{USER_PIN}\n")).expect("pin file");
        set_mode(&pin, 0o600);
        let hsm = SoftHsm {
            dir,
            _owned: Some(owned),
            module: module.to_owned(),
        };
        for i in 0..tokens {
            let label = hsm.label(i);
            let mut init = hsm.command("softhsm2-util");
            init.args([
                "--init-token",
                "--free",
                "--label",
                &label,
                "--pin",
                USER_PIN,
                "--so-pin",
                SO_PIN,
            ]);
            let output = match init.output() {
                Ok(output) => output,
                Err(e) => return unavailable(what, format!("softhsm2-util: {e}")),
            };
            assert!(
                output.status.success(),
                "softhsm2-util --init-token: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Some(hsm)
    }

    /// In the parent: makes the tokens, runs the calling test again in a child process whose
    /// `SOFTHSM2_CONF` names them, fails if it failed, and returns `None` (the child did the
    /// test). In that child: `Some`, the parent's tokens. `None` with a printed skip when
    /// SoftHSM2 is not installed. Call it first thing in a `#[test]`.
    pub fn in_child(what: &str, tokens: usize) -> Option<SoftHsm> {
        if let Some(dir) = std::env::var_os(CHILD_DIR) {
            let module = MODULE_PATHS.iter().map(Path::new).find(|p| p.exists());
            return Some(SoftHsm {
                dir: dir.into(),
                _owned: None,
                module: module.expect("the parent found the module").to_owned(),
            });
        }
        let hsm = SoftHsm::new(what, tokens)?;
        // libtest runs each test on a thread named after it.
        let name = std::thread::current()
            .name()
            .expect("called from a test's thread")
            .to_owned();
        let output = Command::new(std::env::current_exe().expect("test binary"))
            .args([&name, "--exact", "--nocapture", "--test-threads=1"])
            .env("SOFTHSM2_CONF", hsm.conf())
            .env(CHILD_DIR, &hsm.dir)
            .output()
            .expect("the test binary runs again");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        eprintln!("{stderr}");
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{name} in a child process with SOFTHSM2_CONF: {}\n{stdout}",
            output.status
        );
        None
    }

    /// The label of token `i`.
    pub fn label(&self, i: usize) -> String {
        format!("token-{i}")
    }

    /// The `softhsm2.conf` to pass as `SOFTHSM2_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// The module.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// A file holding [`USER_PIN`], mode 0600.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.join("pin")
    }

    /// `program` with `SOFTHSM2_CONF` naming these tokens.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("SOFTHSM2_CONF", self.conf());
        command
    }

    /// The `[keys]` lines of a configuration keeping keys in token `i`.
    pub fn keys_toml(&self, i: usize) -> String {
        format!(
            "backend = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\n",
            self.module.display(),
            self.label(i),
            self.pin_file().display()
        )
    }

    /// The backend configuration of token `i`, with at most `sessions` sessions.
    pub fn config(&self, i: usize, sessions: usize) -> Pkcs11Config {
        Pkcs11Config {
            module: self.module.clone(),
            token_label: self.label(i),
            pin: PinSource::File(self.pin_file()),
            sessions,
        }
    }

    /// Private keys in token `i` owned by `owner` (in the child [`SoftHsm::in_child`] made).
    pub fn keys(&self, i: usize, owner: &str) -> PrivateKeys {
        PrivateKeys::pkcs11(&self.config(i, 4), owner).expect("the token opens")
    }
}

/// An object in a token, as the module describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenObject {
    /// `private` or `public` (a key), else the class number.
    pub class: String,
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`, as text.
    pub id: String,
    /// `CKA_SENSITIVE` (private keys).
    pub sensitive: Option<bool>,
    /// `CKA_EXTRACTABLE` (private keys).
    pub extractable: Option<bool>,
}

impl SoftHsm {
    /// A session on token `i`, logged in as its user (in the child [`SoftHsm::in_child`]
    /// made: the module reads this process's `SOFTHSM2_CONF`).
    fn session(&self, i: usize) -> Session {
        let module = Pkcs11::new(&self.module).expect("module");
        match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        let label = self.label(i);
        let slot = (module.get_slots_with_initialized_token().expect("slots"))
            .into_iter()
            .find(|s| {
                module
                    .get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == label)
            })
            .unwrap_or_else(|| panic!("no token {label}"));
        let session = module.open_rw_session(slot).expect("session");
        match session.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("C_Login: {e}"),
        }
        session
    }

    /// Every key object in token `i`.
    pub fn objects(&self, i: usize) -> Vec<TokenObject> {
        let session = self.session(i);
        let mut objects = Vec::new();
        for handle in session.find_objects(&[]).expect("C_FindObjects") {
            let wanted = [
                AttributeType::Class,
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::Sensitive,
                AttributeType::Extractable,
            ];
            let mut object = TokenObject {
                class: String::new(),
                label: String::new(),
                id: String::new(),
                sensitive: None,
                extractable: None,
            };
            for attribute in session.get_attributes(handle, &wanted).expect("attributes") {
                match attribute {
                    Attribute::Class(c) if c == ObjectClass::PRIVATE_KEY => {
                        object.class = "private".into()
                    }
                    Attribute::Class(c) if c == ObjectClass::PUBLIC_KEY => {
                        object.class = "public".into()
                    }
                    Attribute::Class(c) => object.class = format!("{c:?}"),
                    Attribute::Label(l) => object.label = String::from_utf8_lossy(&l).into(),
                    Attribute::Id(id) => object.id = String::from_utf8_lossy(&id).into(),
                    Attribute::Sensitive(b) => object.sensitive = Some(b),
                    Attribute::Extractable(b) => object.extractable = Some(b),
                    _ => {}
                }
            }
            objects.push(object);
        }
        objects
    }

    /// A P-256 key pair in token `i` with this `CKA_LABEL` and `CKA_ID` (another
    /// application's, or what a writer killed mid-generation left).
    pub fn add_key(&self, i: usize, label: &str, id: &str) {
        let session = self.session(i);
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.as_bytes().to_vec()),
            ]
        };
        let mut public = common(false);
        public.push(Attribute::EcParams(
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07].into(),
        ));
        let mut private = common(true);
        private.push(Attribute::Sign(true));
        session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .expect("another application's key");
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
