//! Configuration: one TOML file (every key optional), overridden by flags and `SVCTOKEN_*`
//! environment variables, validated once into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use svctoken_jwks::Algorithm;

use crate::clients::{Client, ClientAuth, SecretHash};
use crate::rotation::Schedule;
use crate::{Audience, Error, Profile, Result};
use svctoken_mint::{DEFAULT_TTL, IssuerUrl, check_custom_claims};

/// Default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./svctoken-data";
/// Longest `max_ttl` a client may have.
pub const MAX_TTL_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The configuration file, as written. See `docs/configuration.md` for every key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Issuer URL, published and minted exactly as written. Default `http://<listen>`.
    pub issuer: Option<String>,
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Directory of the files key store. Default `./svctoken-data`.
    pub data_dir: Option<PathBuf>,
    /// Key settings.
    #[serde(default)]
    pub keys: KeysConfig,
    /// Audiences. Default: one, `convex`, profile `convex-custom-jwt`.
    pub audiences: Option<Vec<AudienceConfig>>,
    /// Clients. Default: none.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Upstream issuers whose user tokens may be exchanged (RFC 8693). Default: none.
    #[serde(default)]
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Per-client rate limit of the token endpoint.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
}

/// `[audit]`: where every mint and refusal is recorded.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Also write each event as a JSON line to stdout. Default false.
    #[serde(default)]
    pub stdout: bool,
    /// The hash-chained audit file. Default `<data_dir>/audit.log`; `""` turns it off.
    pub file: Option<PathBuf>,
    /// Refuse to hand out a token whose issuance could not be recorded. Default false.
    #[serde(default)]
    pub fail_closed: bool,
}

/// `[[trusted_issuers]]`: an issuer of user tokens (for example the app's own auth provider).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// Its `iss`, compared exactly.
    pub issuer: String,
    /// Where its keys are.
    pub jwks_uri: String,
    /// The `aud` its tokens must carry to be exchanged here.
    pub audience: String,
    /// Algorithms accepted from it. Default RS256, ES256, EdDSA.
    pub algorithms: Option<Vec<Algorithm>>,
}

/// `[rate_limit]`: a token bucket per client.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a client may make at once. Default 100.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Sustained requests per client per minute. Default 600.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
}

fn default_burst() -> u32 {
    100
}

fn default_per_minute() -> u32 {
    600
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            burst: default_burst(),
            per_minute: default_per_minute(),
        }
    }
}

/// `[keys]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// `ES256` | `RS256` | `EdDSA`. Default ES256.
    pub algorithm: Option<Algorithm>,
    /// RSA modulus bits: 2048, 3072 or 4096. Default 2048.
    pub rsa_bits: Option<usize>,
    /// How long each key signs. Default 24h.
    #[serde(default, deserialize_with = "duration")]
    pub rotation_period: Option<Duration>,
    /// JWKS `Cache-Control: max-age`. Default 5m.
    #[serde(default, deserialize_with = "duration")]
    pub jwks_max_age: Option<Duration>,
}

/// `[[audiences]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceConfig {
    /// The `aud` claim; Convex's `applicationID`.
    pub name: String,
    /// Default `convex-custom-jwt`.
    pub profile: Option<Profile>,
}

/// `[[clients]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `client_id`.
    pub id: String,
    /// SHA-256 of the secret, hex, as printed by `svctoken clients add`.
    pub secret_sha256: Option<String>,
    /// Public keys, inline, for `private_key_jwt` instead of a secret.
    pub jwks: Option<Vec<svctoken_jwks::Jwk>>,
    /// A file holding the public keys (a JWKS or one JWK), relative to the configuration file.
    pub jwks_file: Option<PathBuf>,
    /// Subjects it may act for, as glob patterns (`"user:*"`). Default none.
    #[serde(default)]
    pub act_as: Vec<String>,
    /// `sub` of its tokens. Default `svc:<id>`.
    pub subject: Option<String>,
    /// Audiences it may use. Default all.
    pub audiences: Option<Vec<String>>,
    /// Scopes it may ask for. Default none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime of its tokens. Default 5m, at most 24h.
    #[serde(default, deserialize_with = "duration")]
    pub max_ttl: Option<Duration>,
    /// Custom claims. Default none.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses `"24h"`, `"5m"`, `"90s"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"5m\" or \"24h\" ({e})"))
}

