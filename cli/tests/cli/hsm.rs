//! The command line with keys in a PKCS#11 token (SoftHSM2, tokens in a temporary directory):
//! `serve` signing in the token, `keys list` saying where each key lives, `kill -9` during
//! rotations, and where the PIN comes from. Each test runs in a child process whose
//! `SOFTHSM2_CONF` names its tokens, which the commands it runs inherit.

use super::*;
use svctoken_issuer::store::PrivateKeys;
use svctoken_tests::softhsm::{SoftHsm, USER_PIN};

/// The replica id the commands derived and keep in `data` (their objects' owner).
fn owner(data: &Path) -> String {
    std::fs::read_to_string(data.join("replica-id"))
        .expect("replica-id")
        .trim()
        .to_owned()
}

/// Every key the store publishes has its pair of objects in the token, and nothing else of
/// this owner's is left.
fn token_holds_exactly_the_published_keys(hsm: &SoftHsm, data: &Path) {
    let store = FileStore::open_with(data, hsm.keys(0, &owner(data))).expect("store");
    let set = store.load().expect("load");
    let prefix = format!("svctoken/{}/", owner(data));
    let objects: Vec<_> = (hsm.objects(0).into_iter())
        .filter(|o| o.id.starts_with(&prefix))
        .collect();
    for key in &set.keys {
        let pair = objects.iter().filter(|o| o.label == key.kid).count();
        assert_eq!(pair, 2, "{}: a private and a public object", key.kid);
        store.signing_key(&key.kid).expect("it signs");
    }
    assert_eq!(
        objects.len(),
        2 * set.keys.len(),
        "orphans left: {objects:?}"
    );
}

