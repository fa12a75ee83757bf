//! `POST /oauth/token`: the [`TokenForm`] extractor, and a handler that only extracts and
//! answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue};

use super::response::Issued;
use crate::metrics::TokenOutcome;
use crate::oauth::{OAuthError, Refusal, RefusalReason, TokenForm};
use crate::{Issuer, Peer};

/// The token endpoint. Its latency, from the request's headers to the answer (the body read
/// and parsed included), is observed by outcome.
pub(super) async fn token(
    Started(started): Started,
    State(issuer): State<Issuer>,
    ClientPeer(peer): ClientPeer,
    form: Result<TokenForm, OAuthError>,
) -> Result<Issued, OAuthError> {
    let answer = match form {
        Ok(form) => issuer.token(form, peer).await.map(Issued),
        Err(refused) => Err(refused),
    };
    let outcome = match answer {
        Ok(_) => TokenOutcome::Issued,
        Err(_) => TokenOutcome::Refused,
    };
    issuer.metrics().token_request(outcome, started.elapsed());
    answer
}

/// When the handler's extraction started: the first extractor, so before the body is read.
pub(super) struct Started(Instant);

impl<S: Sync> FromRequestParts<S> for Started {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Started(Instant::now()))
    }
}

/// The request's client: the TCP peer, or behind a trusted proxy the address its forwarding
/// headers name (`None` without a socket, as in tests that call the router directly).
pub(super) struct ClientPeer(Option<Peer>);

impl FromRequestParts<Issuer> for ClientPeer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, issuer: &Issuer) -> Result<Self, Infallible> {
        Ok(ClientPeer(client_peer(
            &parts.extensions,
            &parts.headers,
            issuer,
        )))
    }
}

fn client_peer(extensions: &Extensions, headers: &HeaderMap, issuer: &Issuer) -> Option<Peer> {
    let ConnectInfo(tcp) = extensions.get::<ConnectInfo<SocketAddr>>()?;
    Some(issuer.settings().trusted_proxies().client(*tcp, headers))
}

impl FromRequest<Issuer> for TokenForm {
    type Rejection = OAuthError;

    /// Reads the body (at most 64 KiB) and `Authorization`; an unreadable request, a query
    /// string, or a repeated `Authorization` or `Content-Type` header is refused, logged and
    /// audited like any other.
    async fn from_request(request: Request, issuer: &Issuer) -> Result<Self, OAuthError> {
        let peer = client_peer(request.extensions(), request.headers(), issuer);
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