/// Values given on the command line or in `SVCTOKEN_*` variables; they win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--issuer` / `SVCTOKEN_ISSUER`.
    pub issuer: Option<String>,
    /// `--listen` / `SVCTOKEN_LISTEN`.
    pub listen: Option<String>,
    /// `--data-dir` / `SVCTOKEN_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
}

/// Validated settings: everything the issuer needs, already checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The issuer URL (`iss`), no trailing slash.
    pub issuer: String,
    /// True when `issuer` was not given and follows `listen` (re-derived after binding).
    pub issuer_follows_listen: bool,
    /// Listen address.
    pub listen: SocketAddr,
    /// Files store directory.
    pub data_dir: PathBuf,
    /// Key schedule.
    pub schedule: Schedule,
    /// Audiences.
    pub audiences: Vec<Audience>,
    /// Clients.
    pub clients: Vec<Client>,
    /// Upstream issuers whose tokens may be exchanged.
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Per-client rate limit.
    pub rate_limit: RateLimitConfig,
    /// The audit trail, with `file` resolved (`None`: no file).
    pub audit: AuditConfig,
    /// True when no configuration file was given (the embedded default).
    pub embedded_default: bool,
}

impl Settings {
    /// Loads `path` (or the embedded default when `None`) and applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Settings> {
        let Some(path) = path else {
            let mut settings = Self::from_file(ConfigFile::default(), overrides)?;
            settings.embedded_default = true;
            return Ok(settings);
        };
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let file: ConfigFile =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::validate(file, overrides, base)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and validates TOML text (relative paths are relative to the current directory).
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Settings> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        Self::from_file(file, overrides)
    }

    /// Validates a parsed file.
    pub fn from_file(file: ConfigFile, overrides: &Overrides) -> Result<Settings> {
        Self::validate(file, overrides, Path::new("."))
    }

    fn validate(file: ConfigFile, overrides: &Overrides, base: &Path) -> Result<Settings> {
        let listen_text = overrides
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            Error::Config(format!(
                "listen = {listen_text:?} is not an address like \"127.0.0.1:8080\""
            ))
        })?;
        let explicit_issuer = overrides.issuer.clone().or(file.issuer);
        let issuer_follows_listen = explicit_issuer.is_none();
        let issuer = explicit_issuer.unwrap_or_else(|| format!("http://{listen}"));
        validate_issuer(&issuer)?;

        let audiences = match file.audiences {
            None => vec![Audience {
                name: "convex".into(),
                profile: Profile::ConvexCustomJwt,
            }],
            Some(list) => list
                .into_iter()
                .map(|a| Audience {
                    name: a.name,
                    profile: a.profile.unwrap_or(Profile::ConvexCustomJwt),
                })
                .collect(),
        };
        if audiences.is_empty() {
            return Err(Error::Config("at least one [[audiences]] is needed".into()));
        }
        for (i, a) in audiences.iter().enumerate() {
            if a.name.trim().is_empty() || a.name.trim() != a.name {
                return Err(Error::Config(format!(
                    "audience name {:?} is empty or padded",
                    a.name
                )));
            }
            if audiences[..i].iter().any(|b| b.name == a.name) {
                return Err(Error::Config(format!(
                    "audience {:?} is listed twice",
                    a.name
                )));
            }
        }

        let clients = file
            .clients
            .into_iter()
            .map(|c| client(c, &audiences, base))
            .collect::<Result<Vec<_>>>()?;
        for t in &file.trusted_issuers {
            validate_issuer(&t.issuer)
                .and_then(|()| validate_issuer(&t.jwks_uri))
                .map_err(|e| Error::Config(format!("[[trusted_issuers]] {:?}: {e}", t.issuer)))?;
        }
        if file.rate_limit.burst == 0 || file.rate_limit.per_minute == 0 {
            return Err(Error::Config(
                "[rate_limit] burst and per_minute must be at least 1".into(),
            ));
        }
        let longest = clients.iter().map(|c| c.max_ttl).max().unwrap_or_default();
        let schedule = Schedule {
            algorithm: file.keys.algorithm.unwrap_or(Algorithm::ES256),
            rsa_bits: file.keys.rsa_bits.unwrap_or(2048),
            rotation_period: file
                .keys
                .rotation_period
                .unwrap_or(Duration::from_secs(24 * 3600)),
            jwks_max_age: file.keys.jwks_max_age.unwrap_or(Duration::from_secs(300)),
            max_token_lifetime: longest.max(DEFAULT_TTL),
        };
        schedule.validate()?;
        for a in &audiences {
            a.check_algorithm(schedule.algorithm)?;
        }
        let data_dir: PathBuf = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        Ok(Settings {
            issuer,
            issuer_follows_listen,
            listen,
            data_dir: data_dir.clone(),
            schedule,
            audiences,
            clients,
            trusted_issuers: file.trusted_issuers,
            rate_limit: file.rate_limit,
            audit: AuditConfig {
                file: match file.audit.file {
                    None => Some(data_dir.join("audit.log")),
                    Some(path) if path.as_os_str().is_empty() => None,
                    Some(path) => Some(path),
                },
                ..file.audit
            },
            embedded_default: false,
        })
    }

    /// The audience with this name.
    pub fn audience(&self, name: &str) -> Option<&Audience> {
        self.audiences.iter().find(|a| a.name == name)
    }

    /// `<issuer>/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    /// The JWKS URL for one audience: only keys its profile can parse.
    pub fn audience_jwks_uri(&self, audience: &str) -> String {
        format!("{}/audiences/{audience}/jwks.json", self.issuer)
    }

    /// `<issuer>/oauth/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}

