//! A fake Convex deployment: Convex's public HTTP function API on 127.0.0.1, with the token
//! checks of [`crate::convex`] in front of functions that the test registers.
//!
//! It answers the way a Convex deployment's HTTP API does:
//!
//! - `POST /api/query`, `/api/mutation`, `/api/action` with `{"path", "args", "format"}`;
//!   `POST /api/run/<module path>/<function>` with `{"args", "format"}` (`/api/run/dir/file/fn`
//!   calls `dir/file:fn`, of any kind).
//! - `Authorization: Bearer <jwt>` is verified with the [`ConvexAuth`] before anything runs; a
//!   rejected token is answered with its HTTP status (401) and `{"code", "message"}`, and the
//!   function does not run. No `Authorization` header: the function runs with no identity. Any
//!   other scheme (`Convex <admin key>` included: this deployment has no admin keys) is a 401.
//! - `Convex-Client`, when present, must be `<name>-<semver>`; `format` must be `"json"` or
//!   `"convex_encoded_json"` (absent means `"json"`, as for any current client); `args` must be
//!   an object or a one-element array holding one, in Convex's encoded JSON
//!   ([`decode_convex_json`]). Violations are a 400 `{"code", "message"}`.
//! - An unknown function, or one called through the endpoint of another kind, is a function error
//!   (`Could not find public function for '<path>'...` / `Trying to execute <path> as Query, but it
//!   is defined as Mutation.`).
//! - Success: 200 `{"status": "success", "value", "logLines": []}`. Function error:
//!   `{"status": "error", "errorMessage", "errorData"?, "logLines": []}` with the status chosen by
//!   [`FakeConvex::set_error_status`] (200 by default, or 560).
//!
//! Order of the checks, as in Convex's handlers: method and route, `Convex-Client`, the
//! `Authorization` scheme, `Content-Type` and JSON syntax of the body, the token, then the body's
//! fields (`path`, `format`, `args`), then the function.
//!
//! Every request is recorded ([`FakeConvex::requests`]) before any check, and every function
//! execution records the identity it saw ([`FakeConvex::identities`]).
//!
//! Function paths are compared canonically: `messages:send`, `messages.js:send` are the same
//! function, and a path without `:` names the module's `default` export.
//!
//! The `code` values of the 4xx answers other than the token's are this fake's own descriptive
//! names (Convex's are not all known); only their statuses and shapes are claimed faithful.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::convex::{ConvexAuth, Identity};

/// Largest request body read, in bytes (bigger ones are answered 413 and recorded truncated to
/// nothing: their body is recorded as an empty string).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Longest field name Convex accepts.
const MAX_FIELD_NAME_LEN: usize = 1024;

