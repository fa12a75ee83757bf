//! `svctoken convex-config`: the `convex/auth.config.ts` provider entry.

use anyhow::{Result, anyhow, bail};
use svctoken_issuer::settings::Profile;

use crate::{ConfigArgs, open_keyring, settings, time};

/// Prints the provider entry for an audience.
pub(crate) fn convex_config(
    audience: Option<&str>,
    data_uri: bool,
    args: &ConfigArgs,
) -> Result<()> {
    let settings = settings(args)?;
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
