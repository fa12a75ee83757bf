//! `svctoken init`: the embedded default written out as a configuration file to edit, keeping
//! its development client `dev`, so that moving to a file loses nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use svctoken_issuer::settings::{ClientConfig, Config, DEFAULT_DATA_DIR, Overrides};

use crate::serve::{create_private_dir, dev_client};

/// `svctoken init` options.
#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// The file to write.
    #[arg(long, env = "SVCTOKEN_CONFIG", default_value = "svctoken.toml")]
    config: PathBuf,
    /// The data directory the file names, where the `dev` client's secret is (or is made).
    #[arg(long, env = "SVCTOKEN_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    force: bool,
}

/// Writes the configuration file (mode 0644), with the `dev` client's secret hash: of the
/// secret already in `<data_dir>/dev-client-secret`, or of a new one made there (0600) as
/// `serve` makes it.
pub(crate) fn init(args: &InitArgs) -> Result<()> {
    let path = &args.config;
    if !args.force && path.exists() {
        bail!(
            "{} exists; `svctoken init --force` overwrites it (or choose another file with \
             --config)",
            path.display()
        );
    }
    let secret_file = args.data_dir.join("dev-client-secret");
    let made_secret = !secret_file.exists();
    create_private_dir(&args.data_dir)?;
    let dev = dev_client(&secret_file)?;
    let data_dir = data_dir_for(path, &args.data_dir);
    let text = render(&toml_string(&data_dir)?, &dev)?;
    // What is written is what `serve --config` loads.
    Config::from_toml(&text)
        .and_then(|c| c.validate(&Overrides::default()))
        .context("the configuration svctoken init made does not load (a bug)")?;
    write(path, &text, args.force)?;
    println!("wrote {}", path.display());
    println!(
        "  development client \"dev\": secret in {} ({})",
        secret_file.display(),
        if made_secret {
            "new, mode 0600"
        } else {
            "the one serve made, kept"
        }
    );
    println!("run it: svctoken serve --config {}", path.display());
    Ok(())
}

/// `data_dir` as the file must say it: relative paths in the file are relative to the file's
/// directory, flags' to the working directory.
fn data_dir_for(config: &Path, data_dir: &Path) -> PathBuf {
    let beside = config
        .parent()
        .is_none_or(|p| p.as_os_str().is_empty() || p == Path::new("."));
    if data_dir.is_absolute() || beside {
        data_dir.to_owned()
    } else {
        std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned())
    }
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> Result<String> {
    let Some(text) = path.to_str() else {
        bail!("{} is not UTF-8, which TOML can't hold", path.display());
    };
    if text.chars().any(char::is_control) {
        bail!("{text:?} holds control characters; choose a plainer --data-dir");
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The file: every main key with its default (commented), the audience and the `dev` client.
fn render(data_dir: &str, dev: &ClientConfig) -> Result<String> {
    let Some(hash) = &dev.secret_sha256 else {
        bail!("the dev client has no secret hash (a bug)");
    };
    let secret_file = format!("{}/dev-client-secret", data_dir.trim_matches('"'));
    Ok(format!(
        r#"# svctoken issuer configuration, written by `svctoken init`: the embedded default as a
# file to edit. Run it with `svctoken serve --config <this file>`.
# Every key is optional: a commented key shows its default (docs/configuration.md has them all).
# Flags and SVCTOKEN_* variables win over this file; relative paths here are relative to it.

# The iss of every token and the issuer of discovery, exactly as written. Convex in the cloud
# must reach it over https (or get the JWKS embedded: `svctoken convex-config --data-uri`).
# issuer = "https://auth.example.com"   # default: http://<listen>
# listen = "127.0.0.1:8080"
data_dir = {data_dir}      # keys (private/, 0600), audit.log, dev-client-secret
# database_url = "postgres://user:password@host:5432/dbname"   # several replicas; default none
# trusted_proxies = ["10.0.0.0/8"]      # default none

[keys]
# algorithm = "ES256"                   # ES256 | RS256 | EdDSA
# rsa_bits = 2048                       # RS256: 2048 | 3072 | 4096
# rotation_period = "24h"
# jwks_max_age = "5m"

[[audiences]]
name = "convex"                         # the aud claim: Convex's applicationID
profile = "convex-custom-jwt"           # convex-custom-jwt | convex-oidc | generic

# The embedded default's development client, kept: its secret is in {secret_file}
# (only its SHA-256 is here). Remove it in production; `svctoken clients add --id NAME` prints
# the block of each real client.
[[clients]]
id = "dev"
secret_sha256 = "{hash}"
# subject = "svc:dev"
# audiences = ["convex"]                # default: every audience
# scopes = []
# max_ttl = "5m"                        # at most 24h
# act_as = ["user:*"]                   # default none
# claims = {{ team = "payments" }}        # default none

# [audit]
# file = "audit.log"                    # default <data_dir>/audit.log; "" turns it off
# stdout = false
# fail_closed = false

# [rate_limit]                          # off unless this table is present
# burst = 100
# per_minute = 600
"#
    ))
}

/// Writes `text` to `path` with mode 0644: a new file, or with `force` a replacement made
/// atomically (a temporary file beside it, renamed over it).
fn write(path: &Path, text: &str, force: bool) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let target = if force {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".tmp");
        path.with_file_name(name)
    } else {
        path.to_owned()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o644);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(&target)
        .with_context(|| format!("creating {}", target.display()))?;
    // The mode asked for at creation is reduced by the umask; the file is meant to be 0644.
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", target.display()))?;
    if force {
        std::fs::rename(&target, path)
            .with_context(|| format!("renaming {} to {}", target.display(), path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_loads_and_keeps_the_dev_client() {
        let dev = ClientConfig {
            id: "dev".into(),
            secret_sha256: Some("ab".repeat(32)),
            ..ClientConfig::default()
        };
        let text = render("\"./svctoken-data\"", &dev).expect("render");
        let settings = Config::from_toml(&text)
            .and_then(|c| c.validate(&Overrides::default()))
            .expect("loads");
        assert!(settings.clients().iter().any(|c| c.id == "dev"));
        assert_eq!(settings.data_dir(), Path::new("./svctoken-data"));
        assert_eq!(settings.audiences().len(), 1);
    }

    #[test]
    fn data_dir_is_relative_to_the_file() {
        let rel = Path::new("./svctoken-data");
        assert_eq!(data_dir_for(Path::new("svctoken.toml"), rel), rel);
        assert_eq!(data_dir_for(Path::new("./svctoken.toml"), rel), rel);
        let elsewhere = data_dir_for(Path::new("/etc/svctoken/svctoken.toml"), rel);
        assert!(elsewhere.is_absolute(), "{}", elsewhere.display());
        assert_eq!(
            toml_string(Path::new("a\"b\\c")).expect("toml"),
            r#""a\"b\\c""#
        );
    }
}
