//! Replays the fuzz corpus: every file in `fuzz/corpus/<target>/` (the minimised inputs the
//! fuzzer kept) and `fuzz/artifacts/<target>/` (inputs that crashed a target once, since fixed)
//! through the target's body in `svctoken_tests::fuzz`, so `cargo test` catches a regression
//! without cargo-fuzz. A missing or empty corpus fails, and so does a corpus that no longer
//! reaches the paths its seeds were made for (say, after the fixture keys changed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use svctoken_tests::fuzz::{TARGETS, run};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; empty if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Replays `target`'s corpus and artifacts; the paths the inputs were accepted along.
fn replay(target: &str) -> BTreeSet<&'static str> {
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is missing or empty: seed it (fuzz/README.md)"
    );
    let artifacts = files(&fuzz_dir().join("artifacts").join(target));
    let mut accepted = BTreeSet::new();
    for path in corpus.iter().chain(&artifacts) {
        let data = std::fs::read(path).expect("a readable corpus file");
        // A panic here names the target; the test's name and the file list below the input.
        eprintln!("{target}: {}", path.display());
        let outcome = run(target, &data).expect("a known target");
        accepted.extend(outcome);
    }
    accepted
}

fn assert_reaches(target: &str, expected: &[&str]) {
    let accepted = replay(target);
    for path in expected {
        assert!(
            accepted.contains(path),
            "no input of fuzz/corpus/{target} is accepted as {path:?} (accepted: {accepted:?})"
        );
    }
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    for target in TARGETS {
        let source = fuzz_dir().join(format!("fuzz_targets/{target}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("svctoken_tests::fuzz::{target}(data)")),
            "{} does not call its body",
            source.display()
        );
        assert!(
            !files(&fuzz_dir().join("corpus").join(target)).is_empty(),
            "fuzz/corpus/{target} is missing or empty"
        );
    }
    assert!(run("no-such-target", b"").is_none());
}

#[test]
fn jws() {
    assert_reaches("jws", &["ES256", "RS256", "EdDSA", "claims"]);
}

#[test]
fn jwk() {
    assert_reaches("jwk", &["jwks", "ES256", "RS256", "EdDSA"]);
}

#[test]
fn token_form() {
    assert_reaches(
        "token_form",
        &[
            "secret",
            "secret, acting for a user",
            "assertion",
            "assertion, acting for a user",
            "exchange",
        ],
    );
}

#[test]
fn config() {
    assert_reaches("config", &["valid", "valid, with clients"]);
}

#[test]
fn convex_json() {
    assert_reaches("convex_json", &["args"]);
}

#[test]
fn audit_chain() {
    assert_reaches("audit_chain", &["empty", "chain"]);
}
