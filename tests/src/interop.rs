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
//! [`convex_js_call`] runs a third script, `node tests/interop/convex_call.mjs`: one call of a
//! Convex function with the official Convex JS client (`ConvexHttpClient` from the npm package
//! `convex`, with `setAuth`), against a deployment URL such as a fake one on 127.0.0.1. What that
//! client sends, for comparison with our own client (`convex` 1.48.0):
//!
//! - `POST <url>/api/query` (`/api/mutation`, `/api/action` for the other kinds);
//! - headers `Content-Type: application/json`, `Convex-Client: npm-1.48.0`, and
//!   `Authorization: Bearer <token>` after `setAuth(token)` (none without it), plus what Node's
//!   `fetch` adds: `host`, `connection: keep-alive`, `accept: */*`, `accept-language: *`,
//!   `sec-fetch-mode: cors`, `user-agent: node`, `accept-encoding: gzip, deflate`,
//!   `content-length`;
//! - body `{"path":"module:function","format":"convex_encoded_json","args":[{...}]}` in that key
//!   order: `args` is a one-element array holding the args in Convex encoded JSON (an Int64 as
//!   `{"$integer": base64}`, bytes as `{"$bytes": base64}`);
//! - answers: 200 and 560 are read as `{"status": "success" | "error", ...}`; any other status
//!   throws an `Error` whose message is the raw response body (so a 401 surfaces as
//!   `{"code":...,"message":...}` text).
//!
//! All are installed by `scripts/install-test-deps`. When one is missing (or is not the version
//! pinned in `package-lock.json` / `requirements.txt`), [`verify`] and [`convex_js_call`] print
//! why and return `Ok(None)` so that a developer without Node or Python still gets a green run;
//! under CI (`CI=true`) the same thing is an error.
//!
//! Everything here blocks (std::process); call it from sync code or `spawn_blocking`. A script
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

/// The function kinds [`convex_js_call`] accepts (the `ConvexHttpClient` method names).
pub const CONVEX_KINDS: [&str; 3] = ["query", "mutation", "action"];

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

/// Calls a Convex function with the official JS client (ConvexHttpClient + setAuth). Ok(None): not installed and not under CI (prints the skip reason).
///
/// `kind` is `"query"`, `"mutation"` or `"action"`; `path` is `"module:function"`; `args` must be
/// a JSON object, in which `{"$bigint": "123"}` stands for a JS BigInt (an Int64 for Convex) and
/// `{"$bytesB64": "<standard base64>"}` for an ArrayBuffer. `token: None` calls anonymously.
///
/// Returns the document `tests/interop/convex_call.mjs` printed:
/// `{"convex": "<version>", "ok": true, "value": <v>}` or
/// `{"convex": "<version>", "ok": false, "error": "<message>", "name": "<Error class>", "data"?: <d>}`,
/// with `value` and `data` in Convex encoded JSON (the client's `convexToJson`). A failed call
/// (HTTP 401, a function error, a connection refused) is `ok: false`, not an `Err`. Errors: bad
/// `kind`, or the script timed out, crashed, rejected its input or printed something unexpected.
pub fn convex_js_call(
    url: &str,
    token: Option<&str>,
    kind: &str,
    path: &str,
    args: &Value,
) -> Result<Option<Value>> {
    convex_js_call_in(
        &repo_root(),
        under_ci(),
        &ConvexCallInput {
            url,
            token,
            kind,
            path,
            args,
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

#[derive(Serialize)]
struct ConvexCallInput<'a> {
    url: &'a str,
    token: Option<&'a str>,
    kind: &'a str,
    path: &'a str,
    args: &'a Value,
}

/// Why an implementation can't be run here (the installation is missing or stale).
struct NotInstalled(String);

fn run(
    root: &Path,
    ci: bool,
    implementation: Implementation,
    input: &Input<'_>,
) -> Result<Option<Report>> {
    let outcome = run_installed(root, implementation, input)?;
    skip_or_fail(root, ci, implementation.name(), outcome)
}

/// `Ok(None)` with a printed skip reason for a missing installation, or an error under CI.
fn skip_or_fail<T>(
    root: &Path,
    ci: bool,
    what: &str,
    outcome: Result<T, NotInstalled>,
) -> Result<Option<T>> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(NotInstalled(reason)) => {
            if ci {
                bail!(
                    "{what} interop: {reason}; under CI it must be installed: run `{INSTALL_SCRIPT}` \
                     before the tests (repo root {})",
                    root.display()
                );
            }
            eprintln!(
                "SKIPPED {what} interop check: {reason}. Run `{INSTALL_SCRIPT}` (repo root {}) \
                 to install it; under CI=true this is an error.",
                root.display()
            );
            Ok(None)
        }
    }
}

