//! `ConvexClient` against a Convex-faithful fake deployment that trusts a real issuer: what a
//! function sees, function errors, the 401 refresh-and-retry, encoded arguments, the wire
//! format compared with the official JS client's, and the shipped example.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use svctoken_client::{
    AccessToken, Bytes, ClientCredentials, ConvexClient, Endpoint, Error, FetchFuture,
    FetchedToken, Int64, TokenCache, TokenSource,
};
use svctoken_mint::SystemClock;
use svctoken_tests::fake_convex::{FakeConvex, Kind, Outcome, decode_convex_json};
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, TestIssuer, spawn_issuer, worker_client};
use svctoken_tests::interop::convex_js_call;

#[path = "../../../client/examples/convex_call.rs"]
#[allow(dead_code)]
mod example;

async fn setup() -> (TestIssuer, FakeConvex) {
    let config = worker_client(
        "scopes = [\"jobs:run\"]\nclaims = { team = \"payments\", svc = { tier = 2 } }",
    );
    let t = spawn_issuer(&config, Arc::new(SystemClock)).await;
    let auth = t.convex();
    let fake = FakeConvex::start(auth).await;
    (t, fake)
}

fn tokens(t: &TestIssuer) -> TokenCache {
    TokenCache::new(ClientCredentials::new(
        Endpoint::Issuer(t.url.clone()),
        CLIENT_ID,
        CLIENT_SECRET,
    ))
}

#[tokio::test]
async fn calls_reach_the_function_with_the_service_identity() {
    let (t, fake) = setup().await;
    fake.function(Kind::Query, "messages:list", |identity, args| {
        let identity = identity.expect("authenticated");
        Outcome::Success(
            json!({"subject": identity.subject, "fields": identity.fields, "args": args}),
        )
    });
    fake.function(Kind::Mutation, "messages:send", |_, args| {
        Outcome::Success(args["body"].clone())
    });
    fake.function(Kind::Action, "jobs:run", |_, _| {
        Outcome::Success(json!(null))
    });
    let convex = ConvexClient::new(&fake.url, tokens(&t)).expect("client");

    let seen: Value = convex
        .query("messages:list", json!({"limit": 10}))
        .await
        .expect("query");
    assert_eq!(seen["subject"], "svc:worker");
    assert_eq!(seen["fields"]["client_id"], "worker");
    assert_eq!(seen["fields"]["scope"], "jobs:run");
    assert_eq!(seen["fields"]["team"], "payments");
    assert_eq!(
        seen["fields"]["svc.tier"], 2,
        "customJwt flattens nested claims"
    );
    assert_eq!(seen["args"], json!({"limit": 10}));
    let identity = fake.identities().pop().flatten().expect("identity");
    assert_eq!(identity.token_identifier, format!("{}|svc:worker", t.url));

    let body: String = convex
        .mutation("messages:send", json!({"body": "hi"}))
        .await
        .expect("mutation");
    assert_eq!(body, "hi");
    let none: Option<u8> = convex.action("jobs:run", json!({})).await.expect("action");
    assert_eq!(none, None);
    let again: String = convex
        .run("messages:send", json!({"body": "via run"}))
        .await
        .expect("run");
    assert_eq!(again, "via run");

    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("convex-client") == Some(svctoken_client::CONVEX_CLIENT))
    );
    assert_eq!(
        requests.last().map(|r| r.path.as_str()),
        Some("/api/run/messages/send")
    );
    assert_eq!(
        requests[0].body,
        json!({"path": "messages:list", "args": {"limit": 10}, "format": "json"})
    );
}

#[tokio::test]
async fn function_errors_are_typed_with_their_data_at_200_and_560() {
    let (t, fake) = setup().await;
    fake.function(Kind::Mutation, "invoices:create", |_, _| Outcome::Error {
        message: "amount must be positive".into(),
        data: Some(json!({"field": "amount"})),
    });
    let convex = ConvexClient::new(&fake.url, tokens(&t)).expect("client");
    for status in [200, 560] {
        fake.set_error_status(status);
        let err = convex
            .mutation::<Value>("invoices:create", json!({"amount": -1}))
            .await
            .expect_err("throws");
        match err {
            Error::Function {
                message,
                data,
                status: got,
            } => {
                assert_eq!(message, "amount must be positive");
                assert_eq!(data, Some(json!({"field": "amount"})));
                assert_eq!(got, status);
            }
            other => panic!("{other:?}"),
        }
    }
    let err = convex
        .query::<Value>("nowhere:nothing", json!({}))
        .await
        .expect_err("unknown function");
    assert!(matches!(err, Error::Function { .. }), "{err:?}");
}

/// Hands out a forged token first, then real ones from the issuer.
struct ForgedFirst {
    inner: ClientCredentials,
    calls: AtomicU64,
    always_forged: bool,
}

impl TokenSource for ForgedFirst {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let mut fetched = self.inner.fetch().await?;
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 || self.always_forged {
                let (rest, _) = fetched.access_token.secret().rsplit_once('.').expect("jws");
                fetched.access_token = AccessToken::new(format!("{rest}.AAAA"));
            }
            Ok::<FetchedToken, Error>(fetched)
        })
    }
}