/// A Convex function kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Called through `/api/query` (or `/api/run/...`).
    Query,
    /// Called through `/api/mutation` (or `/api/run/...`).
    Mutation,
    /// Called through `/api/action` (or `/api/run/...`).
    Action,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Query, Kind::Mutation, Kind::Action];

    /// As Convex names it in messages: `"Query"`, `"Mutation"`, `"Action"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Query => "Query",
            Kind::Mutation => "Mutation",
            Kind::Action => "Action",
        }
    }

    /// The lowercase name used in endpoint paths and by the JS client: `"query"`, ...
    pub fn endpoint_name(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Mutation => "mutation",
            Kind::Action => "action",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a registered function returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function returned this value; it is sent back as is (whatever the request's `format`).
    Success(Value),
    /// The function threw (a `ConvexError` when `data` is set).
    Error {
        /// `errorMessage`.
        message: String,
        /// `errorData`, omitted from the answer when `None`.
        data: Option<Value>,
    },
}

impl Outcome {
    /// `Outcome::Error` without data.
    pub fn error(message: impl Into<String>) -> Self {
        Outcome::Error {
            message: message.into(),
            data: None,
        }
    }
}

/// One HTTP request as the fake deployment received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `"POST"`, ...
    pub method: String,
    /// The URL path, without the query string.
    pub path: String,
    /// Every header in received order; names lowercased, values lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::String` of the raw body (lossy UTF-8) when it is not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A registered function's body.
type Function = Arc<dyn Fn(Option<&Identity>, Value) -> Outcome + Send + Sync + 'static>;

struct Registered {
    kind: Kind,
    function: Function,
}

#[derive(Default)]
struct Records {
    functions: HashMap<String, Registered>,
    error_status: u16,
    identities: Vec<Option<Identity>>,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    auth: ConvexAuth,
    records: Mutex<Records>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic never happens while this lock is held; recover anyway.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A fake Convex deployment listening on `127.0.0.1:<ephemeral port>`. Its server stops when it
/// is dropped. Must be started inside a Tokio runtime, which then runs the server.
pub struct FakeConvex {
    /// The deployment URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for FakeConvex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeConvex")
            .field("url", &self.url)
            .field("executions", &self.executions())
            .field("requests", &self.shared.lock().requests.len())
            .finish_non_exhaustive()
    }
}

impl FakeConvex {
    /// Starts a deployment that checks tokens with `auth`, on `127.0.0.1:0`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(auth: ConvexAuth) -> FakeConvex {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Convex: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("fake Convex: local address of the listener");
        let shared = Arc::new(Shared {
            auth,
            records: Mutex::new(Records {
                error_status: 200,
                ..Records::default()
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // Ends when the sender is used or dropped; a serve error just ends the fake.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeConvex {
            url: format!("http://{addr}"),
            addr,
            shared,
            shutdown: Some(shutdown),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers (or replaces) the public function `path` (`"module:function"`, `"dir/file:fn"`).
    /// `f` gets the caller's identity and the args object exactly as sent (Convex encoded JSON,
    /// already validated; see [`decode_convex_json`]).
    ///
    /// # Panics
    /// If `path` is not a valid function path.
    pub fn function(
        &self,
        kind: Kind,
        path: &str,
        f: impl Fn(Option<&Identity>, Value) -> Outcome + Send + Sync + 'static,
    ) {
        let canonical = match canonical_path(path) {
            Ok(canonical) => canonical,
            Err(e) => panic!("fake Convex: bad function path {path:?}: {e}"),
        };
        self.shared.lock().functions.insert(
            canonical,
            Registered {
                kind,
                function: Arc::new(f),
            },
        );
    }

    /// The HTTP status of function errors (an unknown function included): 200 (the default) or 560.
    ///
    /// # Panics
    /// For any other status.
    pub fn set_error_status(&self, status: u16) {
        assert!(
            status == 200 || status == 560,
            "fake Convex: the function error status is 200 or 560, not {status}"
        );
        self.shared.lock().error_status = status;
    }

    /// The identity seen by each function execution, in order (`None`: anonymous).
    pub fn identities(&self) -> Vec<Option<Identity>> {
        self.shared.lock().identities.clone()
    }

    /// How many times a registered function ran.
    pub fn executions(&self) -> usize {
        self.shared.lock().identities.len()
    }

    /// Every request received, rejected ones included, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }
}

impl Drop for FakeConvex {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already be gone (its runtime ended): nothing to stop then.
            let _ = shutdown.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP handler
// ---------------------------------------------------------------------------------------------

/// Which function API endpoint was called.
enum Endpoint {
    /// `/api/query`, `/api/mutation`, `/api/action`: the path is in the body.
    Typed(Kind),
    /// `/api/run/<module path>/<function>`: any kind, path from the URL.
    Run(String),
}

/// An answer that ends the request early.
struct Reject {
    status: u16,
    body: Value,
}

impl Reject {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Reject {
            status,
            body: json!({"code": code, "message": message.into()}),
        }
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
}

fn respond(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (bytes, too_large) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => (bytes, false),
        Err(_) => (Default::default(), true),
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    shared.lock().requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    });
    if too_large {
        return respond(
            413,
            &json!({"code": "PayloadTooLarge", "message": "request body too large"}),
        );
    }
    match serve(
        &shared,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        parsed,
    )
    .await
    {
        Ok(response) | Err(response) => response,
    }
}

/// The checks and the call; `Err` is an early answer.
async fn serve(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Result<Response, Response> {
    let reject = |r: Reject| respond(r.status, &r.body);

    let endpoint = route(path).map_err(reject)?;
    if method != Method::POST {
        return Err(reject(Reject::new(
            405,
            "MethodNotAllowed",
            format!("{method} {path}: only POST is allowed"),
        )));
    }
    check_convex_client(headers).map_err(reject)?;
    let credential = credential(headers).map_err(reject)?;
    check_content_type(headers).map_err(reject)?;
    let Some(body) = body else {
        return Err(reject(Reject::bad_request(
            "BadJsonBody",
            "the request body is not valid JSON",
        )));
    };

    let identity = match credential {
        Credential::None => None,
        Credential::Bearer(token) => match shared.auth.verify(&token).await {
            Ok(identity) => Some(identity),
            Err(e) => {
                return Err(respond(
                    e.status(),
                    &json!({"code": e.code(), "message": e.message()}),
                ));
            }
        },
        Credential::Admin => {
            return Err(reject(Reject::new(
                401,
                "BadAdminKey",
                "The provided admin key was invalid for this instance",
            )));
        }
    };

    let call = parse_body(&endpoint, &body).map_err(reject)?;

    let (function, error_status) = {
        let records = shared.lock();
        let found = records.functions.get(&call.canonical);
        let function = match (found, &endpoint) {
            (None, _) => Err(format!(
                "Could not find public function for '{}'. Did you forget to run `npx convex dev` or `npx convex deploy`?",
                call.path
            )),
            (Some(registered), Endpoint::Typed(kind)) if registered.kind != *kind => Err(format!(
                "Trying to execute {} as {kind}, but it is defined as {}.",
                call.path, registered.kind
            )),
            (Some(registered), _) => Ok(registered.function.clone()),
        };
        (function, records.error_status)
    };
    let function = match function {
        Ok(function) => function,
        Err(message) => {
            return Ok(respond(
                error_status,
                &json!({"status": "error", "errorMessage": message, "logLines": []}),
            ));
        }
    };

    shared.lock().identities.push(identity.clone());
    let outcome = catch_unwind(AssertUnwindSafe(|| function(identity.as_ref(), call.args)));
    Ok(match outcome {
        Ok(Outcome::Success(value)) => respond(
            200,
            &json!({"status": "success", "value": value, "logLines": []}),
        ),
        Ok(Outcome::Error { message, data }) => {
            let mut answer = json!({"status": "error", "errorMessage": message, "logLines": []});
            if let (Some(data), Some(object)) = (data, answer.as_object_mut()) {
                object.insert("errorData".to_owned(), data);
            }
            respond(error_status, &answer)
        }
        Err(_) => respond(
            500,
            &json!({"code": "FunctionPanicked", "message": format!("the test's function for '{}' panicked", call.path)}),
        ),
    })
}

fn route(path: &str) -> Result<Endpoint, Reject> {
    let not_found = || Reject::new(404, "NotFound", format!("no route for {path}"));
    match path {
        "/api/query" => Ok(Endpoint::Typed(Kind::Query)),
        "/api/mutation" => Ok(Endpoint::Typed(Kind::Mutation)),
        "/api/action" => Ok(Endpoint::Typed(Kind::Action)),
        _ => {
            let rest = path.strip_prefix("/api/run/").ok_or_else(not_found)?;
            let segments: Vec<&str> = rest.split('/').collect();
            if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
                return Err(not_found());
            }
            let (function, module) = segments.split_last().ok_or_else(not_found)?;
            Ok(Endpoint::Run(format!("{}:{function}", module.join("/"))))
        }
    }
}

/// `Convex-Client: <name>-<semver>`, when present.
fn check_convex_client(headers: &HeaderMap) -> Result<(), Reject> {
    let Some(value) = headers.get("convex-client") else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    if parse_client_version(text).is_some() {
        Ok(())
    } else {
        Err(Reject::bad_request(
            "InvalidVersion",
            format!(
                "Failed to parse client version string: '{}'. Expected format is {{client_name}}-{{semver}}, e.g. my-esolang-client-0.0.1",
                String::from_utf8_lossy(value.as_bytes())
            ),
        ))
    }
}

/// Splits `<name>-<semver>` the way Convex does (the longest semver from the right); `None` when
/// no split gives a non-empty name and a valid semver. (Convex itself lets a client of an unknown
/// name through with an unparseable version; this fake is stricter.)
pub fn parse_client_version(header: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = header.split('-').collect();
    (1..parts.len()).find_map(|n| {
        let version = parts[n..].join("-");
        let name = parts[..n].join("-");
        (!name.is_empty() && is_semver(&version)).then_some((name, version))
    })
}

/// Semantic Versioning 2.0.0: `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
fn is_semver(s: &str) -> bool {
    fn identifiers(s: &str, numeric_no_leading_zero: bool) -> bool {
        s.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !(numeric_no_leading_zero
                    && id.len() > 1
                    && id.starts_with('0')
                    && id.bytes().all(|b| b.is_ascii_digit()))
        })
    }
    let (rest, build) = match s.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
                && n.parse::<u64>().is_ok()
        })
        && pre.is_none_or(|p| identifiers(p, true))
        && build.is_none_or(|b| identifiers(b, false))
}

