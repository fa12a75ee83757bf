//! Verifies our JWTs with independent JOSE implementations outside Rust.
//!
//! Each [`Implementation`] is a small script under `tests/interop/` that reads one JSON document on
//! stdin (`{"jwks_uri" | "jwks", "cases": [...]}`) and prints one on stdout
//! (`{"implementation", "results": [...]}`), in case order:
//!
//! - [`Implementation::NodeJose`]: `node tests/interop/verify.mjs`, `jose` from npm
//!   (`jwtVerify` with `createRemoteJWKSet` / `createLocalJWKSet`);
//! - [`Implementation::PyJwt`]: `tests/interop/.venv/bin/python tests/interop/verify.py`, PyJWT with
//!   `cryptography` (`PyJWKClient` / `PyJWKSet`, then `jwt.decode`).
//!
//! Both are installed by `scripts/install-test-deps`. When one is missing (or is not the version
//! pinned in `package-lock.json` / `requirements.txt`), [`verify`] prints why and returns
//! `Ok(None)` so that a developer without Node or Python still gets a green run; under CI
//! (`CI=true`) the same thing is an error.
//!
//! Everything here blocks (std::process); call it from sync code or `spawn_blocking`. A verifier
//! that runs longer than [`TIMEOUT`] is killed.

use std::{
    env,
    ffi::OsString,
    fmt,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long one verifier run may take before it is killed and reported as an error.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Env var that overrides the repository root (default: the parent of the `tests` crate's dir).
pub const REPO_ROOT_ENV: &str = "SVCTOKEN_REPO_ROOT";

/// The script that installs both implementations, relative to the repo root.
pub const INSTALL_SCRIPT: &str = "scripts/install-test-deps";

/// Exit status of a verifier script for bad input (a bug in this harness).
const EXIT_BAD_INPUT: i32 = 2;
/// Exit status of a verifier script whose JOSE library is not installed.
const EXIT_NOT_INSTALLED: i32 = 3;

/// Which independent implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// `jose` (npm) on Node.js: `tests/interop/verify.mjs`.
    NodeJose,
    /// PyJWT with `cryptography` on CPython: `tests/interop/verify.py`.
    PyJwt,
}

impl Implementation {
    /// Every implementation, for tests that loop over them.
    pub const ALL: [Implementation; 2] = [Implementation::NodeJose, Implementation::PyJwt];

    /// The name the verifier script reports, before its version (`"node-jose"`, `"pyjwt"`).
    pub fn name(self) -> &'static str {
        match self {
            Implementation::NodeJose => "node-jose",
            Implementation::PyJwt => "pyjwt",
        }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One token to verify, with what the verifier must expect of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// The compact JWS.
    pub token: String,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (one of them, when the token has several).
    pub audience: String,
    /// The accepted `alg` values, e.g. `["ES256"]`.
    pub algorithms: Vec<String>,
}

impl Case {
    /// A case from borrowed parts.
    pub fn new(token: &str, issuer: &str, audience: &str, algorithms: &[&str]) -> Self {
        Case {
            token: token.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithms: algorithms.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

/// What an implementation made of one [`Case`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Verified; the token's claims as the implementation decoded them.
    Accepted(Value),
    /// Not verified: `"<error code or class>: <message>"`, e.g. `"ERR_JWT_EXPIRED: ..."`.
    Rejected(String),
}

impl Outcome {
    /// Whether the token verified.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }

    /// The decoded claims, when accepted.
    pub fn claims(&self) -> Option<&Value> {
        match self {
            Outcome::Accepted(claims) => Some(claims),
            Outcome::Rejected(_) => None,
        }
    }

    /// The error, when rejected.
    pub fn rejection(&self) -> Option<&str> {
        match self {
            Outcome::Accepted(_) => None,
            Outcome::Rejected(error) => Some(error),
        }
    }
}

/// The result of one verifier run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The implementation and its version, e.g. `"node-jose 6.2.17"`, `"pyjwt 2.15.1"`.
    pub implementation: String,
    /// One outcome per case, in case order.
    pub outcomes: Vec<Outcome>,
}

/// Runs the verifier script; `Ok(None)` means the implementation is not installed AND we are not
/// under CI (env `CI=true`): then it prints (eprintln) a clear skip reason naming
/// `scripts/install-test-deps`. Under CI a missing installation is an error.
///
/// The verifier fetches the JWKS from `jwks_uri` itself (it must be `http(s)://`, and reachable from
/// a child process). Errors: the script timed out, crashed, or printed something unexpected.
pub fn verify(
    implementation: Implementation,
    jwks_uri: &str,
    cases: &[Case],
) -> Result<Option<Report>> {
    run(
        &repo_root(),
        under_ci(),
        implementation,
        &Input {
            jwks_uri: Some(jwks_uri),
            jwks: None,
            cases,
        },
    )
}

/// The repository root: `$SVCTOKEN_REPO_ROOT` when set, else the parent of the `tests` crate's
/// `CARGO_MANIFEST_DIR`.
pub fn repo_root() -> PathBuf {
    match env::var_os(REPO_ROOT_ENV) {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
        }
    }
}

/// `tests/interop/` under the repo root: the verifier scripts and their installed dependencies.
pub fn interop_dir() -> PathBuf {
    interop_dir_in(&repo_root())
}

/// Whether we run under CI (`CI` is `true`, `1` or `yes`), where a missing implementation fails.
pub fn under_ci() -> bool {
    env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn interop_dir_in(root: &Path) -> PathBuf {
    root.join("tests").join("interop")
}

#[derive(Serialize)]
struct Input<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<&'a Value>,
    cases: &'a [Case],
}

#[derive(Deserialize)]
struct Output {
    implementation: String,
    results: Vec<ResultDoc>,
}

#[derive(Deserialize)]
struct ResultDoc {
    ok: bool,
    #[serde(default)]
    claims: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// Why an implementation can't be run here (the installation is missing or stale).
struct NotInstalled(String);

fn run(
    root: &Path,
    ci: bool,
    implementation: Implementation,
    input: &Input<'_>,
) -> Result<Option<Report>> {
    match run_installed(root, implementation, input)? {
        Ok(report) => Ok(Some(report)),
        Err(NotInstalled(reason)) => {
            if ci {
                bail!(
                    "{implementation} interop: {reason}; under CI it must be installed: run `{INSTALL_SCRIPT}` \
                     before the tests (repo root {})",
                    root.display()
                );
            }
            eprintln!(
                "SKIPPED {implementation} interop check: {reason}. Run `{INSTALL_SCRIPT}` (repo root {}) \
                 to install it; under CI=true this is an error.",
                root.display()
            );
            Ok(None)
        }
    }
}

fn run_installed(
    root: &Path,
    implementation: Implementation,
    input: &Input<'_>,
) -> Result<Result<Report, NotInstalled>> {
    let dir = interop_dir_in(root);
    let (program, script, pinned) = match implementation {
        Implementation::NodeJose => {
            if !dir.join("node_modules/jose/package.json").is_file() {
                return Ok(Err(NotInstalled(format!(
                    "{} is missing",
                    dir.join("node_modules/jose").display()
                ))));
            }
            let pinned = pinned_jose(&dir.join("package-lock.json"))?;
            (OsString::from("node"), dir.join("verify.mjs"), pinned)
        }
        Implementation::PyJwt => {
            let python = dir.join(".venv/bin/python");
            if !python.is_file() {
                return Ok(Err(NotInstalled(format!(
                    "{} is missing",
                    python.display()
                ))));
            }
            let pinned = pinned_pyjwt(&dir.join("requirements.txt"))?;
            (python.into_os_string(), dir.join("verify.py"), pinned)
        }
    };
    if !script.is_file() {
        bail!(
            "{} is missing: is the repo root {} right? (set {REPO_ROOT_ENV})",
            script.display(),
            root.display()
        );
    }

    let stdin = serde_json::to_vec(input).context("encoding the verifier input")?;
    let mut command = Command::new(&program);
    command
        .arg(&script)
        .current_dir(&dir)
        // Keep the venv's packages authoritative, and never send loopback JWKS fetches to a proxy.
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", no_proxy("NO_PROXY"))
        .env("no_proxy", no_proxy("no_proxy"));
    let child = match command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Err(NotInstalled(format!(
                "`{}` not found",
                program.to_string_lossy()
            ))));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("starting {}", program.to_string_lossy()));
        }
    };
    let what = format!("{implementation} ({})", script.display());
    let (status, stdout, stderr) = wait_with_timeout(child, stdin, TIMEOUT, &what)?;
    let stderr = String::from_utf8_lossy(&stderr);

    match status.code() {
        Some(0) => {}
        Some(EXIT_NOT_INSTALLED) => return Ok(Err(NotInstalled(stderr.trim().to_owned()))),
        Some(EXIT_BAD_INPUT) => bail!("{what} rejected its input (harness bug): {}", stderr.trim()),
        _ => bail!("{what} failed ({status}): {}", stderr.trim()),
    }

    let output: Output = serde_json::from_slice(&stdout).with_context(|| {
        format!(
            "{what} printed no valid result document: {:?} (stderr: {})",
            String::from_utf8_lossy(&stdout),
            stderr.trim()
        )
    })?;
    let installed = output
        .implementation
        .strip_prefix(implementation.name())
        .map(str::trim)
        .ok_or_else(|| {
            anyhow!(
                "{what} reported implementation {:?}, expected {:?}",
                output.implementation,
                implementation.name()
            )
        })?;
    if installed != pinned {
        return Ok(Err(NotInstalled(format!(
            "{implementation} {installed} is installed but {pinned} is pinned (stale install)"
        ))));
    }
    if output.results.len() != input.cases.len() {
        bail!(
            "{what} returned {} results for {} cases",
            output.results.len(),
            input.cases.len()
        );
    }
    let outcomes = output
        .results
        .into_iter()
        .enumerate()
        .map(|(i, r)| match (r.ok, r.claims, r.error) {
            (true, Some(claims), _) => Ok(Outcome::Accepted(claims)),
            (false, _, Some(error)) => Ok(Outcome::Rejected(error)),
            (ok, ..) => Err(anyhow!(
                "{what}: result {i} has ok={ok} without its claims/error"
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Ok(Report {
        implementation: output.implementation,
        outcomes,
    }))
}

/// Feeds `input` to the child's stdin, collects stdout and stderr, and kills it after `timeout`.
fn wait_with_timeout(
    mut child: Child,
    input: Vec<u8>,
    timeout: Duration,
    what: &str,
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<io::Result<Vec<u8>>> {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut buf)?;
            }
            Ok(buf)
        })
    }

    let stdin = child.stdin.take();
    let writer = thread::spawn(move || -> io::Result<()> {
        if let Some(mut stdin) = stdin {
            match stdin.write_all(&input) {
                // The child may exit without reading it all (say, on a startup error): its exit
                // status and stderr tell why.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        } // dropped: EOF
        Ok(())
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            // Killing may race with a normal exit; either way, reap it. The pipe threads end
            // once the pipes close, and are not waited for.
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} timed out after {timeout:?} and was killed");
        }
        thread::sleep(Duration::from_millis(10));
    };

    let join = |h: thread::JoinHandle<io::Result<Vec<u8>>>, name: &str| -> Result<Vec<u8>> {
        h.join()
            .map_err(|_| anyhow!("{what}: the {name} reader panicked"))?
            .with_context(|| format!("reading {what} {name}"))
    };
    let stdout = join(stdout, "stdout")?;
    let stderr = join(stderr, "stderr")?;
    writer
        .join()
        .map_err(|_| anyhow!("{what}: the stdin writer panicked"))?
        .with_context(|| format!("writing {what} stdin"))?;
    Ok((status, stdout, stderr))
}