/// Checks that `issuer` is what Convex can match (see [`IssuerUrl`]).
fn validate_issuer(issuer: &str) -> Result<()> {
    IssuerUrl::parse(issuer)
        .map(drop)
        .map_err(|e| Error::Config(e.to_string()))
}

/// Checks a client id: letters, digits and `- _ . @`.
pub fn validate_client_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "client id {id:?}: use letters, digits and - _ . @"
        )))
    }
}

/// The `jwks = [...]` line of a `[[clients]]` block registering `keys` (inline TOML tables of
/// their string members), as `svctoken clients add --jwk-file` prints it.
pub fn jwks_toml_line(keys: &[svctoken_jwks::Jwk]) -> String {
    let tables: Vec<String> = keys
        .iter()
        .map(|jwk| {
            let members: Vec<String> = ["kty", "kid", "use", "alg", "crv", "n", "e", "x", "y"]
                .iter()
                .filter_map(|name| jwk.member(name).map(|v| format!("{name} = {v:?}")))
                .collect();
            format!("{{ {} }}", members.join(", "))
        })
        .collect();
    format!("jwks = [{}]\n", tables.join(", "))
}

/// Reads public keys from a file holding a JWKS (`{"keys": [...]}`) or a single JWK.
pub fn read_jwks_file(path: &Path) -> Result<Vec<svctoken_jwks::Jwk>> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    if let Ok(set) = serde_json::from_str::<svctoken_jwks::Jwks>(&text) {
        return Ok(set.keys);
    }
    serde_json::from_str::<svctoken_jwks::Jwk>(&text)
        .map(|k| vec![k])
        .map_err(|e| Error::Config(format!("{}: not a JWK or a JWKS ({e})", path.display())))
}