enum Credential {
    None,
    Bearer(String),
    Admin,
}

fn credential(headers: &HeaderMap) -> Result<Credential, Reject> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Credential::None);
    };
    let invalid = |why: &str| Reject::new(401, "InvalidAuthHeader", why.to_owned());
    let text = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not visible ASCII"))?;
    if let Some(token) = text.strip_prefix("Bearer ") {
        Ok(Credential::Bearer(token.to_owned()))
    } else if text.starts_with("Convex ") {
        Ok(Credential::Admin)
    } else {
        Err(invalid(
            "the Authorization header must be `Bearer <token>` or `Convex <admin key>`",
        ))
    }
}

/// `application/json` (parameters allowed), or any `+json` type, as axum's `Json` extractor.
fn check_content_type(headers: &HeaderMap) -> Result<(), Reject> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence {
        Some(e)
            if e == "application/json"
                || (e.starts_with("application/") && e.ends_with("+json")) =>
        {
            Ok(())
        }
        _ => Err(Reject::new(
            415,
            "UnsupportedMediaType",
            "Expected request with `Content-Type: application/json`",
        )),
    }
}

/// A validated call.
struct Call {
    /// The path as the caller spelled it (for messages).
    path: String,
    /// The lookup key.
    canonical: String,
    /// The args object, as sent.
    args: Value,
}

