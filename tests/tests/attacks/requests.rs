//! Attacks on the token request itself: scope, audience and subject escalation, doubled or
//! conflicting client authentication, parameters in the query string, content types, Basic
//! header tricks, grants, body and header sizes, NUL bytes in every parameter.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use svctoken_mint::oauth::{
    ACCESS_TOKEN_TYPE, CLIENT_ASSERTION_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE,
};
use svctoken_tests::harness::CLIENT_SECRET;
use svctoken_tests::raw_http::RawRequest;

use crate::suite::{Case, Expect};
use crate::world::{OTHER_ID, OTHER_SECRET, SPACEY_ID, SPACEY_SECRET, WORKER};

const FORM: &str = "application/x-www-form-urlencoded";
const TOKEN_PATH: &str = "/oauth/token";
const CC: &str = "grant_type=client_credentials";
const INVALID_REQUEST: Expect = Expect::Refused(400, "invalid_request");
const INVALID_CLIENT: Expect = Expect::Refused(401, "invalid_client");
const INVALID_SCOPE: Expect = Expect::Refused(400, "invalid_scope");
const INVALID_TARGET: Expect = Expect::Refused(400, "invalid_target");
const UNAUTHORIZED: Expect = Expect::Refused(400, "unauthorized_client");
const UNSUPPORTED_GRANT: Expect = Expect::Refused(400, "unsupported_grant_type");

/// A form POST to the token endpoint.
pub(crate) fn form(body: impl Into<Vec<u8>>) -> RawRequest {
    RawRequest::post(TOKEN_PATH, body).header("Content-Type", FORM)
}

/// `Authorization: Basic` for `id` and `secret`, taken as they are (not form-encoded).
pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// The form-encoding of `value` (RFC 6749 appendix B).
pub(crate) fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A form as the worker client authenticated with Basic.
fn as_worker(body: impl Into<Vec<u8>>) -> RawRequest {
    form(body).header("Authorization", basic(WORKER, CLIENT_SECRET))
}

fn case(name: impl Into<String>, request: RawRequest, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
        secrets: Vec::new(),
    }
}

/// A case whose request carries the credentials `secrets` (to look for in logs).
fn with_secrets(mut case: Case, secrets: &[&str]) -> Case {
    case.secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
    case
}