fn client_auth(c: &ClientConfig, base: &Path) -> Result<ClientAuth> {
    let keys = match (&c.jwks, &c.jwks_file) {
        (Some(_), Some(_)) => {
            return Err(Error::Config("give jwks or jwks_file, not both".into()));
        }
        (Some(keys), None) => Some(keys.clone()),
        (None, Some(file)) => Some(read_jwks_file(&base.join(file))?),
        (None, None) => None,
    };
    match (&c.secret_sha256, keys) {
        (Some(hash), None) => Ok(ClientAuth::Secret(SecretHash::from_hex(hash)?)),
        (None, Some(mut keys)) => {
            if keys.is_empty() {
                return Err(Error::Config("jwks holds no key".into()));
            }
            for key in &mut keys {
                key.validate()
                    .map_err(|e| Error::Config(format!("a client key: {e}")))?;
                if key.kid.is_none() {
                    key.kid = Some(svctoken_jwks::thumbprint(key)?);
                }
            }
            Ok(ClientAuth::Keys(svctoken_jwks::Jwks { keys }))
        }
        (Some(_), Some(_)) => Err(Error::Config(
            "give a secret_sha256 or public keys (jwks, jwks_file), not both".into(),
        )),
        (None, None) => Err(Error::Config(
            "needs secret_sha256 (svctoken clients add) or public keys (jwks or jwks_file)".into(),
        )),
    }
}

