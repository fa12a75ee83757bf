//! `svctoken convex-config`: the `convex/auth.config.ts` provider entry.

use anyhow::{Result, anyhow, bail};
use svctoken_issuer::settings::{Overrides, Profile};

use crate::{ConfigArgs, open_keyring, settings_with, time};

/// Prints the provider entry for an audience.
pub(crate) fn convex_config(
    audience: Option<&str>,
    data_uri: bool,
    args: &ConfigArgs,
    overrides: Overrides,
) -> Result<()> {
    let settings = settings_with(args, overrides)?;
    if !data_uri {
        warn_loopback(settings.issuer().as_str());
    }
    let audience = match audience {
        Some(name) => settings
            .audience(name)
            .ok_or_else(|| anyhow!("--audience {name:?} is not configured"))?,
        None if settings.audiences().len() == 1 => &settings.audiences()[0],
        None => bail!("several audiences are configured: choose one with --audience"),
    };
    let name = &audience.name;
    match audience.profile {
        Profile::ConvexOidc => {
            if data_uri {
                bail!(
                    "--data-uri works only with the convex-custom-jwt profile: Convex's OIDC provider always fetches discovery and the JWKS"
                );
            }
            println!(
                "// convex/auth.config.ts\nexport default {{\n  providers: [\n    {{\n      domain: {:?},\n      applicationID: {name:?},\n    }},\n  ],\n}};",
                settings.issuer()
            );
        }
        Profile::ConvexCustomJwt | Profile::Generic => {
            if audience.profile == Profile::Generic {
                eprintln!(
                    "note: audience {name:?} has the generic profile; Convex verifies only what convex-custom-jwt allows"
                );
            }
            let (jwks, note) = if data_uri {
                let ring = open_keyring(&settings)?;
                let published = ring.published();
                let rendered = published
                    .jwks(Some(name))
                    .ok_or_else(|| anyhow!("no JWKS for audience {name:?}"))?;
                let until =
                    svctoken_issuer::keyring::copy_valid_until(&published, settings.schedule())
                        .map(time)
                        .unwrap_or_else(|| "the next rotation".into());
                (
                    svctoken_jwks::data_uri(&rendered.jwks),
                    format!(
                        "      // The JWKS is embedded (the signing key and its standby): Convex never\n      // fetches it. Redeploy with a fresh `svctoken convex-config --data-uri` before\n      // {until}, when the key after the standby signs (sooner after `svctoken keys rotate`\n      // or `keys revoke`).\n"
                    ),
                )
            } else {
                (settings.audience_jwks_uri(name), String::new())
            };
            println!(
                "// convex/auth.config.ts\nexport default {{\n  providers: [\n    {{\n      type: \"customJwt\",\n      applicationID: {name:?},\n      issuer: {:?},\n{note}      jwks: {jwks:?},\n      algorithm: \"{}\",\n    }},\n  ],\n}};",
                settings.issuer(),
                settings.schedule().algorithm
            );
        }
    }
    Ok(())
}

/// Warns on standard error when Convex would be told to fetch keys from a loopback issuer,
/// which a deployment in the cloud can't reach (a Convex backend on this machine can). With
/// `--data-uri` Convex fetches nothing, so a loopback issuer is fine there.
fn warn_loopback(issuer: &str) {
    if crate::loopback::loopback_http(issuer).is_some() {
        eprintln!(
            "svctoken: warning: the issuer {issuer} is a loopback URL: Convex in the cloud can't \
             reach it to fetch the JWKS (only a Convex backend on this machine can). Give the \
             https URL the issuer is publicly reachable at (--issuer https://auth.example.com), \
             or embed the JWKS with --data-uri"
        );
    }
}
