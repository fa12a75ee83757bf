//! A client for Convex's HTTP API (`/api/query`, `/api/mutation`, `/api/action`,
//! `/api/run/...`) that authenticates with a [`TokenCache`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Error, Result, TokenCache, encode_args};

/// The `Convex-Client` header this client sends.
pub const CONVEX_CLIENT: &str = concat!("svctoken-", env!("CARGO_PKG_VERSION"));

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Convex deployment, called as a service. Cheap to clone; clones share connections and the
/// token cache.
#[derive(Clone, Debug)]
pub struct ConvexClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    tokens: TokenCache,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Query,
    Mutation,
    Action,
}

impl ConvexClient {
    /// A client for `deployment_url` (e.g. `https://happy-otter-123.convex.cloud`) with a 30 s
    /// timeout and connection reuse.
    pub fn new(deployment_url: &str, tokens: TokenCache) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Self::with_http_client(deployment_url, tokens, http)
    }

    /// Like [`ConvexClient::new`] with your own `reqwest::Client`.
    pub fn with_http_client(
        deployment_url: &str,
        tokens: TokenCache,
        http: reqwest::Client,
    ) -> Result<Self> {
        let base = deployment_url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::Config(format!(
                "deployment URL {deployment_url:?} must start with https:// (or http:// locally)"
            )));
        }
        Ok(ConvexClient {
            inner: Arc::new(Inner {
                http,
                base: base.to_owned(),
                tokens,
            }),
        })
    }

    /// Runs a query (`"module:function"`) with `args`.
    pub async fn query<R: DeserializeOwned>(&self, path: &str, args: impl Serialize) -> Result<R> {
        self.call_kind(Kind::Query, path, &args).await
    }

    /// Runs a mutation.
    pub async fn mutation<R: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.call_kind(Kind::Mutation, path, &args).await
    }

    /// Runs an action.
    pub async fn action<R: DeserializeOwned>(&self, path: &str, args: impl Serialize) -> Result<R> {
        self.call_kind(Kind::Action, path, &args).await
    }

    /// Runs any public function through `/api/run/<module>/<function>`.
    pub async fn run<R: DeserializeOwned>(&self, path: &str, args: impl Serialize) -> Result<R> {
        let (module, function) = split_path(path)?;
        let url = format!("{}/api/run/{module}/{function}", self.inner.base);
        let body = json!({"args": encode_args(&args)?, "format": "json"});
        decode(self.post(&url, &body).await?)
    }

    async fn call_kind<R: DeserializeOwned>(
        &self,
        kind: Kind,
        path: &str,
        args: &impl Serialize,
    ) -> Result<R> {
        split_path(path)?;
        let endpoint = match kind {
            Kind::Query => "query",
            Kind::Mutation => "mutation",
            Kind::Action => "action",
        };
        let url = format!("{}/api/{endpoint}", self.inner.base);
        let body = json!({"path": path, "args": encode_args(args)?, "format": "json"});
        decode(self.post(&url, &body).await?)
    }

    /// Posts with the cached token; on a 401 forces one refresh and retries once (Convex checks
    /// the token before running anything, so this is safe for mutations too).
    async fn post(&self, url: &str, body: &Value) -> Result<Value> {
        let token = self.inner.tokens.token().await?;
        match self.send(url, body, token.as_str()).await? {
            Answer::Done(v) => Ok(v),
            Answer::Unauthorized(first) => {
                tracing::info!(error = %first, "Convex refused the token; refreshing once");
                let token = self.inner.tokens.force_refresh().await?;
                match self.send(url, body, token.as_str()).await? {
                    Answer::Done(v) => Ok(v),
                    Answer::Unauthorized(e) => Err(e),
                }
            }
        }
    }

    async fn send(&self, url: &str, body: &Value, token: &str) -> Result<Answer> {
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Protocol("the token is not a valid header value".into()))?;
        let response = self
            .inner
            .http
            .post(url)
            .header(AUTHORIZATION, bearer)
            .header(CONTENT_TYPE, "application/json")
            .header("Convex-Client", CONVEX_CLIENT)
            .json(body)
            .send()
            .await
            .map_err(Error::transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(Error::transport)?;
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status == StatusCode::UNAUTHORIZED {
            let field = |name: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v[name].as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            return Ok(Answer::Unauthorized(Error::Unauthorized {
                code: field("code"),
                message: field("message"),
            }));
        }
        let outcome = parsed
            .as_ref()
            .filter(|_| status == StatusCode::OK || status.as_u16() == 560)
            .and_then(|v| v["status"].as_str().map(|s| (s, v)));
        match outcome {
            Some(("success", v)) => Ok(Answer::Done(v["value"].clone())),
            Some(("error", v)) => Err(Error::Function {
                message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
                data: v.get("errorData").cloned(),
                status: status.as_u16(),
            }),
            _ => Err(Error::Http {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned(),
            }),
        }
    }
}

enum Answer {
    Done(Value),
    Unauthorized(Error),
}

fn decode<R: DeserializeOwned>(value: Value) -> Result<R> {
    serde_json::from_value(value).map_err(|e| Error::Decode(e.to_string()))
}

/// Splits `"dir/module:function"` into `("dir/module", "function")`; a path without `:` names
/// the module's `default` export.
fn split_path(path: &str) -> Result<(&str, &str)> {
    let (module, function) = path.split_once(':').unwrap_or((path, "default"));
    let module = module.strip_suffix(".js").unwrap_or(module);
    let bad = module.is_empty()
        || function.is_empty()
        || function.contains([':', '/'])
        || module.starts_with('/')
        || module
            .split('/')
            .any(|part| part.is_empty() || part == "..");
    if bad {
        return Err(Error::Config(format!(
            "function path {path:?} should look like \"messages:send\" or \"dir/module:function\""
        )));
    }
    Ok((module, function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_paths() {
        assert_eq!(
            split_path("messages:send").expect("ok"),
            ("messages", "send")
        );
        assert_eq!(
            split_path("dir/jobs.js:run").expect("ok"),
            ("dir/jobs", "run")
        );
        assert_eq!(split_path("jobs").expect("ok"), ("jobs", "default"));
        for bad in ["", ":f", "m:", "../x:f", "a//b:f", "/a:f", "a:b:c"] {
            assert!(split_path(bad).is_err(), "{bad}");
        }
    }
}
