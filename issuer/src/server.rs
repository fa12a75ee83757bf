//! The HTTP surface: [`router`] for tests without a socket, [`serve`] for `main`.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::audit::{Actor, AuditEvent};
use crate::oauth::{self, BODY_LIMIT, ErrorCode, Grant, OAuthError, Refusal, TokenRequest};
use crate::{Issuer, lifecycle};

/// Every route of the issuer.
pub fn router(issuer: Issuer) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks_all))
        .route("/audiences/{audience}/jwks.json", get(jwks_audience))
        .route("/oauth/token", post(token))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // The handler enforces the limit itself, to answer with an OAuth error body.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(issuer)
}

/// Serves `issuer` on `listener` until `shutdown` resolves, running the key lifecycle every
/// [`LIFECYCLE_INTERVAL`](crate::LIFECYCLE_INTERVAL). In-flight requests finish before it returns.
pub async fn serve(
    listener: TcpListener,
    issuer: Issuer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let lifecycle = tokio::spawn(lifecycle::run(issuer.clone()));
    let app = router(issuer).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    lifecycle.abort();
    served
}

async fn discovery(State(issuer): State<Issuer>) -> Response {
    let s = issuer.settings();
    let algs: Vec<&str> = issuer
        .keys()
        .published()
        .set
        .keys
        .iter()
        .map(|k| k.alg.as_str())
        .fold(Vec::new(), |mut v, a| {
            if !v.contains(&a) {
                v.push(a);
            }
            v
        });
    let doc = json!({
        "issuer": s.issuer,
        "jwks_uri": s.jwks_uri(),
        "token_endpoint": s.token_endpoint(),
        "grant_types_supported": [oauth::CLIENT_CREDENTIALS, oauth::TOKEN_EXCHANGE],
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
        .clients()
        .iter()
        .flat_map(|c| c.scopes.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

fn cache_control(issuer: &Issuer) -> HeaderValue {
    let max_age = issuer.settings().schedule.jwks_max_age.as_secs();
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
    issuer.metrics().jwks_served();
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

async fn token(
    State(issuer): State<Issuer>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let peer = peer
        .map(|Extension(ConnectInfo(addr))| addr.to_string())
        .unwrap_or_default();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let mut error = OAuthError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the request body could not be read (limit {} KiB)",
                    BODY_LIMIT / 1024
                ),
            );
            error.status = Some(rejection.status().as_u16());
            let refusal = Refusal {
                error,
                client_id: None,
                subject: None,
                audience: None,
                reason: rejection.to_string(),
            };
            return refuse(&issuer, refusal, peer).await;
        }
    };
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let request = TokenRequest {
        content_type: text(header::CONTENT_TYPE),
        authorization: text(header::AUTHORIZATION),
        body: &body,
    };
    match issuer.endpoint().handle(&request).await {
        Ok(grant) => issue(&issuer, grant, peer).await,
        Err(refusal) => refuse(&issuer, refusal, peer).await,
    }
}

/// Records the issuance, then hands the token out; when the audit trail is fail-closed and
/// can't record it, the token is withheld.
async fn issue(issuer: &Issuer, grant: Grant, peer: String) -> Response {
    tracing::info!(
        client_id = %grant.client_id, sub = %grant.subject, aud = %grant.audience,
        jti = %grant.minted.jti, kid = %grant.minted.kid, exp = grant.minted.expires_at,
        %peer, "token issued"
    );
    let event = AuditEvent {
        client_id: Some(grant.client_id.clone()),
        sub: Some(grant.subject.clone()),
        aud: Some(grant.audience.clone()),
        act: grant.act.as_ref().and_then(Actor::from_claim),
        scope: grant.response.scope.clone(),
        jti: Some(grant.minted.jti.clone()),
        kid: Some(grant.minted.kid.clone()),
        exp: Some(grant.minted.expires_at),
        peer: Some(peer),
        ..AuditEvent::issued(issuer.clock().unix_secs())
    };
    if record(issuer, event).await.is_err() {
        issuer.metrics().refused(ErrorCode::ServerError);
        return oauth_error(OAuthError::new(
            ErrorCode::ServerError,
            "the issuance could not be recorded",
        ));
    }
    issuer.metrics().issued();
    let headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    (headers, axum::Json(grant.response)).into_response()
}

async fn refuse(issuer: &Issuer, refusal: Refusal, peer: String) -> Response {
    issuer.metrics().refused(refusal.error.error);
    tracing::info!(
        client_id = refusal.client_id.as_deref().unwrap_or("-"),
        error = refusal.error.error.as_str(), reason = %refusal.reason, %peer,
        "token request refused"
    );
    let event = AuditEvent {
        client_id: refusal.client_id,
        sub: refusal.subject,
        aud: refusal.audience,
        peer: Some(peer),
        ..AuditEvent::refused(
            issuer.clock().unix_secs(),
            refusal.error.error.as_str(),
            refusal.reason,
        )
    };
    // A refusal is answered whatever the trail says; a failure is logged and counted there.
    let _ = record(issuer, event).await;
    oauth_error(refusal.error)
}

/// Records off the executor (the chained file syncs to disk). Err only when fail-closed.
async fn record(issuer: &Issuer, event: AuditEvent) -> Result<(), ()> {
    let auditor = issuer.auditor().clone();
    match tokio::task::spawn_blocking(move || auditor.record(&event)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// The one place an OAuth error becomes a response.
fn oauth_error(error: OAuthError) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        axum::Json(&error),
    )
        .into_response();
    if let Some(seconds) = error.retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    if error.error == ErrorCode::InvalidClient {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"svctoken\", charset=\"UTF-8\""),
        );
    }
    response
}

async fn ready(State(issuer): State<Issuer>) -> Response {
    let published = issuer.keys().published();
    match published.set.active() {
        Some(_) => "ready\n".into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no active signing key\n").into_response(),
    }
}

async fn metrics(State(issuer): State<Issuer>) -> Response {
    let published = issuer.keys().published();
    let age = published
        .set
        .active()
        .and_then(|k| k.state.activated_at())
        .map_or(0, |at| issuer.clock().unix_secs().saturating_sub(at));
    let body = issuer.metrics().render(age, published.set.keys.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
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