#[tokio::test]
async fn a_401_forces_one_refresh_and_one_retry() {
    let (t, fake) = setup().await;
    fake.function(Kind::Mutation, "counter:increment", |_, _| {
        Outcome::Success(json!(1))
    });
    let source = |always_forged| ForgedFirst {
        inner: ClientCredentials::new(Endpoint::Issuer(t.url.clone()), CLIENT_ID, CLIENT_SECRET),
        calls: AtomicU64::new(0),
        always_forged,
    };
    let convex = ConvexClient::new(&fake.url, TokenCache::new(source(false))).expect("client");
    let n: u32 = convex
        .mutation("counter:increment", json!({}))
        .await
        .expect("retried with a fresh token");
    assert_eq!(n, 1);
    assert_eq!(fake.requests().len(), 2, "one refused, one retried");
    assert_eq!(fake.executions(), 1, "the mutation ran once");

    let convex = ConvexClient::new(&fake.url, TokenCache::new(source(true))).expect("client");
    let err = convex
        .mutation::<u32>("counter:increment", json!({}))
        .await
        .expect_err("still refused");
    match err {
        Error::Unauthorized { code, message } => {
            assert_eq!(code, "InvalidAuthHeader");
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 4, "exactly one retry");
    assert_eq!(fake.executions(), 1, "nothing ran on a refused token");
}

#[tokio::test]
async fn int64_and_bytes_reach_convex_encoded() {
    let (t, fake) = setup().await;
    fake.function(Kind::Mutation, "files:put", |_, args| {
        Outcome::Success(args)
    });
    let convex = ConvexClient::new(&fake.url, tokens(&t)).expect("client");
    #[derive(serde::Serialize)]
    struct Put {
        #[serde(with = "svctoken_client::int64")]
        owner: i64,
        size: Int64,
        data: Bytes,
        ratio: f64,
    }
    let echoed: Value = convex
        .mutation(
            "files:put",
            Put {
                owner: -7,
                size: Int64(1 << 60),
                data: Bytes(vec![0, 1, 2]),
                ratio: 0.5,
            },
        )
        .await
        .expect("mutation");
    let decoded = decode_convex_json(&echoed).expect("valid Convex values");
    assert_eq!(
        decoded,
        json!({"owner": "-7", "size": (1i64 << 60).to_string(), "data": "AAEC", "ratio": 0.5})
    );
    let err = convex
        .mutation::<Value>("files:put", json!({"$id": 1}))
        .await
        .expect_err("reserved");
    assert!(matches!(err, Error::Encode(_)), "{err:?}");
}

/// The same call made by our client and by the official JS client (`ConvexHttpClient` with
/// `setAuth`) arrives as the same request: method, path, bearer header, content type, and the
/// body once the JS client's one-element `args` array is unwrapped. The one deliberate
/// difference is `format`: we ask for `json` (clean values), the JS client for
/// `convex_encoded_json`; both are formats Convex accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_compatible_with_the_official_js_client() {
    let (t, fake) = setup().await;
    fake.function(Kind::Mutation, "messages:send", |_, _| {
        Outcome::Success(json!("ok"))
    });
    let cache = tokens(&t);
    let token = cache.token().await.expect("token");

    let convex = ConvexClient::new(&fake.url, cache.clone()).expect("client");
    let ours_args = json!({
        "body": "hello",
        "count": Int64(123),
        "blob": Bytes(vec![0, 1, 2]),
        "nested": {"score": 1.5, "tags": ["a", "b"], "flag": true, "none": null},
    });
    let _: String = convex
        .mutation("messages:send", &ours_args)
        .await
        .expect("ours");

    let js_args = json!({
        "body": "hello",
        "count": {"$bigint": "123"},
        "blob": {"$bytesB64": "AAEC"},
        "nested": {"score": 1.5, "tags": ["a", "b"], "flag": true, "none": null},
    });
    let (url, bearer) = (fake.url.clone(), token.as_str().to_owned());
    let js = tokio::task::spawn_blocking(move || {
        convex_js_call(&url, Some(&bearer), "mutation", "messages:send", &js_args)
    })
    .await
    .expect("join")
    .expect("the JS client ran");
    let Some(js) = js else {
        // Not installed and not under CI: the reason was printed.
        return;
    };
    assert_eq!(js["ok"], true, "{js}");

    let requests = fake.requests();
    let (ours, theirs) = (&requests[0], &requests[1]);
    assert_eq!(ours.method, theirs.method);
    assert_eq!(ours.path, theirs.path);
    for header in ["authorization", "content-type"] {
        assert_eq!(ours.header(header), theirs.header(header), "{header}");
    }
    assert_eq!(
        ours.header("authorization"),
        Some(format!("Bearer {}", token.as_str()).as_str())
    );
    // Unwrap the JS client's one-element `args` array; set `format` aside.
    let normalise = |body: &Value| -> (Value, Value) {
        let mut map = body.as_object().expect("object body").clone();
        let format = map.remove("format").unwrap_or(Value::Null);
        if let Some(Value::Array(one)) = map.get("args").cloned() {
            assert_eq!(one.len(), 1, "the JS client sends a one-element array");
            map.insert("args".into(), one[0].clone());
        }
        (Value::Object(map), format)
    };
    let (ours_body, ours_format) = normalise(&ours.body);
    let (their_body, their_format) = normalise(&theirs.body);
    assert_eq!(ours_body, their_body);
    assert_eq!(ours_format, json!("json"));
    assert_eq!(their_format, json!("convex_encoded_json"));
    assert_eq!(fake.executions(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_calls_the_fake_deployment() {
    let (t, fake) = setup().await;
    #[derive(Deserialize)]
    struct Listed {
        caller: String,
    }
    fake.function(Kind::Query, "messages:list", |identity, _| {
        Outcome::Success(json!({"caller": identity.map(|i| i.subject.clone())}))
    });
    let config = example::Config {
        deployment: fake.url.clone(),
        issuer: t.url.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        function: "messages:list".into(),
        args: json!({}),
    };
    let value = example::call(&config).await.expect("the example runs");
    let listed: Listed = serde_json::from_value(value).expect("shape");
    assert_eq!(listed.caller, "svc:worker");
}
