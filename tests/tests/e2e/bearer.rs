//! The bearer layer and `TokenCache::authorize` put the cached token on requests to any API.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::routing::get;
use svctoken_client::{BearerLayer, StaticToken, TokenCache};
use tower::{Layer as _, ServiceExt as _};

async fn echo(headers: HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned()
}

fn app() -> Router {
    Router::new().route("/whoami", get(echo))
}

#[tokio::test]
async fn tower_layer_adds_the_bearer_token() {
    let tokens = TokenCache::new(StaticToken::new("tok-123"));
    let service = BearerLayer::new(tokens.clone()).layer(app());
    let response = service
        .oneshot(
            Request::get("/whoami")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("served");
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(&body[..], b"Bearer tok-123");
    assert_eq!(tokens.fetch_count(), 1);
}

#[tokio::test]
async fn reqwest_requests_are_authorized() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/whoami", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app()).await.expect("serve") });
    let tokens = TokenCache::new(StaticToken::new("tok-456"));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let text = tokens
        .authorize(http.get(&url))
        .await
        .expect("token")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert_eq!(text, "Bearer tok-456");
}