/// The proxy exclusions in `var`, plus the loopback names.
fn no_proxy(var: &str) -> String {
    let loopback = "127.0.0.1,localhost,::1";
    match env::var(var) {
        Ok(v) if !v.trim().is_empty() => format!("{v},{loopback}"),
        _ => loopback.to_owned(),
    }
}

/// The `jose` version locked in `package-lock.json`.
fn pinned_jose(lockfile: &Path) -> Result<String> {
    let text = std::fs::read_to_string(lockfile)
        .with_context(|| format!("reading {}", lockfile.display()))?;
    parse_pinned_jose(&text).with_context(|| format!("in {}", lockfile.display()))
}

fn parse_pinned_jose(lockfile: &str) -> Result<String> {
    let lock: Value = serde_json::from_str(lockfile).context("package-lock.json is not JSON")?;
    lock.pointer("/packages/node_modules~1jose/version")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no packages.\"node_modules/jose\".version"))
}

/// The PyJWT version pinned (`PyJWT[crypto]==X`) in `requirements.txt`.
fn pinned_pyjwt(requirements: &Path) -> Result<String> {
    let text = std::fs::read_to_string(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    parse_pinned_pyjwt(&text).with_context(|| format!("in {}", requirements.display()))
}

fn parse_pinned_pyjwt(requirements: &str) -> Result<String> {
    requirements
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .find_map(|line| {
            let (name, version) = line.split_once("==")?;
            let name = name.split('[').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("pyjwt").then(|| {
                version
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("no `PyJWT==<version>` pin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(cases: &[Case]) -> Input<'_> {
        Input {
            jwks_uri: Some("http://127.0.0.1:9/jwks.json"),
            jwks: None,
            cases,
        }
    }

    fn missing_root() -> PathBuf {
        env::temp_dir().join(format!(
            "svctoken-interop-no-such-root-{}",
            std::process::id()
        ))
    }

    #[test]
    fn not_installed_is_a_skip_outside_ci() {
        let cases = [Case::new("a.b.c", "iss", "aud", &["ES256"])];
        for implementation in Implementation::ALL {
            let report = run(&missing_root(), false, implementation, &input(&cases));
            assert!(matches!(report, Ok(None)), "{implementation}: {report:?}");
        }
    }

    #[test]
    fn not_installed_is_an_error_under_ci() {
        let cases = [Case::new("a.b.c", "iss", "aud", &["ES256"])];
        for implementation in Implementation::ALL {
            let Err(error) = run(&missing_root(), true, implementation, &input(&cases)) else {
                panic!("{implementation}: expected an error under CI");
            };
            let message = format!("{error:#}");
            assert!(message.contains(INSTALL_SCRIPT), "{message}");
        }
    }

    #[test]
    fn reads_the_pins() -> Result<()> {
        let lock = r#"{"packages": {"": {}, "node_modules/jose": {"version": "6.2.17"}}}"#;
        assert_eq!(parse_pinned_jose(lock)?, "6.2.17");
        assert!(parse_pinned_jose(r#"{"packages": {}}"#).is_err());

        let reqs = "# comment\ncryptography==50.0.2\nPyJWT[crypto]==2.15.1  # the one\n";
        assert_eq!(parse_pinned_pyjwt(reqs)?, "2.15.1");
        assert_eq!(
            parse_pinned_pyjwt("pyjwt==2.10.0; python_version>='3.9'")?,
            "2.10.0"
        );
        assert!(parse_pinned_pyjwt("cryptography==50.0.2\n").is_err());
        Ok(())
    }

    #[test]
    fn a_hung_verifier_is_killed() -> Result<()> {
        let child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let started = Instant::now();
        let Err(error) = wait_with_timeout(child, Vec::new(), Duration::from_millis(200), "sleep")
        else {
            panic!("expected a timeout");
        };
        assert!(error.to_string().contains("timed out"), "{error:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
        Ok(())
    }

    #[test]
    fn input_has_exactly_one_jwks_source() -> Result<()> {
        let cases = [Case::new("t", "i", "a", &["EdDSA"])];
        let doc = serde_json::to_value(input(&cases))?;
        assert_eq!(
            doc,
            serde_json::json!({
                "jwks_uri": "http://127.0.0.1:9/jwks.json",
                "cases": [{"token": "t", "issuer": "i", "audience": "a", "algorithms": ["EdDSA"]}],
            })
        );
        Ok(())
    }
}
