//! The HTTP surface: [`router`] (the public listener: discovery, JWKS, the token endpoint) and
//! [`admin_router`] (the admin listener: `/metrics`, `/healthz`, `/readyz`) for tests without a
//! socket, [`serve`] for `main`. Handlers extract, call the library and answer; `token` holds
//! the token endpoint's extractor and handler, `response` every `IntoResponse` of the token
//! endpoint.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{Listener, ListenerExt as _};
use serde_json::json;
use tokio::net::TcpListener;

use svctoken_mint::oauth::{CLIENT_CREDENTIALS, TOKEN_EXCHANGE};

use crate::metrics::{self, JwksRoute};
use crate::oauth::BODY_LIMIT;
use crate::{Issuer, lifecycle};

mod response;
pub mod tls;
mod token;

pub use tls::{TlsCertificate, TlsListener};

/// The public routes: discovery, the JWKS documents and the token endpoint. Anything else
/// (`/metrics`, `/healthz` and `/readyz` included: they are the admin listener's) is 404.
///
/// An issuer URL with a path (`https://example.com/auth`) serves them all under that path
/// (`/auth/.well-known/openid-configuration`, `/auth/oauth/token`, ...), as discovery and the
/// tokens name them; a proxy in front must pass the path on unchanged.
pub fn router(issuer: Issuer) -> Router {
    let routes = routes();
    let settings = issuer.settings();
    let path = settings.issuer().path();
    let app = if path.is_empty() {
        routes
    } else {
        Router::new().nest(path, routes)
    };
    app.fallback(not_found)
        // The token extractor enforces the limit itself, to answer with an OAuth error body.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(issuer)
}

fn routes() -> Router<Issuer> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks_all))
        .route("/audiences/{audience}/jwks.json", get(jwks_audience))
        .route("/oauth/token", post(token::token))
}

/// The admin routes: `/metrics` (Prometheus), `/healthz` (liveness) and `/readyz` (503 while
/// no key may sign). Served on the admin listener only, never on the public one.
pub fn admin_router(issuer: Issuer) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(issuer)
}

/// Serves `issuer` on `listener` (the public routes) and on `admin` if given (the admin
/// routes) until `shutdown` resolves, running the key lifecycle every
/// [`LIFECYCLE_INTERVAL`](crate::LIFECYCLE_INTERVAL). In-flight requests finish before it
/// returns.
///
/// `listener` is a [`TcpListener`] for plain HTTP, or a [`TlsListener`] for HTTPS.
pub async fn serve<L>(
    listener: L,
    admin: Option<TcpListener>,
    issuer: Issuer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let lifecycle = tokio::spawn(lifecycle::run(issuer.clone()));
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(());
    let admin =
        admin.map(|listener| tokio::spawn(serve_admin(listener, issuer.clone(), admin_stopped)));
    let app = router(issuer.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // `tap_io` gives any listener the peer address as `ConnectInfo`.
    let served = axum::serve(listener.tap_io(|_| {}), app)
        .with_graceful_shutdown(shutdown)
        .await;
    drop(stop_admin);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    lifecycle.abort();
    // Events of the last requests (fail-open ones are not waited for) reach the disk.
    let _ = issuer.auditor().flush().await;
    served
}

/// Serves the admin routes until `stop`'s sender is dropped (the public listener stopped).
async fn serve_admin(
    listener: TcpListener,
    issuer: Issuer,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let stopped = async move {
        // Err once the sender is gone.
        while stop.changed().await.is_ok() {}
    };
    let served = axum::serve(listener, admin_router(issuer))
        .with_graceful_shutdown(stopped)
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "the admin listener failed");
    }
}

async fn discovery(State(issuer): State<Issuer>) -> Response {
    let s = issuer.settings();
    let published = issuer.keys().published();
    let algs: Vec<&str> = published
        .set
        .keys
        .iter()
        .chain(published.peers.iter().map(|p| &p.key))
        .map(|k| k.alg.as_str())
        .fold(Vec::new(), |mut v, a| {
            if !v.contains(&a) {
                v.push(a);
            }
            v
        });
    let doc = json!({
        "issuer": s.issuer().as_str(),
        "jwks_uri": s.jwks_uri(),
        "token_endpoint": s.token_endpoint(),
        "grant_types_supported": [CLIENT_CREDENTIALS, TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": scopes(&issuer),
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "act"],
    });
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::CACHE_CONTROL, cache_control(&issuer)),
    ];
    (headers, doc.to_string()).into_response()
}

fn scopes(issuer: &Issuer) -> Vec<String> {
    let mut all: Vec<String> = issuer
        .settings()
        .clients()
        .iter()
        .flat_map(|c| c.scopes.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

fn cache_control(issuer: &Issuer) -> HeaderValue {
    let max_age = issuer.settings().schedule().jwks_max_age.as_secs();
    HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-cache"))
}

async fn jwks_all(State(issuer): State<Issuer>, headers: HeaderMap) -> Response {
    serve_jwks(&issuer, None, &headers)
}

async fn jwks_audience(
    State(issuer): State<Issuer>,
    Path(audience): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve_jwks(&issuer, Some(&audience), &headers)
}

fn serve_jwks(issuer: &Issuer, audience: Option<&str>, headers: &HeaderMap) -> Response {
    let published = issuer.keys().published();
    let Some(rendered) = published.jwks(audience) else {
        return not_found_json();
    };
    issuer.metrics().jwks_served(match audience {
        None => JwksRoute::All,
        Some(_) => JwksRoute::Audience,
    });
    let etag = HeaderValue::from_str(&rendered.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (header::CACHE_CONTROL, cache_control(issuer)),
        (header::ETAG, etag),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == &*rendered.etag || t.trim() == "*")
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (common, content_type, rendered.body.to_string()).into_response()
}

async fn ready(State(issuer): State<Issuer>) -> Response {
    if issuer.keys().can_sign(issuer.clock().unix_secs()) {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no key may sign yet (a replica's first key waits until every verifier holds it), \
             or the replica's lease lapsed\n",
        )
            .into_response()
    }
}

async fn metrics(State(issuer): State<Issuer>) -> Response {
    let now = issuer.clock().unix_secs();
    let can_sign = issuer.keys().can_sign(now);
    issuer
        .metrics()
        .observe_keys(&issuer.keys().published(), can_sign, now);
    let body = issuer.metrics().render();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn not_found() -> Response {
    not_found_json()
}

fn not_found_json() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found"})),
    )
        .into_response()
}
