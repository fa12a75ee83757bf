//! `svctoken clients add`: a new client's credentials and the `[[clients]]` block to paste.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use svctoken_issuer::clients::SecretHash;
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_jwks::Jwk;
use zeroize::Zeroizing;

/// `clients add` options.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    /// Client id.
    #[arg(long)]
    id: String,
    /// Audiences it may use (default: all configured).
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// Scopes it may ask for.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Token lifetime, e.g. 10m (default 5m).
    #[arg(long, value_parser = crate::duration)]
    max_ttl: Option<Duration>,
    /// Register a public key instead of generating a secret (private_key_jwt): a PEM public
    /// key (`PUBLIC KEY`, `RSA PUBLIC KEY`), a JWK or JWKS JSON file, or the client's PEM
    /// private key (PKCS#8, `EC PRIVATE KEY`, `RSA PRIVATE KEY`; only its public half is used).
    #[arg(long)]
    jwk_file: Option<PathBuf>,
    /// Subjects it may act for, as glob patterns (e.g. 'user:*'); repeatable.
    #[arg(long = "act-as")]
    act_as: Vec<String>,
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Private JWK members, dropped so that only the public half of a private JWK is registered.
const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// The public keys in `path`: a PEM public key (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`),
/// the public half of a PEM private key (PKCS#8, SEC1 `EC PRIVATE KEY`, PKCS#1
/// `RSA PRIVATE KEY`), or a JWK or JWKS JSON file (of a private JWK, its public members).
fn public_keys(path: &Path) -> Result<Vec<Jwk>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the key file {} (--jwk-file)", path.display()))?,
    );
    if text.contains("-----BEGIN") {
        let jwk = svctoken_jwks::public_jwk_from_pem(&text).map_err(|e| key_error(path, e))?;
        return Ok(vec![jwk]);
    }
    let mut keys = svctoken_issuer::clients::read_jwks_file(path)?;
    for key in &mut keys {
        for member in PRIVATE_JWK_MEMBERS {
            key.other.remove(member);
        }
        key.validate()
            .with_context(|| format!("{}: unusable key", path.display()))?;
    }
    if keys.is_empty() {
        bail!("{}: the JWKS holds no key", path.display());
    }
    Ok(keys)
}

/// A key file that can't be read, with the `openssl` line that converts it when one does.
fn key_error(path: &Path, e: svctoken_jwks::Error) -> anyhow::Error {
    match e {
        svctoken_jwks::Error::UnsupportedKeyFormat(_) => anyhow!(
            "{}: {e}: `{}`",
            path.display(),
            svctoken_jwks::pkcs8_conversion_command(path)
        ),
        _ => anyhow!(
            "{}: {e} (a PEM public or private key, or a JWK or JWKS JSON file, is expected)",
            path.display()
        ),
    }
}

/// Prints the new client's secret (once) or registers its key, and the block to paste.
pub(crate) fn add(args: &AddArgs) -> Result<()> {
    let id = &args.id;
    svctoken_issuer::clients::validate_client_id(id)?;
    let mut block = format!("[[clients]]\nid = {id:?}\n");
    let secret = match &args.jwk_file {
        Some(path) => {
            block.push_str(&svctoken_issuer::clients::jwks_toml_line(&public_keys(
                path,
            )?));
            None
        }
        None => {
            let secret = svctoken_issuer::clients::generate_secret()?;
            block.push_str(&format!(
                "secret_sha256 = \"{}\"\n",
                SecretHash::of(&secret).to_hex()
            ));
            Some(secret)
        }
    };
    block.push_str(&format!("subject = \"svc:{id}\"\n"));
    if !args.audiences.is_empty() {
        block.push_str(&format!("audiences = {}\n", list(&args.audiences)));
    }
    block.push_str(&format!("scopes = {}\n", list(&args.scopes)));
    if let Some(ttl) = args.max_ttl {
        block.push_str(&format!(
            "max_ttl = \"{}\"\n",
            humantime::format_duration(ttl)
        ));
    }
    if !args.act_as.is_empty() {
        block.push_str(&format!("act_as = {}\n", list(&args.act_as)));
    }
    // Check the block the way the issuer will read it (with its audiences declared).
    let declared: String = args
        .audiences
        .iter()
        .map(|a| format!("[[audiences]]\nname = {a:?}\n"))
        .collect();
    Settings::from_toml(&format!("{declared}{block}"), &Overrides::default())
        .map_err(|e| anyhow!("{e}"))?;
    match secret {
        Some(secret) => {
            println!("Client secret for {id:?} (shown once; keep it in your secret manager):\n");
            println!("{}\n", &*secret);
        }
        None => println!(
            "Client {id:?} authenticates with its private key (private_key_jwt); no secret exists.\n"
        ),
    }
    println!("Add this block to the issuer's configuration:\n\n{block}");
    Ok(())
}
