//! The token catalogue: client assertions (`private_key_jwt`) and subject tokens (RFC 8693),
//! each with what the issuer must answer. The generic forgeries of [`crate::jose`] for every
//! key, plus what only one context has: replays, the assertion's audience and lifetime, the
//! subject rules, `act` chains, trusted issuers.

use serde_json::{Value, json};
use svctoken_jwks::{MAX_NUMERIC_DATE, SigningKey};
use svctoken_tests::forge::{header_of, signed, signed_text};

use crate::jose::{self, Forged, Target, splice_first};
use crate::suite::Expect;
use crate::world::{
    UPSTREAM_AUDIENCE, WORKER, assertion_claims, fresh_jti, keys, now, subject_claims,
};

/// Where a catalogue token is presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    /// As `client_assertion` authenticating `client` (the key client whose keys verify it),
    /// with `client_id` sent when `client_id` is set.
    Assertion {
        /// The client whose keys the issuer verifies it with.
        client: &'static str,
        /// The `client_id` parameter sent with it.
        client_id: Option<String>,
    },
    /// As `subject_token` of a token exchange by `worker`.
    Subject,
}

/// A catalogue token, where it goes, and the answer it must get.
#[derive(Clone, Debug)]
pub(crate) struct TokenCase {
    /// What it tries.
    pub(crate) name: String,
    /// The token.
    pub(crate) token: String,
    /// Where it is presented.
    pub(crate) context: Context,
    /// The answer.
    pub(crate) expect: Expect,
}

const ASSERTION_REFUSED: Expect = Expect::Refused(401, "invalid_client");
const SUBJECT_REFUSED: Expect = Expect::Refused(400, "invalid_request");
const NOT_ALLOWED: Expect = Expect::Refused(400, "unauthorized_client");

/// An assertion for `client`, sent with `client_id` = `client`.
fn assertion(client: &'static str, name: &str, token: String, expect: Expect) -> TokenCase {
    TokenCase {
        name: format!("assertion for {client}: {name}"),
        token,
        context: Context::Assertion {
            client,
            client_id: Some(client.to_owned()),
        },
        expect,
    }
}

impl TokenCase {
    /// The same assertion sent with `client_id` (none: the assertion's `sub` names the client).
    fn client_id(mut self, id: Option<&str>) -> Self {
        if let Context::Assertion { client_id, .. } = &mut self.context {
            *client_id = id.map(str::to_owned);
        }
        self
    }
}

fn subject(label: &str, name: &str, token: String, expect: Expect) -> TokenCase {
    TokenCase {
        name: format!("subject token ({label}): {name}"),
        token,
        context: Context::Subject,
        expect,
    }
}

fn from_family(
    cases: &mut Vec<TokenCase>,
    forged: Vec<Forged>,
    make: impl Fn(&str, String) -> TokenCase,
) {
    cases.extend(forged.into_iter().map(|f| make(&f.name, f.token)));
}

