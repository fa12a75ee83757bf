//! `ServiceIdentity` as an axum extractor (feature `axum`).

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::{Error, ServiceIdentity};

/// The rejection when a handler asks for a [`ServiceIdentity`] the request lacks: the 401 the
/// layer answers for a missing token.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ServiceIdentity {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        parts.extensions.get::<ServiceIdentity>().cloned().ok_or_else(|| {
            tracing::error!("no ServiceIdentity in the request: is SvctokenAuthLayer installed on this route?");
            Error::MissingToken
        })
    }
}
