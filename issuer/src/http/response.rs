//! The only `IntoResponse` impls of the token endpoint: a token (`no-store`) or an RFC 6749
//! section 5.2 error.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use svctoken_mint::oauth::{ErrorBody, ErrorCode, TokenResponse};

use crate::oauth::OAuthError;

const NO_STORE: [(header::HeaderName, HeaderValue); 2] = [
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (header::PRAGMA, HeaderValue::from_static("no-cache")),
];

const JSON: (header::HeaderName, HeaderValue) = (
    header::CONTENT_TYPE,
    HeaderValue::from_static("application/json"),
);

/// A token, sent as JSON with `Cache-Control: no-store` (RFC 6749 section 5.1).
pub(super) struct Issued(pub(super) TokenResponse);

impl IntoResponse for Issued {
    /// The same answer as `(NO_STORE, Json(..))`, serialised into one buffer sized for the
    /// token instead of one that grows as it is written.
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(self.0.access_token.secret().len() + 128);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (NO_STORE, [JSON], body).into_response(),
            Err(_) => (NO_STORE, Json(self.0)).into_response(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = ErrorBody {
            error: self.code.clone(),
            error_description: Some(self.description.into()),
        };
        let mut response = (status, NO_STORE, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == ErrorCode::InvalidClient {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"svctoken\", charset=\"UTF-8\""),
            );
        }
        response
    }
}