/// Every client assertion case, for the issuer at `issuer_url`, in the order they must be
/// sent (replays follow the tokens they replay).
#[rustfmt::skip]
pub(crate) fn assertions(issuer_url: &str) -> Vec<TokenCase> {
    let k = keys();
    let claims = |client: &'static str| {
        let url = issuer_url.to_owned();
        move || assertion_claims(client, &url)
    };
    let (claims_es, claims_rs, claims_ed) = (claims("es"), claims("rs"), claims("ed"));
    let targets: [(&'static str, Target<'_>); 3] = [
        ("es", Target { key: &k.es, claims: &claims_es, foreign: vec![&k.rs, &k.stranger_es, &k.ed] }),
        ("rs", Target { key: &k.rs, claims: &claims_rs, foreign: vec![&k.es, &k.stranger_rs, &k.ed] }),
        ("ed", Target { key: &k.ed, claims: &claims_ed, foreign: vec![&k.rs, &k.stranger_ed, &k.es] }),
    ];
    let es = &targets[0].1;
    let (first_es, first_rs) = (es.honest(), targets[1].1.honest());
    let used_jti = svctoken_jwks::dangerous::decode_unverified(&first_es).expect("honest").1["jti"].clone();
    let now = now();
    let refused = |name: &str, token: String| assertion("es", name, token, ASSERTION_REFUSED);

    // Controls first (every refusal below is the attack's doing), then replays of their jtis.
    let mut out = vec![
        assertion("es", "honest (control)", first_es.clone(), Expect::Issued),
        assertion("rs", "honest (control)", first_rs.clone(), Expect::Issued),
        assertion("ed", "honest (control)", targets[2].1.honest(), Expect::Issued),
        assertion("es", "honest, no client_id (control)", es.honest(), Expect::Issued).client_id(None),
        assertion("es", "jti of 256 bytes (control)", es.set("jti", json!(format!("{:j<256}", fresh_jti()))), Expect::Issued),
        refused("replay of a used assertion", first_es.clone()),
        assertion("rs", "replay of a used assertion", first_rs, ASSERTION_REFUSED),
        refused("replay without client_id", first_es).client_id(None),
        refused("a new assertion reusing a used jti", es.set("jti", used_jti)),
    ];

    // Every generic forgery, for each key client.
    for (client, target) in &targets {
        from_family(&mut out, jose::all(target), |name, token| assertion(client, name, token, ASSERTION_REFUSED));
    }

    // What only an assertion has: its audience is the issuer identifier as one string, it
    // lives at most five minutes, it has a usable jti, iss = sub = the client.
    out.extend([
        refused("aud an array holding the issuer", es.set("aud", json!([issuer_url]))),
        refused("aud an array holding the issuer and another", es.set("aud", json!([issuer_url, "https://other.example"]))),
        refused("aud the token endpoint URL", es.set("aud", json!(format!("{issuer_url}/oauth/token")))),
        refused("aud the issuer with a trailing slash", es.set("aud", json!(format!("{issuer_url}/")))),
        refused("aud the issuer with a query", es.set("aud", json!(format!("{issuer_url}?x=1")))),
        refused("aud the issuer with a trailing space", es.set("aud", json!(format!("{issuer_url} ")))),
        refused("aud the issuer with its scheme in upper case", es.set("aud", json!(issuer_url.replacen("http", "HTTP", 1)))),
        refused("aud a token audience of this issuer (convex)", es.set("aud", json!("convex"))),
        refused("exp an hour ahead (longer than 5 minutes)", es.set("exp", json!(now + 3600))),
        refused("exp 20 s past the 5 minute limit", es.set("exp", json!(now + 320))),
        refused("exp the last second of the year 9999", es.set("exp", json!(MAX_NUMERIC_DATE))),
        refused("jti missing", es.without(&["jti"])),
        refused("jti empty", es.set("jti", json!(""))),
        refused("jti of 257 bytes", es.set("jti", json!("j".repeat(257)))),
        refused("iss another client (rs), sub es", es.set("iss", json!("rs"))),
        refused("sub missing", es.without(&["sub"])),
        refused("sub another client (rs)", es.set("sub", json!("rs"))),
        refused("no client_id, iss = sub another key client (rs), signed by es", es.set_all(&[("iss", json!("rs")), ("sub", json!("rs"))])).client_id(None),
        refused("no client_id, iss = sub a secret client", es.set_all(&[("iss", json!(WORKER)), ("sub", json!(WORKER))])).client_id(None),
        refused("no client_id, iss = sub an unknown client", es.set_all(&[("iss", json!("nobody")), ("sub", json!("nobody"))])).client_id(None),
        refused("no client_id, sub missing (iss names es)", es.without(&["sub"])).client_id(None),
        refused("no client_id, neither sub nor iss", es.without(&["sub", "iss"])).client_id(None),
        refused("client_id another key client", es.honest()).client_id(Some("rs")),
        refused("client_id in upper case", es.honest()).client_id(Some("ES")),
        refused("client_id unknown", es.honest()).client_id(Some("nobody")),
    ]);
    out
}

/// A delegation chain `depth` actors deep: `{"sub": "svc:a0", "act": {"sub": "svc:a1", ...}}`.
fn chain(depth: usize) -> Value {
    (0..depth).rev().fold(Value::Null, |inner, i| {
        let mut actor = json!({"sub": format!("svc:a{i}")});
        if !inner.is_null() {
            actor["act"] = inner;
        }
        actor
    })
}