/// Every request attack. `assertion()` makes a fresh honest assertion for client `es`;
/// `subject_token()` a fresh honest user token of the trusted upstream.
pub(crate) fn cases(
    assertion: &dyn Fn() -> String,
    subject_token: &dyn Fn() -> String,
) -> Vec<Case> {
    [
        scope_and_audience(),
        subjects(),
        client_authentication(assertion),
        query_strings(assertion),
        content_types(),
        basic_headers(),
        grants(subject_token),
        sizes(),
        nul_bytes(assertion, subject_token),
        http_layer(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[rustfmt::skip]
fn scope_and_audience() -> Vec<Case> {
    let many_granted = vec!["jobs:run"; 2000].join(" ");
    let many_unknown: Vec<String> = (0..2000).map(|i| format!("s{i}")).collect();
    vec![
        case("scope not granted", as_worker(format!("{CC}&audience=convex&scope=admin")), INVALID_SCOPE),
        case("scope granted plus one not", as_worker(format!("{CC}&audience=convex&scope=jobs:run+admin")), INVALID_SCOPE),
        case("scope a wildcard", as_worker(format!("{CC}&audience=convex&scope=jobs:*")), INVALID_SCOPE),
        case("scope in upper case", as_worker(format!("{CC}&audience=convex&scope=JOBS:RUN")), INVALID_SCOPE),
        case("scopes separated by a tab", as_worker(format!("{CC}&audience=convex&scope=jobs:run%09jobs:read")), INVALID_SCOPE),
        case("scopes separated by a comma", as_worker(format!("{CC}&audience=convex&scope=jobs:run,jobs:read")), INVALID_SCOPE),
        case("2000 unknown scopes", as_worker(format!("{CC}&audience=convex&scope={}", many_unknown.join("+"))), INVALID_SCOPE),
        case("a granted scope 2000 times (collapses; control)", as_worker(format!("{CC}&audience=convex&scope={}", enc(&many_granted))), Expect::Issued),
        case("scope parameter twice", as_worker(format!("{CC}&audience=convex&scope=jobs:run&scope=admin")), INVALID_REQUEST),
        case("another client's audience", as_worker(format!("{CC}&audience=billing")), INVALID_TARGET),
        case("an unknown audience", as_worker(format!("{CC}&audience=elsewhere")), INVALID_TARGET),
        case("audience in upper case", as_worker(format!("{CC}&audience=CONVEX")), INVALID_TARGET),
        case("audience with a trailing space", as_worker(format!("{CC}&audience=convex+")), INVALID_TARGET),
        case("two audiences in one parameter", as_worker(format!("{CC}&audience=convex+reports")), INVALID_TARGET),
        case("audiences comma-separated", as_worker(format!("{CC}&audience=convex,reports")), INVALID_TARGET),
        case("audience a wildcard", as_worker(format!("{CC}&audience=*")), INVALID_TARGET),
        case("audience the issuer's own URL path", as_worker(format!("{CC}&audience=..%2Fbilling")), INVALID_TARGET),
        case("audience parameter twice", as_worker(format!("{CC}&audience=convex&audience=billing")), INVALID_REQUEST),
        case("audience empty, client has two", as_worker(format!("{CC}&audience=")), INVALID_REQUEST),
        case("audience resource-indicator style", as_worker(format!("{CC}&resource=billing")), INVALID_REQUEST),
        case("an allowed audience (control)", as_worker(format!("{CC}&audience=reports&scope=jobs:read")), Expect::Issued),
    ]
}

#[rustfmt::skip]
fn subjects() -> Vec<Case> {
    let cc = |subject: &str| as_worker(format!("{CC}&audience=convex&subject={}", enc(subject)));
    let mut out = vec![
        case("subject allowed by act_as (control)", cc("user:42"), Expect::Issued),
        case("subject user:* is a user named * (control)", cc("user:*"), Expect::Issued),
        case("subject empty is no subject (control)", as_worker(format!("{CC}&audience=convex&subject=")), Expect::Issued),
    ];
    for (name, subject) in [
        ("subject outside act_as", "admin:1"),
        ("subject a bare wildcard", "*"),
        ("subject a wildcard outside act_as", "admin:*"),
        ("subject sharing act_as's prefix only as text", "users:1"),
        ("subject in upper case", "USER:42"),
        ("subject another service", "svc:other"),
        ("subject with a leading space", " user:42"),
        ("subject the client's own subject", "svc:worker"),
    ] {
        out.push(case(name, cc(subject), UNAUTHORIZED));
    }
    for (name, subject) in [
        ("subject with a NUL", "user:42\u{0}"),
        ("subject with a line break", "user:42\nadmin:1"),
        ("subject with a C1 control", "user:\u{9b}42"),
        ("subject with a right-to-left override", "user:\u{202e}24"),
        ("subject with a first-strong isolate", "user:\u{2068}42"),
        ("subject with a left-to-right mark", "user:\u{200e}42"),
    ] {
        out.push(case(name, cc(subject), INVALID_REQUEST));
    }
    out.push(case("subject of 257 bytes", cc(&format!("user:{}", "a".repeat(252))), INVALID_REQUEST));
    out.push(case("subject for a client without act_as", form(format!("{CC}&subject=user:42")).header("Authorization", basic(OTHER_ID, OTHER_SECRET)), UNAUTHORIZED));
    out.push(case("subject parameter twice", as_worker(format!("{CC}&audience=convex&subject=user:1&subject=admin:1")), INVALID_REQUEST));
    out
}

#[rustfmt::skip]
fn client_authentication(assertion: &dyn Fn() -> String) -> Vec<Case> {
    let a = assertion();
    let assertion_params = |token: &str| {
        format!(
            "client_assertion_type={}&client_assertion={token}",
            enc(CLIENT_ASSERTION_TYPE)
        )
    };
    let worker = basic(WORKER, CLIENT_SECRET);
    let wrong = basic(WORKER, "sts_wrong-secret-wrong-secret-wrong");
    vec![
        with_secrets(case("Basic and client_secret in the body", as_worker(format!("{CC}&audience=convex&client_secret={}", enc(CLIENT_SECRET))), INVALID_REQUEST), &[CLIENT_SECRET]),
        case("Basic and a different client_id in the body", as_worker(format!("{CC}&client_id={OTHER_ID}")), INVALID_REQUEST),
        case("Basic and the same client_id in the body (control)", as_worker(format!("{CC}&audience=convex&client_id={WORKER}")), Expect::Issued),
        with_secrets(case("Basic and a client assertion", as_worker(format!("{CC}&{}", assertion_params(&a))), INVALID_REQUEST), &[&a]),
        {
            let a = assertion();
            with_secrets(case("client_secret_post and a client assertion", form(format!("{CC}&client_id=es&client_secret={}&{}", enc(CLIENT_SECRET), assertion_params(&a))), INVALID_REQUEST), &[&a])
        },
        case("two Basic headers, both right", as_worker(format!("{CC}&audience=convex")).header("Authorization", worker.clone()), INVALID_REQUEST),
        case("two Basic headers, the second wrong", as_worker(format!("{CC}&audience=convex")).header("Authorization", wrong.clone()), INVALID_REQUEST),
        case("two Basic headers, the first wrong", form(format!("{CC}&audience=convex")).header("Authorization", wrong).header("Authorization", worker.clone()), INVALID_REQUEST),
        case("two Basic headers, two clients", form(format!("{CC}&audience=billing")).header("Authorization", basic(OTHER_ID, OTHER_SECRET)).header("Authorization", worker), INVALID_REQUEST),
        case("Basic for one client, body secret for another", form(format!("{CC}&client_id={WORKER}&client_secret={}", enc(CLIENT_SECRET))).header("Authorization", basic(OTHER_ID, OTHER_SECRET)), INVALID_REQUEST),
        case("client_id with another client's secret", form(format!("{CC}&client_id={WORKER}&client_secret={}", enc(OTHER_SECRET))), INVALID_CLIENT),
        case("client_id and secret swapped", form(format!("{CC}&client_id={}&client_secret={WORKER}", enc(CLIENT_SECRET))), INVALID_CLIENT),
        case("a key client sending a secret", form(format!("{CC}&client_id=es&client_secret={}", enc(CLIENT_SECRET))), INVALID_CLIENT),
        {
            let a = assertion();
            with_secrets(case("a secret client's id with a key client's assertion", form(format!("{CC}&client_id={WORKER}&{}", assertion_params(&a))), INVALID_CLIENT), &[&a])
        },
        {
            let a = assertion();
            with_secrets(case("client_assertion without its type", form(format!("{CC}&client_id=es&client_assertion={a}")), INVALID_CLIENT), &[&a])
        },
        {
            let a = assertion();
            with_secrets(case("client_assertion_type of SAML", form(format!("{CC}&client_id=es&client_assertion_type={}&client_assertion={a}", enc("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"))), INVALID_CLIENT), &[&a])
        },
        case("client_assertion_type without an assertion", form(format!("{CC}&client_id=es&client_assertion_type={}", enc(CLIENT_ASSERTION_TYPE))), INVALID_CLIENT),
        case("no client authentication", form(format!("{CC}&audience=convex")), INVALID_CLIENT),
        case("client_id alone", form(format!("{CC}&client_id={WORKER}")), INVALID_CLIENT),
        case("client_secret alone", form(format!("{CC}&client_secret={}", enc(CLIENT_SECRET))), INVALID_CLIENT),
        case("client_secret_post (control)", form(format!("{CC}&audience=convex&client_id={WORKER}&client_secret={}", enc(CLIENT_SECRET))), Expect::Issued),
    ]
}

#[rustfmt::skip]
fn query_strings(assertion: &dyn Fn() -> String) -> Vec<Case> {
    let at = |query: &str, body: String| {
        let mut request = form(body);
        request.path = format!("{TOKEN_PATH}?{query}");
        request
    };
    let a = assertion();
    vec![
        case("client_secret in the query, Basic in the header", at(&format!("client_secret={}", enc(CLIENT_SECRET)), format!("{CC}&audience=convex")).header("Authorization", basic(WORKER, CLIENT_SECRET)), INVALID_REQUEST),
        case("client credentials only in the query", at(&format!("client_id={WORKER}&client_secret={}", enc(CLIENT_SECRET)), format!("{CC}&audience=convex")), INVALID_REQUEST),
        case("client_secret_post in the query with the grant", at(&format!("{CC}&audience=convex&client_id={WORKER}&client_secret={}", enc(CLIENT_SECRET)), String::new()), INVALID_REQUEST),
        with_secrets(case("client assertion in the query", at(&format!("client_assertion_type={}&client_assertion={a}", enc(CLIENT_ASSERTION_TYPE)), CC.to_owned()), INVALID_REQUEST), &[&a]),
        case("grant_type only in the query", at(CC, "audience=convex".to_owned()).header("Authorization", basic(WORKER, CLIENT_SECRET)), INVALID_REQUEST),
        case("audience in the query", at("audience=billing", format!("{CC}&audience=convex")).header("Authorization", basic(WORKER, CLIENT_SECRET)), INVALID_REQUEST),
        case("an empty query", at("", format!("{CC}&audience=convex")).header("Authorization", basic(WORKER, CLIENT_SECRET)), INVALID_REQUEST),
    ]
}

#[rustfmt::skip]
fn content_types() -> Vec<Case> {
    let body = format!("{CC}&audience=convex");
    let typed = |content_type: &[u8], body: &[u8]| {
        RawRequest::post(TOKEN_PATH, body.to_vec())
            .header("Content-Type", content_type.to_vec())
            .header("Authorization", basic(WORKER, CLIENT_SECRET))
    };
    let utf16: Vec<u8> = body.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let multipart = "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x\r\nContent-Disposition: form-data; name=\"audience\"\r\n\r\nconvex\r\n--x--\r\n";
    vec![
        case("JSON", typed(b"application/json", br#"{"grant_type":"client_credentials","audience":"convex"}"#), INVALID_REQUEST),
        case("a form body labelled JSON", typed(b"application/json", body.as_bytes()), INVALID_REQUEST),
        case("multipart", typed(b"multipart/form-data; boundary=x", multipart.as_bytes()), INVALID_REQUEST),
        case("multipart whose boundary names the form type", typed(b"multipart/form-data; boundary=application/x-www-form-urlencoded", multipart.as_bytes()), INVALID_REQUEST),
        case("text/plain", typed(b"text/plain", body.as_bytes()), INVALID_REQUEST),
        case("no content type", RawRequest::post(TOKEN_PATH, body.clone()).header("Authorization", basic(WORKER, CLIENT_SECRET)), INVALID_REQUEST),
        case("a type with the form type as prefix", typed(b"application/x-www-form-urlencodedx", body.as_bytes()), INVALID_REQUEST),
        case("two types in one header", typed(b"application/x-www-form-urlencoded, application/json", body.as_bytes()), INVALID_REQUEST),
        case("two Content-Type headers, JSON first", typed(b"application/json", body.as_bytes()).header("Content-Type", FORM), INVALID_REQUEST),
        case("two Content-Type headers, the form first", typed(FORM.as_bytes(), body.as_bytes()).header("Content-Type", "application/json"), INVALID_REQUEST),
        case("charset UTF-16 with a UTF-16 body", typed(b"application/x-www-form-urlencoded; charset=UTF-16", &utf16), INVALID_REQUEST),
        case("charset ISO-8859-1 with a Latin-1 byte", typed(b"application/x-www-form-urlencoded; charset=ISO-8859-1", &[body.as_bytes(), b"&scope=caf", &[0xe9]].concat()), INVALID_REQUEST),
        case("charset UTF-8 (control)", typed(b"application/x-www-form-urlencoded; charset=UTF-8", body.as_bytes()), Expect::Issued),
        case("the form type in upper case (control)", typed(b"APPLICATION/X-WWW-FORM-URLENCODED", body.as_bytes()), Expect::Issued),
        case("charset ISO-8859-1 with an ASCII body (control)", typed(b"application/x-www-form-urlencoded;charset=ISO-8859-1", body.as_bytes()), Expect::Issued),
    ]
}

#[rustfmt::skip]
fn basic_headers() -> Vec<Case> {
    let raw = |value: Vec<u8>| form(format!("{CC}&audience=convex")).header("Authorization", value);
    let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
    let spacey = |value: String| form(CC).header("Authorization", value);
    let creds = format!("{WORKER}:{CLIENT_SECRET}");
    let other_creds = format!("{OTHER_ID}:{OTHER_SECRET}");
    // An encoding whose base64 needs padding, and one that holds + or / (URL-safe differs).
    assert_ne!(other_creds.len() % 3, 0, "padding needed");
    let url_safe_differs = (0..64)
        .map(|n| format!("{WORKER}:{CLIENT_SECRET}{}", "?".repeat(n)))
        .find(|c| STANDARD.encode(c) != URL_SAFE.encode(c))
        .expect("some credentials encode with + or /");
    vec![
        case("Basic: %3A in the id makes another id", raw(format!("Basic {}", b64(format!("{WORKER}%3Ax:{CLIENT_SECRET}").as_bytes())).into_bytes()), INVALID_CLIENT),
        case("Basic: the id percent-encoded (control)", raw(format!("Basic {}", b64(format!("%77orker:{CLIENT_SECRET}").as_bytes())).into_bytes()), Expect::Issued),
        case("Basic: the secret fully percent-encoded (control)", raw(format!("Basic {}", b64(format!("{WORKER}:{}", CLIENT_SECRET.bytes().map(|b| format!("%{b:02X}")).collect::<String>()).as_bytes())).into_bytes()), Expect::Issued),
        case("Basic: a secret with a space and a plus, form-encoded (control)", spacey(basic(SPACEY_ID, &enc(SPACEY_SECRET))), Expect::Issued),
        case("Basic: the same secret not form-encoded (+ reads as a space)", spacey(basic(SPACEY_ID, SPACEY_SECRET)), INVALID_CLIENT),
        case("Basic: the same secret with %20 for the space (control)", spacey(basic(SPACEY_ID, &enc(SPACEY_SECRET).replace('+', "%20"))), Expect::Issued),
        case("Basic: the id in upper case", raw(basic("WORKER", CLIENT_SECRET).into_bytes()), INVALID_CLIENT),
        case("Basic: not UTF-8 after decoding", raw(format!("Basic {}", b64(&[0xff, b':', 0xfe])).into_bytes()), INVALID_CLIENT),
        case("Basic: the secret with a Latin-1 byte", raw(format!("Basic {}", b64(&[creds.as_bytes(), &[0xe9]].concat())).into_bytes()), INVALID_CLIENT),
        case("Basic: percent-encoded bytes that are not UTF-8", raw(basic(WORKER, "%FF%FE").into_bytes()), INVALID_CLIENT),
        case("Basic: no colon", raw(format!("Basic {}", b64(format!("{WORKER}{CLIENT_SECRET}").as_bytes())).into_bytes()), INVALID_CLIENT),
        case("Basic: empty id", raw(basic("", CLIENT_SECRET).into_bytes()), INVALID_CLIENT),
        case("Basic: empty secret", raw(basic(WORKER, "").into_bytes()), INVALID_CLIENT),
        case("Basic: empty credentials", raw(format!("Basic {}", b64(b":")).into_bytes()), INVALID_CLIENT),
        case("Basic: the secret with a NUL appended", raw(basic(WORKER, &format!("{CLIENT_SECRET}\u{0}")).into_bytes()), INVALID_CLIENT),
        case("Basic: the secret with a space appended", raw(basic(WORKER, &format!("{CLIENT_SECRET} ")).into_bytes()), INVALID_CLIENT),
        case("Basic: the secret without its sts_ prefix", raw(basic(WORKER, CLIENT_SECRET.trim_start_matches("sts_")).into_bytes()), INVALID_CLIENT),
        case("Basic: the scheme in lower case (control)", raw(format!("basic {}", b64(creds.as_bytes())).into_bytes()), Expect::Issued),
        case("Basic: the scheme in upper case (control)", raw(format!("BASIC {}", b64(creds.as_bytes())).into_bytes()), Expect::Issued),
        case("Basic: three spaces after the scheme (control)", raw(format!("Basic   {}", b64(creds.as_bytes())).into_bytes()), Expect::Issued),
        case("Basic: a tab after the scheme", raw(format!("Basic\t{}", b64(creds.as_bytes())).into_bytes()), INVALID_CLIENT),
        case("Basic: no space after the scheme", raw(format!("Basic{}", b64(creds.as_bytes())).into_bytes()), INVALID_CLIENT),
        case("Basic: base64 without its padding", form(CC).header("Authorization", format!("Basic {}", STANDARD_NO_PAD.encode(&other_creds))), INVALID_CLIENT),
        case("Basic: base64url instead of base64", raw(format!("Basic {}", URL_SAFE.encode(&url_safe_differs)).into_bytes()), INVALID_CLIENT),
        case("Basic: a second token after the credentials", raw(format!("Basic {} extra", b64(creds.as_bytes())).into_bytes()), INVALID_CLIENT),
        case("Basic: only the scheme", raw(b"Basic".to_vec()), INVALID_CLIENT),
        case("Basic: only the scheme and a space", raw(b"Basic ".to_vec()), INVALID_CLIENT),
        case("Bearer scheme with the secret", raw(format!("Bearer {CLIENT_SECRET}").into_bytes()), INVALID_CLIENT),
        case("Digest scheme", raw(b"Digest username=\"worker\"".to_vec()), INVALID_CLIENT),
        case("Basic: a raw non-ASCII byte in the header", raw([b"Basic ".as_slice(), &[0xe9], b64(creds.as_bytes()).as_bytes(),].concat()), INVALID_CLIENT),
        case("Basic: id and secret swapped", raw(basic(CLIENT_SECRET, WORKER).into_bytes()), INVALID_CLIENT),
        case("Basic: 60 KiB of credentials", raw(basic(WORKER, &"s".repeat(60 * 1024)).into_bytes()), INVALID_CLIENT),
    ]
}

#[rustfmt::skip]
fn grants(subject_token: &dyn Fn() -> String) -> Vec<Case> {
    let mut out: Vec<Case> = [
        "password",
        "authorization_code",
        "refresh_token",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "CLIENT_CREDENTIALS",
        "client_credentials ",
        " client_credentials",
        "client-credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange:x",
    ]
    .into_iter()
    .map(|grant| {
        case(format!("grant_type {grant:?}"), as_worker(format!("grant_type={}&audience=convex", enc(grant))), UNSUPPORTED_GRANT)
    })
    .collect();
    let exchange = |extra: &str| {
        let token = subject_token();
        let request = as_worker(format!(
            "grant_type={}&audience=convex&subject_token={token}{extra}",
            enc(TOKEN_EXCHANGE)
        ));
        (request, token)
    };
    let jwt_type = format!("&subject_token_type={}", enc(JWT_TOKEN_TYPE));
    let exchange_cases: Vec<(&str, String, Expect)> = vec![
        (
            "token exchange with an id_token type (control)",
            format!("&subject_token_type={}", enc(ID_TOKEN_TYPE)),
            Expect::Issued,
        ),
        (
            "token exchange asking for an access token (control)",
            format!("{jwt_type}&requested_token_type={}", enc(ACCESS_TOKEN_TYPE)),
            Expect::Issued,
        ),
        (
            "token exchange without subject_token_type",
            String::new(),
            INVALID_REQUEST,
        ),
        (
            "token exchange with a SAML subject_token_type",
            format!(
                "&subject_token_type={}",
                enc("urn:ietf:params:oauth:token-type:saml2")
            ),
            INVALID_REQUEST,
        ),
        (
            "token exchange asking for a refresh token",
            format!(
                "{jwt_type}&requested_token_type={}",
                enc("urn:ietf:params:oauth:token-type:refresh_token")
            ),
            INVALID_REQUEST,
        ),
        (
            "token exchange asking for an id_token",
            format!("{jwt_type}&requested_token_type={}", enc(ID_TOKEN_TYPE)),
            INVALID_REQUEST,
        ),
        (
            "token exchange with an actor_token",
            format!(
                "{jwt_type}&actor_token=x.y.z&actor_token_type={}",
                enc(JWT_TOKEN_TYPE)
            ),
            INVALID_REQUEST,
        ),
        (
            "token exchange with only an actor_token_type",
            format!("{jwt_type}&actor_token_type={}", enc(JWT_TOKEN_TYPE)),
            INVALID_REQUEST,
        ),
        (
            "token exchange with the subject_token twice",
            format!("{jwt_type}&subject_token=x.y.z"),
            INVALID_REQUEST,
        ),
        (
            "token exchange with a subject parameter too (ignored: the subject is the token's; control)",
            format!("{jwt_type}&subject=admin:1"),
            Expect::Issued,
        ),
    ];
    for (name, extra, expect) in exchange_cases {
        let (request, token) = exchange(&extra);
        out.push(with_secrets(case(name, request, expect), &[&token]));
    }
    out.push(case("token exchange without subject_token", as_worker(format!("grant_type={}{jwt_type}", enc(TOKEN_EXCHANGE))), INVALID_REQUEST));
    out.extend([
        case("grant_type twice, the same", as_worker(format!("{CC}&{CC}&audience=convex")), INVALID_REQUEST),
        case("grant_type twice, two grants", as_worker(format!("{CC}&grant_type={}&audience=convex", enc(TOKEN_EXCHANGE))), INVALID_REQUEST),
        case("grant_type empty", as_worker("grant_type=&audience=convex"), INVALID_REQUEST),
        case("grant_type missing", as_worker("audience=convex"), INVALID_REQUEST),
        case("grant_type as an array parameter", as_worker("grant_type[]=client_credentials&audience=convex"), INVALID_REQUEST),
        case("grant_type with its name percent-encoded (control)", as_worker("gr%61nt_type=client_credentials&audience=convex"), Expect::Issued),
        case("an empty body", as_worker(""), INVALID_REQUEST),
        case("a body of ampersands and equals signs", as_worker("&&&===&=&"), INVALID_REQUEST),
    ]);
    out
}

#[rustfmt::skip]
fn sizes() -> Vec<Case> {
    const LIMIT: usize = 64 * 1024;
    let padded = |total: usize| {
        let start = format!("{CC}&audience=convex&pad=");
        let body = format!("{start}{}", "p".repeat(total - start.len()));
        assert_eq!(body.len(), total);
        as_worker(body)
    };
    let chunked = |total: usize| {
        let body = format!("{CC}&audience=convex&pad={}", "p".repeat(total));
        let mut wire = Vec::new();
        for chunk in body.as_bytes().chunks(8192) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut request = as_worker(wire);
        request
            .headers
            .push(("Transfer-Encoding".into(), b"chunked".to_vec()));
        request
    };
    let mut many = as_worker(format!("{CC}&audience=convex"));
    for i in 0..90 {
        many = many.header(&format!("X-Flood-{i}"), "x");
    }
    let mut flood = as_worker(format!("{CC}&audience=convex"));
    for i in 0..200 {
        flood = flood.header(&format!("X-Flood-{i}"), "x");
    }
    vec![
        case("body exactly 64 KiB (control)", padded(LIMIT), Expect::Issued),
        case("body 64 KiB + 1 byte", padded(LIMIT + 1), Expect::Refused(413, "invalid_request")),
        case("body of 1 MiB", padded(1024 * 1024), Expect::Refused(413, "invalid_request")),
        case("chunked body over 64 KiB", chunked(LIMIT + 1024), Expect::Refused(413, "invalid_request")),
        case("chunked body under 64 KiB (control)", chunked(1024), Expect::Issued),
        case("90 extra headers (control)", many, Expect::Issued),
        case("200 extra headers", flood, Expect::Http(431)),
        case("one header of 60 KiB (control)", as_worker(format!("{CC}&audience=convex")).header("X-Pad", "p".repeat(60 * 1024)), Expect::Issued),
        case("one header of 1 MiB", as_worker(format!("{CC}&audience=convex")).header("X-Pad", "p".repeat(1024 * 1024)), Expect::Http(431)),
        case("a 60 KiB parameter name (ignored; control)", as_worker(format!("{CC}&audience=convex&{}=1", "n".repeat(60 * 1024))), Expect::Issued),
    ]
}

#[rustfmt::skip]
fn nul_bytes(assertion: &dyn Fn() -> String, subject_token: &dyn Fn() -> String) -> Vec<Case> {
    let exchange = enc(TOKEN_EXCHANGE);
    let jwt = enc(JWT_TOKEN_TYPE);
    let assertion_type = enc(CLIENT_ASSERTION_TYPE);
    let mut out = vec![
        case("NUL in grant_type", as_worker("grant_type=client_credentials%00&audience=convex"), UNSUPPORTED_GRANT),
        case("NUL in client_id (post)", form(format!("{CC}&client_id={WORKER}%00&client_secret={}", enc(CLIENT_SECRET))), INVALID_CLIENT),
        case("NUL in client_id (beside Basic)", as_worker(format!("{CC}&client_id={WORKER}%00")), INVALID_REQUEST),
        case("NUL in client_secret", form(format!("{CC}&client_id={WORKER}&client_secret={}%00", enc(CLIENT_SECRET))), INVALID_CLIENT),
        case("NUL before client_secret", form(format!("{CC}&client_id={WORKER}&client_secret=%00{}", enc(CLIENT_SECRET))), INVALID_CLIENT),
        case("NUL in audience", as_worker(format!("{CC}&audience=convex%00")), INVALID_TARGET),
        case("NUL in scope", as_worker(format!("{CC}&audience=convex&scope=jobs:run%00")), INVALID_SCOPE),
        case("NUL in subject", as_worker(format!("{CC}&audience=convex&subject=user:1%00")), INVALID_REQUEST),
        case("NUL in subject_token_type", as_worker(format!("grant_type={exchange}&subject_token=x.y.z&subject_token_type={jwt}%00")), INVALID_REQUEST),
        case("NUL in requested_token_type", as_worker(format!("grant_type={exchange}&subject_token=x.y.z&subject_token_type={jwt}&requested_token_type={}%00", enc(ACCESS_TOKEN_TYPE))), INVALID_REQUEST),
        case("NUL as actor_token", as_worker(format!("grant_type={exchange}&subject_token=x.y.z&subject_token_type={jwt}&actor_token=%00")), INVALID_REQUEST),
        case("NUL in actor_token_type", as_worker(format!("grant_type={exchange}&subject_token=x.y.z&subject_token_type={jwt}&actor_token_type=%00")), INVALID_REQUEST),
        case("NUL in a parameter name", as_worker(format!("grant_type%00={}&audience=convex", "client_credentials")), INVALID_REQUEST),
        case("a raw NUL byte in the body", as_worker(format!("{CC}&audience=convex\u{0}")), INVALID_TARGET),
        case("NUL in an unknown parameter (ignored; control)", as_worker(format!("{CC}&audience=convex&x=%00")), Expect::Issued),
        case("NUL in client_assertion_type", form(format!("{CC}&client_id=es&client_assertion_type={assertion_type}%00&client_assertion=x.y.z")), INVALID_CLIENT),
    ];
    let a = assertion();
    out.push(with_secrets(case("NUL after an honest client_assertion", form(format!("{CC}&client_id=es&client_assertion_type={assertion_type}&client_assertion={a}%00")), INVALID_CLIENT), &[&a]));
    let a = assertion();
    out.push(with_secrets(case("NUL inside an honest client_assertion", form(format!("{CC}&client_id=es&client_assertion_type={assertion_type}&client_assertion={}%00{}", &a[..10], &a[10..])), INVALID_CLIENT), &[&a]));
    let s = subject_token();
    out.push(with_secrets(case("NUL after an honest subject_token", as_worker(format!("grant_type={exchange}&subject_token={s}%00&subject_token_type={jwt}")), INVALID_REQUEST), &[&s]));
    out
}

#[rustfmt::skip]
fn http_layer() -> Vec<Case> {
    let with_path = |method: &str, path: &str| {
        let mut request = as_worker(format!("{CC}&audience=convex"));
        request.method = method.into();
        request.path = path.into();
        request
    };
    vec![
        case("GET on the token endpoint", with_path("GET", TOKEN_PATH), Expect::Http(405)),
        case("PUT on the token endpoint", with_path("PUT", TOKEN_PATH), Expect::Http(405)),
        case("the token path with a trailing slash", with_path("POST", "/oauth/token/"), Expect::Http(404)),
        case("the token path in upper case", with_path("POST", "/OAUTH/TOKEN"), Expect::Http(404)),
        case("the token path with a dot segment", with_path("POST", "/oauth/x/../token"), Expect::Http(404)),
        case("a NUL in the Content-Type header", form(CC).header("Content-Type", b"application/x-www-form-urlencoded\0".to_vec()), Expect::Http(400)),
    ]
}