fn client(c: ClientConfig, audiences: &[Audience], base: &Path) -> Result<Client> {
    validate_client_id(&c.id)?;
    let context = |e: Error| Error::Config(format!("client {:?}: {e}", c.id));
    let auth = client_auth(&c, base).map_err(context)?;
    if let Some(bad) = c.act_as.iter().find(|p| p.is_empty()) {
        return Err(Error::Config(format!(
            "client {:?}: act_as pattern {bad:?} is empty",
            c.id
        )));
    }
    let client_audiences = c
        .audiences
        .unwrap_or_else(|| audiences.iter().map(|a| a.name.clone()).collect());
    if let Some(unknown) = client_audiences
        .iter()
        .find(|name| !audiences.iter().any(|a| &a.name == *name))
    {
        return Err(Error::Config(format!(
            "client {:?} names audience {unknown:?}, which no [[audiences]] entry defines",
            c.id
        )));
    }
    if let Some(bad) = c.scopes.iter().find(|s| {
        s.is_empty() || s.contains(|ch: char| ch.is_whitespace() || ch == '"' || ch == '\\')
    }) {
        return Err(Error::Config(format!(
            "client {:?}: scope {bad:?} must be non-empty with no spaces, quotes or backslashes",
            c.id
        )));
    }
    let max_ttl = c.max_ttl.unwrap_or(DEFAULT_TTL);
    if max_ttl < Duration::from_secs(1) || max_ttl > MAX_TTL_LIMIT {
        return Err(Error::Config(format!(
            "client {:?}: max_ttl must be between 1s and 24h",
            c.id
        )));
    }
    check_custom_claims(&c.claims).map_err(|e| context(e.into()))?;
    Ok(Client {
        subject: c.subject.unwrap_or_else(|| format!("svc:{}", c.id)),
        id: c.id,
        auth,
        audiences: client_audiences,
        scopes: c.scopes,
        max_ttl,
        claims: c.claims,
        act_as: c.act_as,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    fn load(text: &str) -> Result<Settings> {
        Settings::from_toml(text, &Overrides::default())
    }

    #[test]
    fn the_documented_example_loads() {
        let text = format!(
            r#"
            issuer = "https://auth.example.com"
            listen = "127.0.0.1:8080"
            data_dir = "./svctoken-data"
            [keys]
            algorithm = "ES256"
            rotation_period = "24h"
            jwks_max_age = "5m"
            [[audiences]]
            name = "convex"
            profile = "convex-custom-jwt"
            [[clients]]
            id = "billing-worker"
            secret_sha256 = "{HASH}"
            subject = "svc:billing-worker"
            audiences = ["convex"]
            scopes = ["billing:write"]
            max_ttl = "10m"
            claims = {{ team = "payments" }}
            "#
        );
        let s = load(&text).expect("valid");
        assert_eq!(s.issuer, "https://auth.example.com");
        assert_eq!(s.schedule.max_token_lifetime, Duration::from_secs(600));
        assert_eq!(s.clients[0].claims["team"], "payments");
        assert_eq!(s.clients[0].max_ttl, Duration::from_secs(600));
    }

    #[test]
    fn key_clients_from_a_file_beside_the_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = svctoken_jwks::SigningKey::generate(Algorithm::EdDSA).expect("key");
        let jwks = serde_json::json!({"keys": [key.public_jwk()]});
        std::fs::write(dir.path().join("worker.jwks.json"), jwks.to_string()).expect("write");
        let config = dir.path().join("svctoken.toml");
        std::fs::write(
            &config,
            "[audit]\nfile = \"\"\n[[clients]]\nid = \"w\"\njwks_file = \"worker.jwks.json\"\nact_as = [\"user:*\"]\n",
        )
        .expect("write");
        let s = Settings::load(Some(&config), &Overrides::default()).expect("valid");
        match &s.clients[0].auth {
            ClientAuth::Keys(set) => assert_eq!(set.keys[0].kid.as_deref(), Some(key.kid())),
            other => panic!("{other:?}"),
        }
        assert!(s.clients[0].may_act_as("user:7"));
        assert!(
            s.audit.file.is_none(),
            "an empty file name turns the file off"
        );
        let both = format!("[[clients]]\nid = \"w\"\nsecret_sha256 = \"{HASH}\"\njwks = []\n");
        assert!(
            load(&both)
                .expect_err("both")
                .to_string()
                .contains("not both")
        );
        let neither = "[[clients]]\nid = \"w\"\n";
        assert!(
            load(neither)
                .expect_err("neither")
                .to_string()
                .contains("needs secret_sha256")
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::load(None, &Overrides::default()).expect("embedded default");
        assert!(s.embedded_default);
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.audiences[0].name, "convex");
        assert_eq!(s.audiences[0].profile, Profile::ConvexCustomJwt);
        assert_eq!(s.schedule, Schedule::default());
        let over = Overrides {
            issuer: Some("https://id.example".into()),
            listen: Some("0.0.0.0:9000".into()),
            data_dir: Some("/tmp/x".into()),
        };
        let s = Settings::from_toml("issuer = \"https://file.example\"", &over).expect("ok");
        assert_eq!(s.issuer, "https://id.example");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn refuses_what_would_break_consumers_with_a_fix() {
        let client =
            |extra: &str| format!("[[clients]]\nid = \"a\"\nsecret_sha256 = \"{HASH}\"\n{extra}");
        for (text, expect) in [
            ("issuer = \"https://a.example/\"".to_owned(), "remove it"),
            ("issuer = \"auth.example\"".to_owned(), "must start with https://"),
            ("[keys]\nalgorithm = \"EdDSA\"".to_owned(), "set [keys] algorithm"),
            (
                "[keys]\nalgorithm = \"ES256\"\n[[audiences]]\nname = \"c\"\nprofile = \"convex-oidc\""
                    .to_owned(),
                "convex-oidc",
            ),
            ("[keys]\nrotation_period = \"1m\"".to_owned(), "rotation_period"),
            ("[keys]\nrotation_period = \"soon\"".to_owned(), "is not a duration"),
            ("colour = \"blue\"".to_owned(), "unknown field"),
            (client("claims = { sub = \"root\" }"), "reserved"),
            (client("claims = { tokenIdentifier = \"x\" }"), "reserved"),
            (client("audiences = [\"nope\"]"), "no [[audiences]] entry"),
            (client("max_ttl = \"48h\""), "max_ttl"),
            (client("scopes = [\"a b\"]"), "scope"),
            ("[[clients]]\nid = \"a\"\nsecret_sha256 = \"xyz\"".to_owned(), "64 hex digits"),
            (format!("{}\n{}", client(""), client("")), "twice"),
            ("listen = \"localhost\"".to_owned(), "not an address"),
        ] {
            let err = match load(&text) {
                Err(e) => e.to_string(),
                Ok(_) => {
                    // Duplicate clients are caught by the registry, not here.
                    match crate::ClientRegistry::new(load(&text).expect("ok").clients) {
                        Err(e) => e.to_string(),
                        Ok(_) => panic!("accepted: {text}"),
                    }
                }
            };
            assert!(err.contains(expect), "{text}\n=> {err}");
        }
    }
}
