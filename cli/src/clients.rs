//! `svctoken clients add`: a new client's credentials and the `[[clients]]` block to paste.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use clap::Args;
use svctoken_issuer::clients::SecretHash;
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_jwks::{Jwk, SigningKey};
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
    /// Register a public key instead of generating a secret (private_key_jwt): a JWK or JWKS
    /// JSON file, or the client's PKCS#8 PEM private key (only its public half is used).
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

/// The public keys in `path`: a JWK, a JWKS, or a PEM private key's public half.
fn public_keys(path: &PathBuf) -> Result<Vec<Jwk>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    if text.contains("-----BEGIN") {
        let key = SigningKey::from_pkcs8_pem(&text).with_context(|| path.display().to_string())?;
        return Ok(vec![key.public_jwk().clone()]);
    }
    let keys = svctoken_issuer::clients::read_jwks_file(path)?;
    for key in &keys {
        key.validate()
            .with_context(|| format!("{}: unusable key", path.display()))?;
    }
    Ok(keys)
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