/// Every subject token case, for the upstream at `upstream_url`; `minted` is a token of the
/// issuer itself (not a trusted issuer of its own).
#[rustfmt::skip]
pub(crate) fn subject_tokens(upstream_url: &str, minted: String) -> Vec<TokenCase> {
    let k = keys();
    let url = upstream_url.to_owned();
    let claims = move || subject_claims(&url);
    let targets: [(&str, Target<'_>); 3] = [
        ("RS256", Target { key: &k.up_rs, claims: &claims, foreign: vec![&k.es, &k.stranger_rs, &k.rs] }),
        ("ES256", Target { key: &k.up_es, claims: &claims, foreign: vec![&k.rs, &k.stranger_es, &k.ed] }),
        ("EdDSA", Target { key: &k.up_ed, claims: &claims, foreign: vec![&k.es, &k.stranger_ed, &k.ed] }),
    ];
    let up = &targets[0].1;
    let issued = |name: &str, token: String| subject("RS256", name, token, Expect::Issued);
    let refused = |name: &str, token: String| subject("RS256", name, token, SUBJECT_REFUSED);
    let not_allowed = |name: &str, token: String| subject("RS256", name, token, NOT_ALLOWED);
    let signed_as = |key: &SigningKey, kid: &str, iss: &str| {
        let mut header = header_of(key);
        header["kid"] = json!(kid);
        signed(key, &header, &up.set_claims(&[("iss", json!(iss))]))
    };
    let reused = up.honest();

    let mut out: Vec<TokenCase> = targets.iter().map(|(label, t)| subject(label, "honest (control)", t.honest(), Expect::Issued)).collect();
    out.extend([
        issued("honest, first use (control)", reused.clone()),
        issued("honest, used again: no replay rule for subject tokens (control)", reused),
        issued("an actor already (control)", up.set("act", json!({"sub": "svc:frontend"}))),
        issued("aud an array holding ours and another (control)", up.set("aud", json!([UPSTREAM_AUDIENCE, "other"]))),
        issued("sub of exactly 256 bytes (control)", up.set("sub", json!(format!("user:{}", "a".repeat(251))))),
        issued("sub user:* is a user named * (control)", up.set("sub", json!("user:*"))),
        issued("exp the last second of the year 9999 (control)", up.set("exp", json!(MAX_NUMERIC_DATE))),
    ]);

    // Every generic forgery, for each upstream key.
    for (label, target) in &targets {
        from_family(&mut out, jose::all(target), |name, token| subject(label, name, token, SUBJECT_REFUSED));
    }

    out.extend([
        // The subject rules.
        refused("sub with a NUL", up.set("sub", json!("user:4\u{0}2"))),
        refused("sub with a BEL", up.set("sub", json!("user:\u{7}42"))),
        refused("sub with a line break", up.set("sub", json!("user:42\nuser:1"))),
        refused("sub with DEL", up.set("sub", json!("user:42\u{7f}"))),
        refused("sub with a C1 control (NEL)", up.set("sub", json!("user:42\u{85}"))),
        refused("sub with a right-to-left override", up.set("sub", json!("user:\u{202e}24"))),
        refused("sub with a left-to-right embedding", up.set("sub", json!("user:\u{202a}42"))),
        refused("sub with a right-to-left isolate", up.set("sub", json!("user:\u{2067}42\u{2069}"))),
        refused("sub with a right-to-left mark", up.set("sub", json!("user:42\u{200f}"))),
        refused("sub empty", up.set("sub", json!(""))),
        refused("sub of 257 bytes", up.set("sub", json!(format!("user:{}", "a".repeat(252))))),
        refused("sub of 257 bytes in 131 characters", up.set("sub", json!(format!("user:{}", "é".repeat(126))))),
        refused("sub missing", up.without(&["sub"])),
        // act_as.
        not_allowed("sub outside act_as", up.set("sub", json!("admin:1"))),
        not_allowed("sub a bare wildcard", up.set("sub", json!("*"))),
        not_allowed("sub sharing act_as's prefix only as text", up.set("sub", json!("users:1"))),
        not_allowed("sub in upper case", up.set("sub", json!("USER:42"))),
        not_allowed("sub the client's own subject", up.set("sub", json!("svc:worker"))),
        // act: an object chain of valid subjects, with room for one more actor.
        refused("act a string", up.set("act", json!("svc:frontend"))),
        refused("act a number", up.set("act", json!(5))),
        refused("act an array", up.set("act", json!([{"sub": "svc:frontend"}]))),
        refused("act an empty object", up.set("act", json!({}))),
        refused("act null", up.set("act", Value::Null)),
        refused("act true", up.set("act", json!(true))),
        refused("act with a numeric sub", up.set("act", json!({"sub": 5}))),
        refused("act with an empty sub", up.set("act", json!({"sub": ""}))),
        refused("act with a NUL in its sub", up.set("act", json!({"sub": "svc:\u{0}x"}))),
        refused("act with a right-to-left override in its sub", up.set("act", json!({"sub": "svc:\u{202e}x"}))),
        refused("act with a sub of 257 bytes", up.set("act", json!({"sub": "s".repeat(257)}))),
        refused("act whose act is a string", up.set("act", json!({"sub": "svc:a", "act": "svc:b"}))),
        refused("act whose act is empty", up.set("act", json!({"sub": "svc:a", "act": {}}))),
        refused("act chain 4 deep (no room for the client)", up.set("act", chain(4))),
        refused("act chain 5 deep", up.set("act", chain(5))),
        refused("act chain 50 deep", up.set("act", chain(50))),
        refused("act's sub twice", act_sub_twice(up)),
        // Who signed it: only the trusted issuer's keys, for its own iss.
        refused("an untrusted issuer", signed_as(&k.stranger_rs, k.stranger_rs.kid(), "https://attacker.example")),
        refused("an untrusted issuer that copied the trusted kid", signed_as(&k.stranger_rs, k.up_rs.kid(), "https://attacker.example")),
        refused("signed by the client (es) instead of the trusted issuer", signed_as(&k.es, k.es.kid(), upstream_url)),
        refused("signed by the client (rs) under the trusted kid", signed_as(&k.rs, k.up_rs.kid(), upstream_url)),
        refused("the trusted iss with a trailing slash", up.set("iss", json!(format!("{upstream_url}/")))),
        refused("a token this issuer minted", minted),
        refused("aud an audience of this issuer (convex)", up.set("aud", json!("convex"))),
        refused("aud an array without ours", up.set("aud", json!(["other"]))),
    ]);
    out
}

/// An honest upstream token whose `act` object has `sub` twice (a string each time).
fn act_sub_twice(up: &Target<'_>) -> String {
    let claims = (up.claims)().to_string();
    let text = splice_first(
        &claims,
        "act",
        r#"{"sub":"svc:frontend","sub":"svc:admin"}"#,
    );
    signed_text(up.key, &header_of(up.key).to_string(), &text)
}
