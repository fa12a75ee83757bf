//! `soak-load --dir DIR [--seconds N] [--connections N] [--port P]`: the load generator of
//! `bench/soak`. Writes `DIR/svctoken.toml` for an issuer on 127.0.0.1:P (a free port by
//! default), serves the trusted upstream's JWKS, waits for that issuer to be ready, then sends
//! token requests over N connections (default 64) for N seconds (default 600), mixing client
//! credentials with a secret, `private_key_jwt` and token exchange, and prints a table of
//! requests, errors and latency per grant. Exits 1 if any request failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use svctoken_tests::soak::Scenario;

/// How long to wait for the issuer to come up once the configuration is written.
const READY_PATIENCE: Duration = Duration::from_secs(300);

struct Args {
    dir: PathBuf,
    seconds: u64,
    connections: usize,
    port: u16,
}

fn args() -> Result<Args> {
    let mut args = Args {
        dir: PathBuf::new(),
        seconds: 600,
        connections: 64,
        port: 0,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--dir" => args.dir = value()?.into(),
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--connections" => args.connections = value()?.parse().context("--connections")?,
            "--port" => args.port = value()?.parse().context("--port")?,
            other => bail!(
                "unknown argument {other:?}; usage: soak-load --dir DIR [--seconds N] \
                 [--connections N] [--port P]"
            ),
        }
    }
    if args.dir.as_os_str().is_empty() || args.connections == 0 {
        bail!("soak-load needs --dir, and at least one connection");
    }
    Ok(args)
}

async fn soak(args: Args) -> Result<bool> {
    let scenario = Scenario::start(&args.dir, args.port).await?;
    println!(
        "soak-load: wrote {}; waiting for the issuer at {}",
        scenario.config.display(),
        scenario.issuer
    );
    scenario.wait_ready(READY_PATIENCE).await?;
    println!(
        "soak-load: {} connections for {} s",
        args.connections, args.seconds
    );
    let report = scenario
        .drive(Duration::from_secs(args.seconds), args.connections)
        .await?;
    print!("{report}");
    Ok(report.errors() == 0)
}

fn main() -> ExitCode {
    let result = args().and_then(|args| {
        tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(soak(args))
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
