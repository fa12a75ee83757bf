//! `fake-convex (--custom-jwt ISSUER JWKS ALG APPLICATION_ID | --oidc DOMAIN APPLICATION_ID)...`:
//! the fake Convex deployment of [`svctoken_tests::fake_convex`] as a process, for tests written
//! in other languages (the npm package's tests call it with the official `convex` clients).
//!
//! Tokens are verified under Convex's rules ([`svctoken_tests::convex`]) with the providers
//! given, in order, as `convex/auth.config.ts` would list them. Its functions:
//!
//! - `service:whoami` (query) and `jobs:whoami` (action): the caller's identity as
//!   `ctx.auth.getUserIdentity()` returns it (`tokenIdentifier`, `subject`, `issuer` and the other
//!   fields), or `null` for an anonymous call.
//! - `notes:add` (mutation): `{"identity": <as above>, "args": <the arguments>}`; a function error
//!   with `errorData: {"code": "Unauthenticated"}` (a `ConvexError`) for an anonymous call.
//!
//! Prints `fake-convex: listening on http://127.0.0.1:PORT` once it serves. It stops when its
//! standard input closes (so it never outlives the test that started it) or on SIGTERM.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Value, json};
use svctoken_tests::convex::{ConvexAuth, CustomJwtAlgorithm, Identity, Provider};
use svctoken_tests::fake_convex::{FakeConvex, Kind, Outcome};
use tokio::io::AsyncReadExt as _;

const USAGE: &str = "usage: fake-convex (--custom-jwt ISSUER JWKS ES256|RS256 APPLICATION_ID | \
                     --oidc DOMAIN APPLICATION_ID)...";

fn providers() -> Result<Vec<Provider>> {
    let mut providers = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .with_context(|| format!("{flag} needs {what}; {USAGE}"))
        };
        match flag.as_str() {
            "--custom-jwt" => {
                let issuer = value("ISSUER")?;
                let jwks = value("JWKS")?;
                let algorithm = match value("ALG")?.as_str() {
                    "ES256" => CustomJwtAlgorithm::ES256,
                    "RS256" => CustomJwtAlgorithm::RS256,
                    other => bail!("--custom-jwt: algorithm {other:?} is not ES256 or RS256"),
                };
                let application_id = Some(value("APPLICATION_ID")?);
                providers.push(Provider::CustomJwt {
                    issuer,
                    jwks,
                    algorithm,
                    application_id,
                });
            }
            "--oidc" => {
                let domain = value("DOMAIN")?;
                let application_id = value("APPLICATION_ID")?;
                providers.push(Provider::Oidc {
                    domain,
                    application_id,
                });
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    if providers.is_empty() {
        bail!("no provider given; {USAGE}");
    }
    Ok(providers)
}

/// `ctx.auth.getUserIdentity()`'s value.
fn identity_json(identity: Option<&Identity>) -> Value {
    let Some(identity) = identity else {
        return Value::Null;
    };
    let mut out = Map::new();
    out.insert("tokenIdentifier".into(), json!(identity.token_identifier));
    out.insert("subject".into(), json!(identity.subject));
    out.insert("issuer".into(), json!(identity.issuer));
    out.extend(identity.fields.clone());
    Value::Object(out)
}

async fn serve(providers: Vec<Provider>) -> Result<()> {
    let deployment = FakeConvex::start(ConvexAuth::new(providers)).await;
    let whoami =
        |identity: Option<&Identity>, _args: Value| Outcome::Success(identity_json(identity));
    deployment.function(Kind::Query, "service:whoami", whoami);
    deployment.function(Kind::Action, "jobs:whoami", whoami);
    deployment.function(
        Kind::Mutation,
        "notes:add",
        |identity, args| match identity {
            None => Outcome::Error {
                message: "Unauthenticated".into(),
                data: Some(json!({"code": "Unauthenticated"})),
            },
            Some(identity) => Outcome::Success(json!({
                "identity": identity_json(Some(identity)),
                "args": args,
            })),
        },
    );
    println!("fake-convex: listening on http://{}", deployment.addr());
    std::io::stdout().flush().context("writing to stdout")?;

    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 256];
    let stdin_closed = async move {
        while let Ok(n) = stdin.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stdin_closed => {}
        () = terminated => {}
    }
    // No graceful shutdown: it would wait for the clients' idle keep-alive connections.
    std::process::exit(0)
}

fn main() -> ExitCode {
    let result = providers().and_then(|providers| {
        tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(serve(providers))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-convex: {e:#}");
            ExitCode::FAILURE
        }
    }
}