fn convex_js_call_in(root: &Path, ci: bool, input: &ConvexCallInput<'_>) -> Result<Option<Value>> {
    if !CONVEX_KINDS.contains(&input.kind) {
        bail!(
            "convex_js_call: kind {:?} is not one of {CONVEX_KINDS:?}",
            input.kind
        );
    }
    if !input.args.is_object() {
        bail!(
            "convex_js_call: args must be a JSON object, not {}",
            input.args
        );
    }
    let outcome = run_convex_call(root, input)?;
    skip_or_fail(root, ci, CONVEX_JS, outcome)
}

/// How [`convex_js_call`] names itself in skip reasons and errors.
const CONVEX_JS: &str = "convex-js";

fn run_convex_call(
    root: &Path,
    input: &ConvexCallInput<'_>,
) -> Result<Result<Value, NotInstalled>> {
    let dir = interop_dir_in(root);
    if !dir.join("node_modules/convex/package.json").is_file() {
        return Ok(Err(NotInstalled(format!(
            "{} is missing",
            dir.join("node_modules/convex").display()
        ))));
    }
    let pinned = pinned_npm(&dir.join("package-lock.json"), "convex")?;
    let script = dir.join("convex_call.mjs");
    let what = format!("{CONVEX_JS} ({})", script.display());
    let stdin = serde_json::to_vec(input).context("encoding the convex_call input")?;
    let (stdout, stderr) =
        match run_script(root, &dir, OsString::from("node"), &script, stdin, &what)? {
            Ok(output) => output,
            Err(not_installed) => return Ok(Err(not_installed)),
        };
    let doc: Value = serde_json::from_slice(&stdout).with_context(|| {
        format!(
            "{what} printed no valid JSON document: {:?} (stderr: {})",
            String::from_utf8_lossy(&stdout),
            stderr.trim()
        )
    })?;
    let installed = doc
        .get("convex")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{what} printed no \"convex\" version: {doc}"))?;
    if installed != pinned {
        return Ok(Err(NotInstalled(format!(
            "convex {installed} is installed but {pinned} is pinned (stale install)"
        ))));
    }
    match doc.get("ok").and_then(Value::as_bool) {
        Some(true) if doc.get("value").is_some() => {}
        Some(false) if doc.get("error").is_some_and(Value::is_string) => {}
        _ => bail!("{what} printed an unexpected document: {doc}"),
    }
    Ok(Ok(doc))
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
            let pinned = pinned_npm(&dir.join("package-lock.json"), "jose")?;
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
    let what = format!("{implementation} ({})", script.display());
    let stdin = serde_json::to_vec(input).context("encoding the verifier input")?;
    let (stdout, stderr) = match run_script(root, &dir, program, &script, stdin, &what)? {
        Ok(output) => output,
        Err(not_installed) => return Ok(Err(not_installed)),
    };

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

