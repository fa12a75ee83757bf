//! A token request, parsed once: the form body becomes a typed [`Grant`] and a
//! [`ClientProof`]; nothing downstream reads a raw parameter.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use svctoken_mint::check_subject;
use svctoken_mint::oauth::{
    ACCESS_TOKEN_TYPE, CLIENT_ASSERTION_TYPE, CLIENT_CREDENTIALS, JWT_TOKEN_TYPE,
    SUBJECT_TOKEN_TYPES, TOKEN_EXCHANGE,
};
use zeroize::Zeroizing;

use super::RefusalReason;

/// Largest accepted request body: 64 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The parameters svctoken reads; any other is ignored (RFC 6749 section 3.2).
const KNOWN: [&str; 13] = [
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
    "audience",
    "scope",
    "subject",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    "actor_token_type",
];

/// A token request as it arrived: the form's known parameters (each at most once, empty
/// values absent, RFC 6749 section 3.1) and the `Authorization` header. Every value is zeroized
/// when the form is dropped, since several are credentials.
pub struct TokenForm {
    params: [Option<Zeroizing<String>>; KNOWN.len()],
    authorization: Option<Zeroizing<String>>,
}

impl TokenForm {
    /// Parses an `application/x-www-form-urlencoded` body (`content_type` is the request's
    /// `Content-Type`) and keeps `authorization`.
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<TokenForm, RefusalReason> {
        let media_type = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim);
        if !media_type.is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        {
            return Err(RefusalReason::NotAForm);
        }
        if std::str::from_utf8(body).is_err() {
            return Err(RefusalReason::NotUtf8);
        }
        let mut params: [Option<Zeroizing<String>>; KNOWN.len()] = Default::default();
        let mut seen = [false; KNOWN.len()];
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let mut halves = pair.splitn(2, |&b| b == b'=');
            let slot = known_slot(halves.next().unwrap_or_default())?;
            let value = form_decode(halves.next().unwrap_or_default())?;
            let Some(slot) = slot else {
                continue;
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(RefusalReason::RepeatedParameter(KNOWN[slot]));
            }
            if !value.is_empty() {
                params[slot] = Some(value);
            }
        }
        Ok(TokenForm {
            params,
            authorization: authorization.map(|a| Zeroizing::new(a.to_owned())),
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        let slot = KNOWN.iter().position(|k| *k == name)?;
        self.params[slot].as_deref().map(String::as_str)
    }

    fn take(&mut self, name: &str) -> Option<Zeroizing<String>> {
        let slot = KNOWN.iter().position(|k| *k == name)?;
        self.params[slot].take()
    }
}

/// What the client asks for.
pub(crate) enum Grant {
    /// RFC 6749 section 4.4; with `subject`, the client acts on behalf of that user.
    ClientCredentials {
        /// The user to act for (`subject=`), already checked against the subject rules.
        subject: Option<String>,
    },
    /// RFC 8693: a user's token from a trusted issuer, exchanged for one naming the client as
    /// the actor.
    TokenExchange {
        /// The user's token.
        subject_token: Zeroizing<String>,
    },
}

/// How the client proves who it is.
pub(crate) enum ClientProof {
    /// A secret, in `Authorization: Basic` or in the body.
    Secret {
        /// The client id.
        id: String,
        /// The secret.
        secret: Zeroizing<String>,
    },
    /// A JWT signed with the client's key (`private_key_jwt`, RFC 7523 section 2.2).
    Assertion {
        /// `client_id`, if sent (the assertion's `sub` names the client otherwise).
        id: Option<String>,
        /// The assertion.
        assertion: Zeroizing<String>,
    },
}

impl ClientProof {
    /// The client id the request names before it is authenticated, if it names one.
    pub(crate) fn claimed_id(&self) -> Option<&str> {
        match self {
            ClientProof::Secret { id, .. } => Some(id),
            ClientProof::Assertion { id, .. } => id.as_deref(),
        }
    }
}

/// A token request, typed.
pub(crate) struct TokenRequest {
    pub(crate) grant: Grant,
    pub(crate) proof: ClientProof,
    /// `audience`, if asked for.
    pub(crate) audience: Option<String>,
    /// `scope`, space-separated, if asked for.
    pub(crate) scope: Option<String>,
}

