//! [`SvctokenAuthLayer`]: a tower layer that lets through only requests with a valid
//! `Authorization: Bearer` token, handing the inner service their [`ServiceIdentity`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use tower::{Layer, Service};

use crate::{Authenticator, Error, Result, ServiceIdentity};

/// Verifies each request's bearer token before the wrapped service sees it. On success the
/// request's extensions hold its [`ServiceIdentity`]; otherwise the layer answers itself (RFC
/// 6750): 401 `WWW-Authenticate: Bearer` without a token, 401 `error="invalid_token"` for a
/// bad one, 400 `invalid_request` for two `Authorization` headers, 403
/// `insufficient_scope` with the required `scope`, 503 with `Retry-After` while the issuer's
/// keys can't be had. The body is a small JSON object; the token is never echoed or logged.
#[derive(Clone, Debug)]
pub struct SvctokenAuthLayer {
    auth: Authenticator,
}

impl SvctokenAuthLayer {
    /// A layer verifying with `auth`.
    pub fn new(auth: Authenticator) -> Self {
        SvctokenAuthLayer { auth }
    }
}

impl<S> Layer<S> for SvctokenAuthLayer {
    type Service = SvctokenAuthService<S>;

    fn layer(&self, inner: S) -> SvctokenAuthService<S> {
        SvctokenAuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`SvctokenAuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct SvctokenAuthService<S> {
    inner: S,
    auth: Authenticator,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SvctokenAuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh clone waits its turn.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let verified = match bearer_token(request.headers()) {
                Ok(token) => auth.verify(token).await,
                Err(e) => Err(e),
            };
            match verified {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(e) => {
                    log_refusal(&e);
                    Ok(e.to_response())
                }
            }
        })
    }
}

fn log_refusal(e: &Error) {
    match e {
        Error::KeysUnavailable { .. } | Error::Config(_) => {
            tracing::warn!(error = %e, "request refused: tokens can't be verified");
        }
        _ => tracing::debug!(error = %e, "request refused"),
    }
}

/// The token of the request's one `Authorization: Bearer` header (scheme case-insensitive).
/// No header, or another scheme, is [`Error::MissingToken`]; two headers are
/// [`Error::InvalidRequest`]; a value that is not `b64token` (RFC 6750 section 2.1) is an
/// invalid token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(Error::MissingToken)?;
    if values.next().is_some() {
        return Err(Error::InvalidRequest("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidRequest("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingToken);
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !b64token {
        return Err(Error::InvalidToken(svctoken_jwks::Error::Malformed(
            "the bearer token is not a b64token",
        )));
    }
    Ok(token)
}

/// The identity the layer verified, from a request's extensions.
pub fn identity<B>(request: &Request<B>) -> Option<&ServiceIdentity> {
    request.extensions().get::<ServiceIdentity>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
        }
        map
    }

    #[test]
    fn reads_exactly_one_bearer_header() {
        assert_eq!(
            bearer_token(&headers(&["Bearer a.b.c"])).ok(),
            Some("a.b.c")
        );
        assert_eq!(
            bearer_token(&headers(&["bearer a.b.c"])).ok(),
            Some("a.b.c")
        );
        assert_eq!(
            bearer_token(&headers(&["BEARER  a.b-c_=="])).ok(),
            Some("a.b-c_==")
        );
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(Error::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"])),
            Err(Error::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a.b.c", "Bearer a.b.c"])),
            Err(Error::InvalidRequest(_))
        ));
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer ="] {
            assert!(
                matches!(bearer_token(&headers(&[bad])), Err(Error::InvalidToken(_))),
                "{bad:?}"
            );
        }
    }
}