#[test]
fn serve_signs_in_the_token_and_keys_list_says_where_each_key_lives() {
    let Some(hsm) = SoftHsm::in_child("serve with keys in a token", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "sts_hsm-serve-test-secret";
    let server = serve_with_client_w(dir.path(), secret, &format!("[keys]\n{}", hsm.keys_toml(0)));
    let issuer = server.issuer();
    let (status, body) = fetch_token(&issuer, "w", secret, None);
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    let claims = verify_served(&issuer, token, "convex");
    assert_eq!(claims["sub"], "svc:w");

    let data = dir.path().join("data");
    assert!(
        !data.join("private").exists(),
        "no private key file written"
    );
    let list = ok(&svctoken(
        dir.path(),
        &["keys", "list", "--config", "svctoken.toml"],
    ));
    let active = listed(&list, "active");
    let standby = listed(&list, "standby");
    for kid in [&active, &standby] {
        let location = format!("    private key: pkcs11:token=token-0;object={kid};type=private");
        assert!(list.lines().any(|l| l == location), "{list}");
    }
    assert!(!list.contains("MISSING"), "{list}");
    let (_, jwks) = http(&format!("{issuer}/.well-known/jwks.json"), "GET", &[], "");
    assert!(jwks.contains(&active) && jwks.contains(&standby), "{jwks}");

    // A revocation from the command line while it serves: the revoked key's objects are
    // destroyed, a new standby is made in the token, and the running issuer signs with the
    // standby that took over.
    ok(&svctoken(
        dir.path(),
        &["keys", "revoke", &active, "--config", "svctoken.toml"],
    ));
    token_holds_exactly_the_published_keys(&hsm, &data);
    assert!(hsm.objects(0).iter().all(|o| o.label != active));
    // The issuer reloads at once when its key fails to sign (its objects destroyed by the
    // revocation), not at its next lifecycle run.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = fetch_token(&issuer, "w", secret, None);
        if status != 200 {
            assert_eq!(body["error"], "server_error", "{body}");
            assert!(
                Instant::now() < deadline,
                "the issuer never picked up the revocation"
            );
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let token = body["access_token"].as_str().expect("token");
        let (header, _) = svctoken_jwks::dangerous::decode_unverified(token).expect("jwt");
        if header["kid"] == standby.as_str() {
            verify_served(&issuer, token, "convex");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the issuer never picked up the rotation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // doctor --config on this machine names the token and finds every published key signing;
    // with the standby's objects gone, it fails naming it.
    let doctor = |args: &[&str]| {
        let mut full = vec!["doctor", "--issuer", &issuer, "--config", "svctoken.toml"];
        full.extend_from_slice(args);
        svctoken(dir.path(), &full)
    };
    let out = ok(&doctor(&[]));
    assert!(
        out.contains("pass  key backend: pkcs11: the PKCS#11 token \"token-0\" of "),
        "{out}"
    );
    assert!(
        out.contains("pass  private keys: 2 published keys, each loads and signs (the active one: pkcs11:token=token-0;object="),
        "{out}"
    );
    let store = FileStore::open_with(&data, hsm.keys(0, &owner(&data))).expect("store");
    let set = store.load().expect("load");
    let next = &set.prepared().expect("a standby").kid;
    store
        .destroy_key(next)
        .expect("its objects destroyed behind the issuer's back");
    let failed = doctor(&[]);
    let out = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert_eq!(failed.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("fail  private keys: {next}: ")) && out.contains("not in the token"),
        "{out}"
    );
    server.stop();
}

/// `kill -9` at arbitrary moments of rotations and revocations with keys in the token (RSA
/// keys, which the token takes long enough to generate to be caught mid-way): the store always
/// loads, no published key is lost, the signing key always signs, and the next writer sweeps
/// the objects killed ones left.
#[test]
fn kill_9_during_rotations_in_a_token_loses_no_published_key() {
    let Some(hsm) = SoftHsm::in_child("kill -9 with keys in a token", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("rsa.toml"),
        format!(
            "data_dir = \"{}\"\n[keys]\nalgorithm = \"RS256\"\nrsa_bits = 3072\n{}",
            data.display(),
            hsm.keys_toml(0)
        ),
    )
    .expect("write");
    ok(&svctoken(
        dir.path(),
        &[
            "mint", "--sub", "svc:x", "--aud", "convex", "--config", "rsa.toml",
        ],
    ));
    let keys = PrivateKeys::pkcs11(&hsm.config(0, 2), &owner(&data)).expect("token");
    let store = FileStore::open_with(&data, keys).expect("store");

    let interrupted = kill_9_rounds(dir.path(), "rsa.toml", &store, 16, 600);
    assert!(
        interrupted >= 4,
        "only {interrupted} runs were interrupted: the test proves nothing"
    );
    // The next writer sweeps what killed ones left in the token.
    ok(&svctoken(
        dir.path(),
        &["keys", "rotate", "--config", "rsa.toml"],
    ));
    token_holds_exactly_the_published_keys(&hsm, &data);
}

/// The PIN comes from `pin_file` or `SVCTOKEN_PKCS11_PIN`, never the command line; without
/// one, with a wrong one, or from a file others can read, the command says what to fix, and
/// no output holds a PIN.
#[test]
fn the_pin_comes_from_a_file_or_the_environment_and_is_never_printed() {
    let Some(hsm) = SoftHsm::in_child("the token's PIN", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let without_file: String = (hsm.keys_toml(0).lines())
        .filter(|l| !l.starts_with("pin_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        dir.path().join("env.toml"),
        format!("data_dir = \"data\"\n[keys]\n{without_file}"),
    )
    .expect("write");
    let mint = |pin: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args([
                "mint", "--sub", "svc:x", "--aud", "convex", "--config", "env.toml",
            ])
            .current_dir(dir.path())
            .env_remove("SVCTOKEN_PKCS11_PIN");
        if let Some(pin) = pin {
            command.env("SVCTOKEN_PKCS11_PIN", pin);
        }
        command.output().expect("run")
    };
    let err = fails(&mint(None));
    assert!(
        err.contains("set pin_file, or the environment variable SVCTOKEN_PKCS11_PIN"),
        "{err}"
    );
    let err = fails(&mint(Some("9999-wrong-pin")));
    assert!(err.contains("refused the user PIN"), "{err}");
    assert!(!err.contains("9999-wrong-pin"), "{err}");
    let token = ok(&mint(Some(USER_PIN)));
    assert!(token.starts_with("eyJ") && !token.contains(USER_PIN));

    let open = dir.path().join("open-pin");
    std::fs::write(&open, USER_PIN).expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(
        dir.path().join("open.toml"),
        format!(
            "data_dir = \"data\"\n[keys]\n{without_file}pin_file = \"{}\"\n",
            open.display()
        ),
    )
    .expect("write");
    let err = fails(&svctoken(
        dir.path(),
        &["keys", "list", "--config", "open.toml"],
    ));
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(USER_PIN), "{err}");
}