impl TokenRequest {
    /// Types `form`: the grant, then the client's proof. A failure names what is wrong, never
    /// by echoing what was sent.
    pub(crate) fn parse(mut form: TokenForm) -> Result<TokenRequest, RefusalReason> {
        let grant = match form.get("grant_type") {
            None => return Err(RefusalReason::MissingGrantType),
            Some(CLIENT_CREDENTIALS) => {
                let subject = form.take("subject").map(plain);
                if let Some(subject) = &subject {
                    check_subject(subject).map_err(|_| RefusalReason::InvalidSubject)?;
                }
                Grant::ClientCredentials { subject }
            }
            Some(TOKEN_EXCHANGE) => exchange(&mut form)?,
            Some(_) => return Err(RefusalReason::UnsupportedGrantType),
        };
        let proof = client_proof(&mut form)?;
        Ok(TokenRequest {
            grant,
            proof,
            audience: form.take("audience").map(plain),
            scope: form.take("scope").map(plain),
        })
    }
}

/// The token exchange parameters (RFC 8693 section 2.1): a JWT subject token, an access token
/// asked for (or nothing), and no actor token (the authenticated client is the actor).
fn exchange(form: &mut TokenForm) -> Result<Grant, RefusalReason> {
    if !form
        .get("subject_token_type")
        .is_some_and(|t| SUBJECT_TOKEN_TYPES.contains(&t))
    {
        return Err(RefusalReason::SubjectTokenType);
    }
    if form
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE && t != JWT_TOKEN_TYPE)
    {
        return Err(RefusalReason::RequestedTokenType);
    }
    if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
        return Err(RefusalReason::ActorTokenUnsupported);
    }
    let subject_token = form
        .take("subject_token")
        .ok_or(RefusalReason::MissingSubjectToken)?;
    Ok(Grant::TokenExchange { subject_token })
}

/// The client's proof: an assertion (`client_assertion_type` + `client_assertion`) or a
/// secret (Basic or body); more than one method at once is refused.
fn client_proof(form: &mut TokenForm) -> Result<ClientProof, RefusalReason> {
    let has_secret = form.authorization.is_some() || form.get("client_secret").is_some();
    match (
        form.take("client_assertion_type"),
        form.take("client_assertion"),
    ) {
        (None, None) => secret(form),
        (Some(kind), Some(assertion)) => {
            if *kind != CLIENT_ASSERTION_TYPE {
                return Err(RefusalReason::AssertionType);
            }
            if has_secret {
                return Err(RefusalReason::TwoAuthMethods);
            }
            Ok(ClientProof::Assertion {
                id: form.take("client_id").map(plain),
                assertion,
            })
        }
        _ => Err(RefusalReason::AssertionIncomplete),
    }
}

/// Client id and secret from `Authorization: Basic` (RFC 6749 section 2.3.1: each part is
/// form-urlencoded before base64) or from the body; both at once is refused.
fn secret(form: &mut TokenForm) -> Result<ClientProof, RefusalReason> {
    let body_id = form.take("client_id");
    let body_secret = form.take("client_secret");
    let Some(header) = form.authorization.take() else {
        return match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(ClientProof::Secret {
                id: plain(id),
                secret,
            }),
            (Some(_), None) => Err(RefusalReason::NoSecret),
            _ => Err(RefusalReason::NoClientAuthentication),
        };
    };
    if body_secret.is_some() {
        return Err(RefusalReason::TwoAuthMethods);
    }
    let (id, secret) = basic(&header).ok_or(RefusalReason::MalformedBasic)?;
    if body_id.is_some_and(|body_id| *body_id != *id) {
        return Err(RefusalReason::ClientIdMismatch);
    }
    Ok(ClientProof::Secret {
        id: plain(id),
        secret,
    })
}

/// A parameter that is not a credential, moved out of its wrapper rather than copied.
fn plain(mut value: Zeroizing<String>) -> String {
    std::mem::take(&mut *value)
}

/// The id and secret of a `Basic` header; `None` if malformed.
fn basic(header: &str) -> Option<(Zeroizing<String>, Zeroizing<String>)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(STANDARD.decode(value.trim()).ok()?);
    let colon = decoded.iter().position(|&b| b == b':')?;
    let id = form_decode(&decoded[..colon]).ok()?;
    let secret = form_decode(&decoded[colon + 1..]).ok()?;
    (!id.is_empty()).then_some((id, secret))
}

/// Which of [`KNOWN`] the form-encoded parameter name `raw` is, if any.
fn known_slot(raw: &[u8]) -> Result<Option<usize>, RefusalReason> {
    if needs_decoding(raw) {
        let name = form_decode(raw)?;
        return Ok(KNOWN.iter().position(|k| **k == *name));
    }
    let name = std::str::from_utf8(raw).map_err(|_| RefusalReason::NotUtf8)?;
    Ok(KNOWN.iter().position(|k| *k == name))
}

