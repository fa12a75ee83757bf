//! Bearer authentication for any HTTP API: a tower layer, and a helper for reqwest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HeaderValue};
use tower::{Layer, Service};

use crate::{Error, TokenCache};

/// Adds `Authorization: Bearer <token>` from a [`TokenCache`] to every request of the wrapped
/// service (an `http::Request` client such as hyper's, or any tower stack).
#[derive(Clone, Debug)]
pub struct BearerLayer {
    tokens: TokenCache,
}

impl BearerLayer {
    /// A layer that authenticates with `tokens`.
    pub fn new(tokens: TokenCache) -> Self {
        BearerLayer { tokens }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service [`BearerLayer`] produces.
#[derive(Clone, Debug)]
pub struct Bearer<S> {
    inner: S,
    tokens: TokenCache,
}

/// The error of a [`Bearer`] service: the token could not be had, or the inner service failed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<http::Request<B>> for Bearer<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh clone waits its turn.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let token = tokens.token().await?;
            request
                .headers_mut()
                .insert(AUTHORIZATION, bearer_value(token.as_str())?);
            inner.call(request).await.map_err(Into::into)
        })
    }
}

fn bearer_value(token: &str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Protocol("the token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

impl TokenCache {
    /// Adds the bearer token to a reqwest request: `tokens.authorize(http.get(url)).await?.send()`.
    pub async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let token = self.token().await?;
        Ok(request.header(AUTHORIZATION, bearer_value(token.as_str())?))
    }
}