fn parse_body(endpoint: &Endpoint, body: &Value) -> Result<Call, Reject> {
    let Some(body) = body.as_object() else {
        return Err(Reject::bad_request(
            "BadJsonBody",
            "the request body must be a JSON object",
        ));
    };
    let path = match endpoint {
        Endpoint::Run(path) => path.clone(),
        Endpoint::Typed(_) => match body.get("path") {
            Some(Value::String(path)) => path.clone(),
            Some(_) => {
                return Err(Reject::bad_request(
                    "BadJsonBody",
                    "`path` must be a string",
                ));
            }
            None => return Err(Reject::bad_request("BadJsonBody", "missing field `path`")),
        },
    };
    let canonical = canonical_path(&path)
        .map_err(|e| Reject::bad_request("InvalidFunctionPath", format!("{path:?}: {e}")))?;
    match body.get("format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "json" || f == "convex_encoded_json" => {}
        Some(other) => {
            return Err(Reject::bad_request(
                "InvalidFormat",
                format!("unsupported format {other}: expected \"json\" or \"convex_encoded_json\""),
            ));
        }
    }
    let args = match body.get("args") {
        Some(Value::Object(args)) => Value::Object(args.clone()),
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::Object(args)] => Value::Object(args.clone()),
            _ => {
                return Err(Reject::bad_request(
                    "InvalidArgs",
                    format!(
                        "args given as an array must hold exactly one object, got {}",
                        Value::Array(items.clone())
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(Reject::bad_request(
                "InvalidArgs",
                format!("args must be an object, got {other}"),
            ));
        }
        None => return Err(Reject::bad_request("InvalidArgs", "missing field `args`")),
    };
    decode_convex_json(&args).map_err(|e| Reject::bad_request("InvalidConvexValue", e))?;
    Ok(Call {
        path,
        canonical,
        args,
    })
}

/// `module:function` with `.js` dropped from the module and `default` for a missing function.
fn canonical_path(path: &str) -> Result<String, String> {
    let (module, function) = path.split_once(':').unwrap_or((path, "default"));
    let module = module.strip_suffix(".js").unwrap_or(module);
    if module.is_empty() || module.split('/').any(str::is_empty) {
        return Err("empty module path component".to_owned());
    }
    if function.is_empty() || function.contains(':') || function.contains('/') {
        return Err("bad function name".to_owned());
    }
    Ok(format!("{module}:{function}"))
}

// ---------------------------------------------------------------------------------------------
// Convex encoded JSON
// ---------------------------------------------------------------------------------------------

/// Validates Convex's encoded JSON and turns it into the clean JSON Convex itself answers with
/// under `format: "json"`, for assertions:
///
/// - `{"$integer": <standard padded base64 of 8 bytes, little-endian i64>}` → the decimal
///   **string** (`"123"`, `"-9223372036854775808"`), as Convex's clean JSON renders an Int64;
/// - `{"$bytes": <standard padded base64>}` → that base64 **string**;
/// - `{"$float": <base64 of a little-endian f64>}` → `"NaN"`, `"Infinity"`, `"-Infinity"`, or the
///   number `-0.0`; a `$float` holding any other value is an error (Convex wants those as plain
///   numbers);
/// - any other field name starting with `$`, a field name with a non-printable-ASCII character or
///   longer than 1024 bytes, a malformed `$integer`/`$bytes`/`$float`: an error naming where;
/// - everything else unchanged (plain numbers are Float64 values in Convex).
pub fn decode_convex_json(v: &Value) -> Result<Value, String> {
    decode_at(v, "args")
}

fn decode_at(v: &Value, at: &str) -> Result<Value, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| decode_at(item, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            if map.len() == 1
                && let Some((key, inner)) = map.iter().next()
                && let Some(decoded) = decode_special(key, inner, at)?
            {
                return Ok(decoded);
            }
            let mut out = Map::new();
            for (key, value) in map {
                check_field_name(key, at)?;
                out.insert(key.clone(), decode_at(value, &format!("{at}.{key}"))?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// `Some` for a well-formed `$integer`/`$bytes`/`$float`; `None` for an ordinary one-key object.
fn decode_special(key: &str, inner: &Value, at: &str) -> Result<Option<Value>, String> {
    if !matches!(key, "$integer" | "$bytes" | "$float") {
        return Ok(None);
    }
    let Value::String(encoded) = inner else {
        return Err(format!(
            "{at}: malformed {key} field: {inner} is not a string"
        ));
    };
    let bytes = STANDARD.decode(encoded).map_err(|e| {
        format!("{at}: malformed {key} field {encoded:?}: not standard padded base64 ({e})")
    })?;
    let eight = |bytes: &[u8]| -> Result<[u8; 8], String> {
        bytes
            .try_into()
            .map_err(|_| format!("{at}: received {} bytes, expected 8 for {key}", bytes.len()))
    };
    Ok(Some(match key {
        "$integer" => Value::String(i64::from_le_bytes(eight(&bytes)?).to_string()),
        "$float" => {
            let float = f64::from_le_bytes(eight(&bytes)?);
            if float.is_nan() {
                Value::String("NaN".to_owned())
            } else if float == f64::INFINITY {
                Value::String("Infinity".to_owned())
            } else if float == f64::NEG_INFINITY {
                Value::String("-Infinity".to_owned())
            } else if float == 0.0 && float.is_sign_negative() {
                serde_json::Number::from_f64(float)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{at}: -0 is not representable"))?
            } else {
                return Err(format!("{at}: Float {float} should be encoded as a number"));
            }
        }
        _ => Value::String(STANDARD.encode(&bytes)),
    }))
}

fn check_field_name(key: &str, at: &str) -> Result<(), String> {
    if key.starts_with('$') {
        return Err(format!(
            "{at}: Field name {key} starts with a '$', which is reserved."
        ));
    }
    if key.len() > MAX_FIELD_NAME_LEN {
        return Err(format!(
            "{at}: Field name {key} exceeds maximum field name length {MAX_FIELD_NAME_LEN}."
        ));
    }
    if let Some(c) = key.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "{at}: Field name {key} has invalid character {c:?}: Field names can only contain non-control ASCII characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use crate::convex::{CustomJwtAlgorithm, Provider};

    const ISS: &str = "https://issuer.test";
    const APP: &str = "convex";

    /// An ES256 key with its JWKS; signs tokens for [`auth`].
    struct Signer {
        kid: String,
        pair: EcdsaKeyPair,
    }

    impl Signer {
        fn new(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("generate P-256 key");
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("load P-256 key");
            Signer {
                kid: kid.to_owned(),
                pair,
            }
        }

        fn jwks(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                             "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                             "y": URL_SAFE_NO_PAD.encode(&point[33..])}]})
        }

        fn token(&self, claims: &Value) -> String {
            let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("ES256 sign");
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    }

    fn now() -> i64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        i64::try_from(secs).expect("time fits i64")
    }

    fn claims() -> Value {
        let now = now();
        json!({"iss": ISS, "sub": "svc-1", "aud": APP, "iat": now, "exp": now + 600,
               "svc": {"name": "billing"}})
    }

    fn auth(signer: &Signer) -> ConvexAuth {
        ConvexAuth::new(vec![Provider::CustomJwt {
            issuer: ISS.to_owned(),
            jwks: format!(
                "data:text/plain;charset=utf-8;base64,{}",
                STANDARD.encode(signer.jwks().to_string())
            ),
            algorithm: CustomJwtAlgorithm::ES256,
            application_id: Some(APP.to_owned()),
        }])
    }

    async fn deployment() -> (FakeConvex, Signer) {
        let signer = Signer::new("k1");
        let fake = FakeConvex::start(auth(&signer)).await;
        (fake, signer)
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client")
    }

    /// POSTs `body` as JSON with optional bearer token; returns status and JSON answer.
    async fn post(
        fake: &FakeConvex,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let mut request = http()
            .post(format!("{}{path}", fake.url))
            .header("Convex-Client", "svctoken-0.1.0")
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        send(request).await
    }

    async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .send()
            .await
            .expect("request to the fake deployment");
        let status = response.status().as_u16();
        let text = response.text().await.expect("answer body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    fn echo(fake: &FakeConvex, kind: Kind, path: &str) {
        fake.function(kind, path, |identity, args| {
            Outcome::Success(json!({"args": args, "subject": identity.map(|i| i.subject.clone())}))
        });
    }

    #[tokio::test]
    async fn success_captures_the_identity() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let token = signer.token(&claims());
        let body = json!({"path": "messages:list", "args": {"n": 1}, "format": "json"});
        let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({"status": "success", "value": {"args": {"n": 1}, "subject": "svc-1"}, "logLines": []})
        );

        assert_eq!(fake.executions(), 1);
        let identities = fake.identities();
        let identity = identities[0].as_ref().expect("an identity");
        assert_eq!(identity.token_identifier, format!("{ISS}|svc-1"));
        assert_eq!(identity.issuer, ISS);
        assert_eq!(identity.fields.get("svc.name"), Some(&json!("billing")));

        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/api/query");
        assert_eq!(request.body, body);
        assert_eq!(
            request.header("Authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(
            request
                .headers
                .iter()
                .any(|(n, v)| n == "convex-client" && v == "svctoken-0.1.0")
        );
    }

    #[tokio::test]
    async fn function_errors_use_the_configured_status() {
        let (fake, signer) = deployment().await;
        fake.function(Kind::Mutation, "jobs:fail", |_, args| Outcome::Error {
            message: "boom".to_owned(),
            data: args.get("data").cloned(),
        });
        let token = signer.token(&claims());
        let with_data =
            json!({"path": "jobs:fail", "args": {"data": {"why": 1}}, "format": "json"});
        let (status, answer) = post(&fake, "/api/mutation", Some(&token), &with_data).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer,
            json!({"status": "error", "errorMessage": "boom", "errorData": {"why": 1}, "logLines": []})
        );

        fake.set_error_status(560);
        let without = json!({"path": "jobs:fail", "args": {}, "format": "json"});
        let (status, answer) = post(&fake, "/api/mutation", Some(&token), &without).await;
        assert_eq!(status, 560);
        assert_eq!(
            answer,
            json!({"status": "error", "errorMessage": "boom", "logLines": []})
        );
        assert_eq!(fake.executions(), 2);
    }

    #[tokio::test]
    async fn a_rejected_token_is_a_401_and_nothing_runs() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let body = json!({"path": "messages:list", "args": {}, "format": "json"});

        // Signed by a key the JWKS does not hold (same kid): bad signature.
        let stranger = Signer::new("k1").token(&claims());
        let (status, answer) = post(&fake, "/api/query", Some(&stranger), &body).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["code"], "InvalidAuthHeader");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("bad signature")),
            "{answer}"
        );

        // Expired.
        let mut expired = claims();
        expired["exp"] = json!(now() - 60);
        let (status, answer) =
            post(&fake, "/api/query", Some(&signer.token(&expired)), &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (401, Some("InvalidAuthHeader")),
            "{answer}"
        );

        // Another issuer.
        let mut other = claims();
        other["iss"] = json!("https://other.test");
        let (status, answer) = post(&fake, "/api/query", Some(&signer.token(&other)), &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (401, Some("NoAuthProvider")),
            "{answer}"
        );

        // Admin auth, and an unknown scheme.
        for authorization in [
            "Convex some-admin-key",
            "Basic dXNlcjpwYXNz",
            "bearer x.y.z",
        ] {
            let request = http()
                .post(format!("{}/api/query", fake.url))
                .header("Authorization", authorization)
                .json(&body);
            let (status, answer) = send(request).await;
            assert_eq!(status, 401, "{authorization}: {answer}");
            assert!(
                answer["code"].is_string() && answer["message"].is_string(),
                "{answer}"
            );
        }

        assert_eq!(fake.executions(), 0);
        assert_eq!(
            fake.requests().len(),
            6,
            "rejected requests are recorded too"
        );
    }

    #[tokio::test]
    async fn no_authorization_runs_anonymously() {
        let (fake, _signer) = deployment().await;
        echo(&fake, Kind::Action, "jobs:run");
        let body = json!({"path": "jobs:run", "args": {}, "format": "json"});
        let (status, answer) = post(&fake, "/api/action", None, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["value"]["subject"], Value::Null);
        assert_eq!(fake.identities(), vec![None]);
        assert_eq!(fake.requests()[0].header("authorization"), None);
    }

    #[tokio::test]
    async fn run_maps_the_url_to_a_function_path() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Mutation, "dir/file:fn");
        echo(&fake, Kind::Query, "messages:list");
        let token = signer.token(&claims());
        let body = json!({"args": {"a": 1}, "format": "json"});
        for path in ["/api/run/dir/file/fn", "/api/run/messages/list"] {
            let (status, answer) = post(&fake, path, Some(&token), &body).await;
            assert_eq!(status, 200, "{path}: {answer}");
            assert_eq!(answer["value"]["args"], json!({"a": 1}));
        }
        let (_, answer) = post(&fake, "/api/run/dir/file/other", Some(&token), &body).await;
        assert_eq!(answer["status"], "error");
        assert!(
            answer["errorMessage"].as_str().is_some_and(
                |m| m.starts_with("Could not find public function for 'dir/file:other'")
            ),
            "{answer}"
        );
        let (status, _) = post(&fake, "/api/run/fn", Some(&token), &body).await;
        assert_eq!(status, 404);
        assert_eq!(fake.executions(), 2);
    }

    #[tokio::test]
    async fn args_may_be_a_one_element_array() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let token = signer.token(&claims());
        let ok =
            json!({"path": "messages:list", "args": [{"a": 1}], "format": "convex_encoded_json"});
        let (status, answer) = post(&fake, "/api/query", Some(&token), &ok).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["value"]["args"], json!({"a": 1}));

        for args in [
            json!([]),
            json!([{}, {}]),
            json!([1]),
            json!("x"),
            json!(null),
            json!(3),
        ] {
            let body = json!({"path": "messages:list", "args": args, "format": "json"});
            let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
            assert_eq!(status, 400, "{args}: {answer}");
            assert_eq!(answer["code"], "InvalidArgs");
        }
        let (status, _) = post(
            &fake,
            "/api/query",
            Some(&token),
            &json!({"path": "messages:list"}),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(fake.executions(), 1);
    }

    #[tokio::test]
    async fn reserved_dollar_fields_are_rejected() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let token = signer.token(&claims());
        let good = json!({"n": {"$integer": STANDARD.encode(7i64.to_le_bytes())},
                          "b": {"$bytes": "AAEC"}, "f": {"$float": STANDARD.encode(f64::NAN.to_le_bytes())}});
        let body = json!({"path": "messages:list", "args": good, "format": "json"});
        let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["value"]["args"], good,
            "the function gets the args as sent"
        );

        for bad in [
            json!({"$foo": 1}),
            json!({"a": {"$foo": 1}}),
            json!({"a": [{"$integer": "AQ=="}]}),
            json!({"a": {"$integer": STANDARD.encode(7i64.to_le_bytes()), "x": 1}}),
            json!({"a": {"$integer": 7}}),
            json!({"a": {"$bytes": "AAE"}}),
            json!({"a": {"$float": STANDARD.encode(1.5f64.to_le_bytes())}}),
        ] {
            let body = json!({"path": "messages:list", "args": bad, "format": "json"});
            let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
            assert_eq!(status, 400, "{bad}: {answer}");
            assert_eq!(answer["code"], "InvalidConvexValue");
            assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        assert_eq!(fake.executions(), 1);
    }

    #[tokio::test]
    async fn a_bad_convex_client_header_is_a_400() {
        let (fake, _signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let body = json!({"path": "messages:list", "args": {}, "format": "json"});
        for client in [
            "svctoken",
            "svctoken-1",
            "svctoken-1.0",
            "svctoken-v1.0.0",
            "-1.0.0",
            "svctoken-01.0.0",
            "svctoken 0.1.0",
        ] {
            let request = http()
                .post(format!("{}/api/query", fake.url))
                .header("Convex-Client", client)
                .json(&body);
            let (status, answer) = send(request).await;
            assert_eq!(status, 400, "{client}: {answer}");
            assert_eq!(answer["code"], "InvalidVersion");
        }
        for client in [
            "svctoken-0.1.0",
            "npm-1.48.0",
            "npm-cli-1.0.0-alpha.1",
            "x-1.2.3+build.5",
        ] {
            let request = http()
                .post(format!("{}/api/query", fake.url))
                .header("Convex-Client", client)
                .json(&body);
            let (status, answer) = send(request).await;
            assert_eq!(status, 200, "{client}: {answer}");
        }
        assert_eq!(fake.executions(), 4);
    }

    #[test]
    fn client_versions_split_like_convex() {
        assert_eq!(
            parse_client_version("npm-cli-1.2.3-4.5.6-alpha.7"),
            Some(("npm-cli".to_owned(), "1.2.3-4.5.6-alpha.7".to_owned()))
        );
        assert_eq!(
            parse_client_version("svctoken-0.1.0"),
            Some(("svctoken".to_owned(), "0.1.0".to_owned()))
        );
        assert_eq!(parse_client_version("npm-1.2.3.4"), None);
    }

    #[tokio::test]
    async fn format_must_be_json_or_encoded() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let token = signer.token(&claims());
        for format in [json!("convex_json"), json!("JSON"), json!(1), json!("")] {
            let body = json!({"path": "messages:list", "args": {}, "format": format});
            let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
            assert_eq!(status, 400, "{format}: {answer}");
            assert_eq!(answer["code"], "InvalidFormat");
        }
        for body in [
            json!({"path": "messages:list", "args": {}, "format": "json"}),
            json!({"path": "messages:list", "args": {}, "format": "convex_encoded_json"}),
            json!({"path": "messages:list", "args": {}}),
        ] {
            let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
            assert_eq!(status, 200, "{body}: {answer}");
        }
        assert_eq!(fake.executions(), 3);
    }

    #[tokio::test]
    async fn unknown_functions_and_kind_mismatches_are_function_errors() {
        let (fake, signer) = deployment().await;
        echo(&fake, Kind::Mutation, "messages:send");
        let token = signer.token(&claims());
        let body = json!({"path": "messages:send", "args": {}, "format": "json"});
        let (status, answer) = post(&fake, "/api/query", Some(&token), &body).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer,
            json!({"status": "error", "logLines": [],
                   "errorMessage": "Trying to execute messages:send as Query, but it is defined as Mutation."})
        );
        fake.set_error_status(560);
        let body = json!({"path": "messages:nope", "args": {}, "format": "json"});
        let (status, answer) = post(&fake, "/api/mutation", Some(&token), &body).await;
        assert_eq!(status, 560);
        assert_eq!(answer["status"], "error");
        assert!(
            answer["errorMessage"].as_str().is_some_and(
                |m| m.starts_with("Could not find public function for 'messages:nope'.")
            )
        );
        // Canonical spellings of the same function.
        let body = json!({"path": "messages.js:send", "args": {}, "format": "json"});
        let (status, answer) = post(&fake, "/api/mutation", Some(&token), &body).await;
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!("success")),
            "{answer}"
        );
        assert_eq!(fake.executions(), 1);
    }

    #[tokio::test]
    async fn every_request_is_recorded() {
        let (fake, _signer) = deployment().await;
        echo(&fake, Kind::Query, "messages:list");
        let (status, _) = send(http().get(format!("{}/api/query", fake.url))).await;
        assert_eq!(status, 405);
        let (status, _) = send(http().post(format!("{}/nowhere?x=1", fake.url)).body("hi")).await;
        assert_eq!(status, 404);
        let request = http()
            .post(format!("{}/api/query", fake.url))
            .header("Content-Type", "application/json")
            .body("{not json");
        let (status, answer) = send(request).await;
        assert_eq!((status, &answer["code"]), (400, &json!("BadJsonBody")));
        let request = http()
            .post(format!("{}/api/query", fake.url))
            .header("Content-Type", "text/plain")
            .body(r#"{"path": "messages:list", "args": {}}"#);
        let (status, _) = send(request).await;
        assert_eq!(status, 415);

        let requests = fake.requests();
        assert_eq!(requests.len(), 4);
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("GET", "/api/query")
        );
        assert_eq!(requests[1].path, "/nowhere");
        assert_eq!(requests[1].body, json!("hi"));
        assert_eq!(requests[2].body, json!("{not json"));
        assert_eq!(
            requests[3].body,
            json!({"path": "messages:list", "args": {}})
        );
        assert_eq!(fake.executions(), 0);
    }

    #[tokio::test]
    async fn dropping_stops_the_server() {
        let (fake, _signer) = deployment().await;
        let addr = fake.addr();
        drop(fake);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still listening on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn decodes_convex_json() -> Result<(), String> {
        let int = |i: i64| json!({"$integer": STANDARD.encode(i.to_le_bytes())});
        let float = |f: f64| json!({"$float": STANDARD.encode(f.to_le_bytes())});
        let encoded = json!({
            "one": int(1), "minus": int(-1), "max": int(i64::MAX), "min": int(i64::MIN),
            "bytes": {"$bytes": "AAEC/w=="}, "empty": {"$bytes": ""},
            "nan": float(f64::NAN), "inf": float(f64::INFINITY), "ninf": float(f64::NEG_INFINITY),
            "nzero": float(-0.0),
            "plain": [1, 2.5, "s", null, true, {"nested": int(42)}],
        });
        let clean = decode_convex_json(&encoded)?;
        assert_eq!(
            clean,
            json!({
                "one": "1", "minus": "-1", "max": "9223372036854775807", "min": "-9223372036854775808",
                "bytes": "AAEC/w==", "empty": "",
                "nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "nzero": -0.0,
                "plain": [1, 2.5, "s", null, true, {"nested": "42"}],
            })
        );
        assert!(
            clean["nzero"]
                .as_f64()
                .is_some_and(|z| z == 0.0 && z.is_sign_negative())
        );

        for bad in [
            json!({"$integer": "AQAAAAAAAAA"}),  // unpadded
            json!({"$integer": "AQAAAAAAAAAA"}), // 9 bytes
            json!({"$integer": "AQAAAAAAAA-="}), // URL-safe alphabet
            json!({"$bytes": 1}),
            json!({"$float": STANDARD.encode(0.0f64.to_le_bytes())}),
            json!({"$set": []}),
            json!({"a": {"$b": 1}}),
            json!({"é": 1}),
            json!({"tab\there": 1}),
            json!({ "x".repeat(1025): 1 }),
        ] {
            assert!(
                decode_convex_json(&bad).is_err(),
                "{bad} should be rejected"
            );
        }
        let error = decode_convex_json(&json!({"a": [{"$x": 1}]}))
            .err()
            .unwrap_or_default();
        assert!(
            error.contains("args.a[0]") && error.contains("$x"),
            "{error}"
        );
        Ok(())
    }
}