/// Runs `program script` in `dir` with `stdin`; `Ok(Ok((stdout, stderr)))` when it exited 0.
/// Exit status 3 (or no `program`) is "not installed"; 2 and anything else are errors.
fn run_script(
    root: &Path,
    dir: &Path,
    program: OsString,
    script: &Path,
    stdin: Vec<u8>,
    what: &str,
) -> Result<Result<(Vec<u8>, String), NotInstalled>> {
    if !script.is_file() {
        bail!(
            "{} is missing: is the repo root {} right? (set {REPO_ROOT_ENV})",
            script.display(),
            root.display()
        );
    }
    let mut command = Command::new(&program);
    command
        .arg(script)
        .current_dir(dir)
        // Keep the venv's packages authoritative, and never send loopback requests to a proxy.
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
    let (status, stdout, stderr) = wait_with_timeout(child, stdin, TIMEOUT, what)?;
    let stderr = String::from_utf8_lossy(&stderr).into_owned();

    match status.code() {
        Some(0) => Ok(Ok((stdout, stderr))),
        Some(EXIT_NOT_INSTALLED) => Ok(Err(NotInstalled(stderr.trim().to_owned()))),
        Some(EXIT_BAD_INPUT) => bail!("{what} rejected its input (harness bug): {}", stderr.trim()),
        _ => bail!("{what} failed ({status}): {}", stderr.trim()),
    }
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

/// The version of npm package `name` (`jose`, `convex`) locked in `package-lock.json`.
fn pinned_npm(lockfile: &Path, name: &str) -> Result<String> {
    let text = std::fs::read_to_string(lockfile)
        .with_context(|| format!("reading {}", lockfile.display()))?;
    parse_pinned_npm(&text, name).with_context(|| format!("in {}", lockfile.display()))
}

fn parse_pinned_npm(lockfile: &str, name: &str) -> Result<String> {
    let lock: Value = serde_json::from_str(lockfile).context("package-lock.json is not JSON")?;
    lock.get("packages")
        .and_then(|packages| packages.get(format!("node_modules/{name}")))
        .and_then(|package| package.get("version"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no packages.\"node_modules/{name}\".version"))
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

    fn convex_input<'a>(kind: &'a str, args: &'a Value) -> ConvexCallInput<'a> {
        ConvexCallInput {
            url: "http://127.0.0.1:9",
            token: None,
            kind,
            path: "messages:list",
            args,
        }
    }

    #[test]
    fn convex_js_not_installed_is_a_skip_outside_ci_and_an_error_under_ci() {
        let args = serde_json::json!({});
        let skipped = convex_js_call_in(&missing_root(), false, &convex_input("query", &args));
        assert!(matches!(skipped, Ok(None)), "{skipped:?}");
        let Err(error) = convex_js_call_in(&missing_root(), true, &convex_input("query", &args))
        else {
            panic!("expected an error under CI");
        };
        let message = format!("{error:#}");
        assert!(
            message.contains(INSTALL_SCRIPT) && message.contains(CONVEX_JS),
            "{message}"
        );
    }

    #[test]
    fn convex_js_rejects_a_bad_kind_or_args() {
        let args = serde_json::json!({});
        for kind in ["Query", "run", ""] {
            let result = convex_js_call_in(&missing_root(), false, &convex_input(kind, &args));
            assert!(result.is_err(), "{kind:?}: {result:?}");
        }
        let array = serde_json::json!([{}]);
        let result = convex_js_call_in(&missing_root(), false, &convex_input("query", &array));
        assert!(result.is_err(), "{result:?}");
    }

    #[test]
    fn reads_the_pins() -> Result<()> {
        let lock = r#"{"packages": {"": {}, "node_modules/jose": {"version": "6.2.17"},
                        "node_modules/convex": {"version": "1.48.0"}}}"#;
        assert_eq!(parse_pinned_npm(lock, "jose")?, "6.2.17");
        assert_eq!(parse_pinned_npm(lock, "convex")?, "1.48.0");
        assert!(parse_pinned_npm(r#"{"packages": {}}"#, "jose").is_err());
        assert!(parse_pinned_npm(lock, "ws").is_err());

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
