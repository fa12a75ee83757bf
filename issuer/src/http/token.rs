//! `POST /oauth/token`: the [`TokenForm`] extractor, and a handler that only extracts and
//! answers.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, FromRequest, Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};

use super::response::Issued;
use crate::Issuer;
use crate::oauth::{OAuthError, Refusal, RefusalReason, TokenForm};

/// The token endpoint.
pub(super) async fn token(
    State(issuer): State<Issuer>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    form: TokenForm,
) -> Result<Issued, OAuthError> {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    issuer.token(form, peer).await.map(Issued)
}

impl FromRequest<Issuer> for TokenForm {
    type Rejection = OAuthError;

    /// Reads the body (at most 64 KiB) and `Authorization`; an unreadable request, a query
    /// string, or a repeated `Authorization` or `Content-Type` header is refused, logged and
    /// audited like any other.
    async fn from_request(request: Request, issuer: &Issuer) -> Result<Self, OAuthError> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        let has_query = request.uri().query().is_some();
        let repeated = [
            (AUTHORIZATION, "authorization"),
            (CONTENT_TYPE, "content-type"),
        ]
        .into_iter()
        .find(|(header, _)| request.headers().get_all(header).iter().nth(1).is_some())
        .map(|(_, name)| name);
        let content_type = request.headers().get(CONTENT_TYPE).cloned();
        let authorization = request.headers().get(AUTHORIZATION).cloned();
        let parsed = match Bytes::from_request(request, issuer).await {
            Ok(body) => {
                let form = if has_query {
                    Err(RefusalReason::QueryString)
                } else if let Some(name) = repeated {
                    // Two `Authorization` (or `Content-Type`) headers: which one counts is up
                    // to each proxy and server on the way, so a proxy could vet one and the
                    // issuer use the other. Neither is used.
                    Err(RefusalReason::RepeatedHeader(name))
                } else {
                    TokenForm::parse(
                        text(content_type.as_ref()),
                        text(authorization.as_ref()),
                        &body,
                    )
                };
                wipe(body);
                form
            }
            Err(rejection) => Err(RefusalReason::BodyUnreadable {
                status: rejection.status().as_u16(),
            }),
        };
        match parsed {
            Ok(form) => Ok(form),
            Err(reason) => Err(issuer.refused(Refusal::new(reason, None), peer).await),
        }
    }
}

/// A header's value as text, if it is visible ASCII.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// Zeroes the body once parsed, when this is its only owner (it holds credentials).
fn wipe(body: Bytes) {
    if let Ok(mut owned) = body.try_into_mut() {
        zeroize::Zeroize::zeroize(owned.as_mut());
    }
}