/// Whether a form-encoded component differs from its decoding (holds a `+` or a `%`).
fn needs_decoding(raw: &[u8]) -> bool {
    raw.iter().any(|&b| b == b'+' || b == b'%')
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(raw: &[u8]) -> Result<Zeroizing<String>, RefusalReason> {
    if !needs_decoding(raw) {
        return std::str::from_utf8(raw)
            .map(|text| Zeroizing::new(text.to_owned()))
            .map_err(|_| RefusalReason::NotUtf8);
    }
    let plus_as_space: Zeroizing<Vec<u8>> = Zeroizing::new(
        raw.iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect(),
    );
    let bytes: Zeroizing<Vec<u8>> =
        Zeroizing::new(percent_encoding::percent_decode(&plus_as_space).collect());
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|e| {
            let mut rejected = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut rejected);
            RefusalReason::NotUtf8
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=UTF-8");

    fn request(body: &str, authorization: Option<&str>) -> Result<TokenRequest, RefusalReason> {
        TokenRequest::parse(TokenForm::parse(FORM, authorization, body.as_bytes())?)
    }

    #[test]
    fn form_parsing() {
        let mut f = TokenForm::parse(FORM, None, b"scope=a+b%20c&audience=&unknown=x").expect("ok");
        assert_eq!(
            f.take("scope").as_deref().map(String::as_str),
            Some("a b c")
        );
        assert_eq!(f.get("audience"), None, "empty is absent");
        for (body, reason) in [
            (
                &b"scope=1&scope=2"[..],
                RefusalReason::RepeatedParameter("scope"),
            ),
            (b"scope=%FF", RefusalReason::NotUtf8),
            (b"scope=\xff", RefusalReason::NotUtf8),
        ] {
            assert_eq!(TokenForm::parse(FORM, None, body).err(), Some(reason));
        }
        assert_eq!(
            TokenForm::parse(Some("application/json"), None, b"{}").err(),
            Some(RefusalReason::NotAForm)
        );
        assert!(
            TokenForm::parse(FORM, None, b"x=1&x=2").is_ok(),
            "unknown names are ignored"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcret+x"));
        let parsed = request("grant_type=client_credentials", Some(&header)).expect("ok");
        let ClientProof::Secret { id, secret } = parsed.proof else {
            panic!("a secret")
        };
        assert_eq!((id.as_str(), secret.as_str()), ("my:client", "s+cret x"));
        for bad in [
            "Basic !!".to_owned(),
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
            format!("Basic {}", STANDARD.encode("nocolon")),
            format!("Basic {}", STANDARD.encode(":secret")),
        ] {
            assert_eq!(
                request("grant_type=client_credentials", Some(&bad)).err(),
                Some(RefusalReason::MalformedBasic),
                "{bad}"
            );
        }
    }

    #[test]
    fn grants_and_proofs_are_typed() {
        let cc = "grant_type=client_credentials&client_id=a&client_secret=s";
        assert!(matches!(
            request(&format!("{cc}&subject=user:1"), None).map(|r| r.grant),
            Ok(Grant::ClientCredentials { subject: Some(s) }) if s == "user:1"
        ));
        let cases = [
            (
                "client_id=a&client_secret=s",
                RefusalReason::MissingGrantType,
            ),
            ("grant_type=password", RefusalReason::UnsupportedGrantType),
            (
                "grant_type=client_credentials&subject=a%00b",
                RefusalReason::InvalidSubject,
            ),
            (
                "grant_type=client_credentials",
                RefusalReason::NoClientAuthentication,
            ),
            (
                "grant_type=client_credentials&client_id=a",
                RefusalReason::NoSecret,
            ),
            (
                "grant_type=client_credentials&client_assertion=x.y.z",
                RefusalReason::AssertionIncomplete,
            ),
            (
                "grant_type=client_credentials&client_assertion=x&client_assertion_type=other",
                RefusalReason::AssertionType,
            ),
            (
                "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x",
                RefusalReason::SubjectTokenType,
            ),
            (
                "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token_type=urn:ietf:params:oauth:token-type:jwt",
                RefusalReason::MissingSubjectToken,
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(request(body, None).err(), Some(reason), "{body}");
        }
        let basic = format!("Basic {}", STANDARD.encode("a:s"));
        assert_eq!(
            request(cc, Some(&basic)).err(),
            Some(RefusalReason::TwoAuthMethods)
        );
        assert_eq!(
            request("grant_type=client_credentials&client_id=b", Some(&basic)).err(),
            Some(RefusalReason::ClientIdMismatch)
        );
    }
}
