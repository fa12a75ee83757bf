//! What a Convex function sees of a verified token (`ctx.auth.getUserIdentity()`), built from
//! the payload as each provider type builds it, and the OpenID Connect ID token parse that makes
//! an OIDC provider refuse a token whose standard claims have the wrong JSON type.
//!
//! * customJwt: every claim but `iss sub aud exp nbf iat jti` becomes a field under its own
//!   name, nested objects flattened to dotted names (an empty object leaves nothing), then a
//!   top-level `fva` is dropped.
//! * OIDC: the payload is parsed as an ID token by the `openidconnect` crate (with its
//!   `accept-rfc3339-timestamps` feature). Every standard claim is typed; one of another JSON
//!   type fails the parse, so the token is refused (401 `InvalidAuthHeader`). The identity holds
//!   the standard claims as typed camelCase fields, then every claim the parser did not consume
//!   under its own name, unflattened, less `jti nbf fva`.

use std::collections::HashSet;

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{Map, Value};

use super::{ConvexAuthError, REGISTERED_CLAIMS, Reason};

/// The identity fields of a customJwt token.
pub fn custom_jwt_fields(payload: &Map<String, Value>) -> Map<String, Value> {
    let mut fields = Map::new();
    for (name, value) in payload {
        if !REGISTERED_CLAIMS.contains(&name.as_str()) {
            flatten_claim(name, value, &mut fields);
        }
    }
    // Dropped after flattening: `fva` (factor verification age) changes at every refresh.
    fields.remove("fva");
    fields
}

/// Nested objects become dotted keys, recursively; everything else is kept as is.
fn flatten_claim(name: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(inner) => {
            for (key, nested) in inner {
                flatten_claim(&format!("{name}.{key}"), nested, out);
            }
        }
        other => {
            out.insert(name.to_owned(), other.clone());
        }
    }
}

/// An OIDC token's payload, parsed as Convex parses an ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct IdTokenClaims {
    /// `sub`.
    pub subject: String,
    /// `aud` (a string is a one-entry list; absent is empty).
    pub audiences: Vec<String>,
    /// `exp`.
    pub expiration: DateTime<Utc>,
    /// `iat`.
    pub issued_at: DateTime<Utc>,
    /// The identity fields: standard claims in camelCase, then pass-through claims.
    pub fields: Map<String, Value>,
}

/// Claims the ID token parser reads by exact name, outside the standard claims (`iss` is
/// checked by discovery). None reaches the identity.
const ID_TOKEN_FIELDS: [&str; 11] = [
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
];

/// Standard claims that take a language tag (`name#fr`); the identity shows the untagged one.
/// Each with the identity field it becomes (`middle_name` becomes none).
const LOCALIZED: [(&str, Option<&str>); 8] = [
    ("name", Some("name")),
    ("given_name", Some("givenName")),
    ("family_name", Some("familyName")),
    ("middle_name", None),
    ("nickname", Some("nickname")),
    ("profile", Some("profileUrl")),
    ("picture", Some("pictureUrl")),
    ("website", Some("websiteUrl")),
];

/// The JSON a standard claim without language tags must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A string (`sub`: never null).
    String,
    /// A boolean.
    Boolean,
    /// The address structure.
    Address,
    /// A timestamp: a number of seconds or an RFC 3339 string.
    Timestamp,
}

/// Standard claims that take no language tag, each with its kind and identity field.
/// `birthday` is parsed (as a string) but shown nowhere: the identity's `birthday` is
/// `birthdate`.
const PLAIN: [(&str, Kind, Option<&str>); 13] = [
    ("sub", Kind::String, None),
    (
        "preferred_username",
        Kind::String,
        Some("preferredUsername"),
    ),
    ("email", Kind::String, Some("email")),
    ("email_verified", Kind::Boolean, Some("emailVerified")),
    ("gender", Kind::String, Some("gender")),
    ("birthday", Kind::String, None),
    ("birthdate", Kind::String, Some("birthday")),
    ("zoneinfo", Kind::String, Some("timezone")),
    ("locale", Kind::String, Some("language")),
    ("phone_number", Kind::String, Some("phoneNumber")),
    (
        "phone_number_verified",
        Kind::Boolean,
        Some("phoneNumberVerified"),
    ),
    ("address", Kind::Address, Some("address")),
    ("updated_at", Kind::Timestamp, Some("updatedAt")),
];

/// The members of the address structure, in its declared order (it also parses from an array
/// of exactly these six, in this order).
const ADDRESS_MEMBERS: [&str; 6] = [
    "formatted",
    "street_address",
    "locality",
    "region",
    "postal_code",
    "country",
];

/// Claims dropped from the identity although the parser passes them on: they change at every
/// refresh.
const DROPPED: [&str; 3] = ["jti", "nbf", "fva"];

/// `key` split at its first `#` into the claim and its language tag; an empty tag is none.
fn split_language_tag(key: &str) -> (&str, Option<&str>) {
    match key.split_once('#') {
        Some((claim, tag)) if !tag.is_empty() => (claim, Some(tag)),
        Some((claim, _)) => (claim, None),
        None => (key, None),
    }
}

/// Parses an OIDC token's payload as Convex does (the `openidconnect` crate's `IdTokenClaims`
/// with a map of additional claims) and builds its identity fields. A standard claim of the
/// wrong JSON type, a language tag on a claim that takes none, or a claim given twice (`name`
/// and `name#`) fails the whole parse: `InvalidAuthHeader`.
pub fn parse_id_token(payload: &Map<String, Value>) -> Result<IdTokenClaims, ConvexAuthError> {
    let expiration = timestamp(payload, "exp")?
        .ok_or_else(|| ConvexAuthError::invalid(Reason::MissingClaim("exp"), "missing `exp`"))?;
    let issued_at = timestamp(payload, "iat")?
        .ok_or_else(|| ConvexAuthError::invalid(Reason::MissingClaim("iat"), "missing `iat`"))?;
    let audiences = audiences(payload.get("aud"))?;
    timestamp(payload, "auth_time")?;
    for name in ["nonce", "acr", "azp", "at_hash", "c_hash"] {
        if let Some(value) = payload.get(name) {
            optional_string(name, value)?;
        }
    }
    match payload.get("amr") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(other) => return Err(mistyped("amr", "an array of strings", other)),
    }

    let mut typed = Map::new();
    let mut seen = HashSet::new();
    let mut subject = None;
    for (key, value) in payload {
        if ID_TOKEN_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let (claim, tag) = split_language_tag(key);
        if let Some((_, field)) = LOCALIZED.iter().find(|(c, _)| *c == claim) {
            if !seen.insert((claim, tag)) {
                return Err(id_token_error(key, format!("duplicate field `{key}`")));
            }
            let text = optional_string(key, value)?;
            if let (None, Some(field), Some(text)) = (tag, field, text) {
                typed.insert((*field).to_owned(), Value::String(text.to_owned()));
            }
        } else if let Some((_, kind, field)) = PLAIN.iter().find(|(c, ..)| *c == claim) {
            if let Some(tag) = tag {
                return Err(id_token_error(
                    key,
                    format!("unexpected language tag `{tag}` for key `{claim}`"),
                ));
            }
            if !seen.insert((claim, None)) {
                return Err(id_token_error(key, format!("duplicate field `{claim}`")));
            }
            let shown = match kind {
                Kind::String if claim == "sub" => match value {
                    Value::String(s) => {
                        subject = Some(s.clone());
                        None
                    }
                    other => {
                        return Err(ConvexAuthError::invalid(
                            Reason::InvalidClaim("sub"),
                            format!("`sub` must be a string, not {other}"),
                        ));
                    }
                },
                Kind::String => optional_string(key, value)?.map(|s| Value::String(s.to_owned())),
                Kind::Boolean => match value {
                    Value::Null => None,
                    Value::Bool(b) => Some(Value::Bool(*b)),
                    other => return Err(mistyped(key, "a boolean", other)),
                },
                Kind::Address => address_formatted(key, value)?.map(Value::String),
                Kind::Timestamp => to_utc(key, value)?.map(|t| Value::String(t.to_rfc3339())),
            };
            if let (Some(field), Some(shown)) = (field, shown) {
                typed.insert((*field).to_owned(), shown);
            }
        }
    }
    let subject = subject
        .ok_or_else(|| ConvexAuthError::invalid(Reason::MissingClaim("sub"), "missing `sub`"))?;

    // Typed fields first; a pass-through claim of the same name replaces one (it is serialized
    // after them).
    let mut fields = typed;
    for (key, value) in payload {
        if ID_TOKEN_FIELDS.contains(&key.as_str()) || DROPPED.contains(&key.as_str()) {
            continue;
        }
        let (claim, tag) = split_language_tag(key);
        let standard = LOCALIZED.iter().any(|(c, _)| *c == claim)
            || (tag.is_none() && PLAIN.iter().any(|(c, ..)| *c == claim));
        if !standard {
            fields.insert(key.clone(), value.clone());
        }
    }
    Ok(IdTokenClaims {
        subject,
        audiences,
        expiration,
        issued_at,
        fields,
    })
}

/// The refusal of an unparseable ID token, naming the claim.
fn id_token_error(claim: &str, detail: String) -> ConvexAuthError {
    ConvexAuthError::invalid(
        Reason::IdTokenClaim(claim.to_owned()),
        format!("Could not parse as OIDC ID token: {detail}"),
    )
}

fn mistyped(claim: &str, expected: &str, value: &Value) -> ConvexAuthError {
    id_token_error(
        claim,
        format!("{claim}: invalid type {value}, expected {expected}"),
    )
}

/// A string or null (absent).
fn optional_string<'a>(claim: &str, value: &'a Value) -> Result<Option<&'a str>, ConvexAuthError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(mistyped(claim, "a string", other)),
    }
}

/// `aud`: a string or an array of strings; absent is empty, anything else fails the parse.
fn audiences(value: Option<&Value>) -> Result<Vec<String>, ConvexAuthError> {
    let invalid = || {
        ConvexAuthError::invalid(
            Reason::InvalidClaim("aud"),
            "`aud` must be a string or an array of strings",
        )
    };
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// The `formatted` member of an address: an object (other members strings or null, unknown
/// members ignored), an array of exactly the six members in order, or null.
fn address_formatted(claim: &str, value: &Value) -> Result<Option<String>, ConvexAuthError> {
    let members: Vec<(&str, &Value)> = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => ADDRESS_MEMBERS
            .iter()
            .filter_map(|m| map.get(*m).map(|v| (*m, v)))
            .collect(),
        Value::Array(items) if items.len() == ADDRESS_MEMBERS.len() => {
            ADDRESS_MEMBERS.iter().copied().zip(items).collect()
        }
        other => return Err(mistyped(claim, "struct AddressClaim", other)),
    };
    let mut formatted = None;
    for (member, value) in members {
        let text = optional_string(claim, value)?;
        if member == "formatted" {
            formatted = text.map(str::to_owned);
        }
    }
    Ok(formatted)
}

/// A timestamp claim: absent or (when it may be) null is `None`.
fn timestamp(
    payload: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<DateTime<Utc>>, ConvexAuthError> {
    let Some(value) = payload.get(claim) else {
        return Ok(None);
    };
    let required = matches!(claim, "exp" | "iat");
    match to_utc(claim, value) {
        Ok(None) if required => Err(ConvexAuthError::invalid(
            Reason::InvalidClaim(claim),
            format!("`{claim}` must not be null"),
        )),
        Err(_) if required => Err(ConvexAuthError::invalid(
            Reason::InvalidClaim(claim),
            format!("`{claim}` is not a timestamp: {value}"),
        )),
        other => other,
    }
}

/// A timestamp as the parser reads it: seconds since 1970 (a float is floored to the
/// nanosecond), or an RFC 3339 string; out of chrono's range fails. Null is `None`.
fn to_utc(claim: &str, value: &Value) -> Result<Option<DateTime<Utc>>, ConvexAuthError> {
    let fail = || {
        id_token_error(
            claim,
            format!("failed to parse `{value}` as UTC datetime (in seconds) for key `{claim}`"),
        )
    };
    let parsed = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(secs) => Utc.timestamp_opt(secs, 0).single(),
            None => n.as_f64().and_then(|f| {
                let secs = f.floor();
                // `as` saturates, as the parser's does: out-of-range seconds then fail below.
                let (whole, nanos) = (secs as i64, ((f - secs) * 1_000_000_000.0).floor() as u32);
                Utc.timestamp_opt(whole, nanos).single()
            }),
        },
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    };
    parsed.map(Some).ok_or_else(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: [(&str, i64); 2] = [("exp", 1_800_000_000), ("iat", 1_700_000_000)];

    /// A valid OIDC payload with `extra` claims added (a `null` in `extra` removes the claim
    /// only for `sub`).
    fn payload(extra: Value) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("iss".into(), json!("https://issuer.test"));
        p.insert("sub".into(), json!("user-1"));
        p.insert("aud".into(), json!("app"));
        for (k, v) in BASE {
            p.insert(k.into(), json!(v));
        }
        for (k, v) in extra.as_object().expect("object") {
            p.insert(k.clone(), v.clone());
        }
        p
    }

    fn fields(extra: Value) -> Value {
        match parse_id_token(&payload(extra.clone())) {
            Ok(claims) => Value::Object(claims.fields),
            Err(e) => panic!("{extra} refused: {e}"),
        }
    }

    fn refused(extra: Value) -> ConvexAuthError {
        match parse_id_token(&payload(extra.clone())) {
            Ok(claims) => panic!("{extra} accepted: {:?}", claims.fields),
            Err(e) => e,
        }
    }

    #[test]
    fn standard_claims_become_typed_camel_case_fields() {
        let every = json!({
            "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
            "middle_name": "King", "nickname": "ada", "preferred_username": "ada.l",
            "profile": "https://p.example", "picture": "https://p.example/a.png",
            "website": "https://w.example", "email": "ada@example.com", "email_verified": true,
            "gender": "female", "birthdate": "1815-12-10", "birthday": "ignored",
            "zoneinfo": "Europe/London", "locale": "en-GB", "phone_number": "+44 20",
            "phone_number_verified": false,
            "address": {"formatted": "1 Main St\nLondon", "country": "UK", "extra": 5},
            "updated_at": 1_700_000_000,
        });
        assert_eq!(
            fields(every),
            json!({
                "name": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace",
                "nickname": "ada", "preferredUsername": "ada.l",
                "profileUrl": "https://p.example", "pictureUrl": "https://p.example/a.png",
                "websiteUrl": "https://w.example", "email": "ada@example.com",
                "emailVerified": true, "gender": "female", "birthday": "1815-12-10",
                "timezone": "Europe/London", "language": "en-GB", "phoneNumber": "+44 20",
                "phoneNumberVerified": false, "address": "1 Main St\nLondon",
                "updatedAt": "2023-11-14T22:13:20+00:00",
            })
        );
    }

    #[test]
    fn identity_fields_table() {
        // (claims added to a valid payload, the identity fields Convex builds from them)
        for (extra, expected) in [
            // ID token claims and housekeeping claims are dropped.
            (
                json!({"jti": "j", "nbf": 5, "fva": [1, 2], "acr": "a", "azp": "z",
                       "auth_time": 1_700_000_000, "amr": ["pwd"], "nonce": "n",
                       "at_hash": "h", "c_hash": "c"}),
                json!({}),
            ),
            // Other claims pass through unflattened; empty objects and nulls stay.
            (
                json!({"act": {"sub": "svc:a", "act": {"sub": "svc:b"}}, "client_id": "w",
                       "scope": "a b", "empty": {}, "nothing": null, "weight": 1.5,
                       "big": u64::MAX, "roles": ["a"]}),
                json!({"act": {"sub": "svc:a", "act": {"sub": "svc:b"}}, "client_id": "w",
                       "scope": "a b", "empty": {}, "nothing": null, "weight": 1.5,
                       "big": u64::MAX, "roles": ["a"]}),
            ),
            // Language-tagged variants are parsed (and typed) but only the untagged one shows.
            (
                json!({"name#fr": "Adé", "website#de": "https://de.example", "name": "Ada"}),
                json!({"name": "Ada"}),
            ),
            (json!({"name#fr": "Adé"}), json!({})),
            // An empty tag is no tag.
            (
                json!({"name#": "Ada", "email#": "a@b"}),
                json!({"name": "Ada", "email": "a@b"}),
            ),
            // Claims named like ID token fields but tagged are ordinary claims.
            (
                json!({"acr#en": 5, "amr#x": "y", "aud#": 1}),
                json!({"acr#en": 5, "amr#x": "y", "aud#": 1}),
            ),
            // Null standard claims are absent.
            (
                json!({"name": null, "email_verified": null, "address": null,
                       "updated_at": null, "amr": null, "auth_time": null, "nonce": null}),
                json!({}),
            ),
            // Timestamps: RFC 3339 strings and fractions are accepted, shown in UTC.
            (
                json!({"updated_at": "2024-01-01T02:00:00+02:00"}),
                json!({"updatedAt": "2024-01-01T00:00:00+00:00"}),
            ),
            (
                json!({"updated_at": 1_700_000_000.5}),
                json!({"updatedAt": "2023-11-14T22:13:20.500+00:00"}),
            ),
            (
                json!({"updated_at": -5}),
                json!({"updatedAt": "1969-12-31T23:59:55+00:00"}),
            ),
            (
                json!({"updated_at": 8_210_266_876_799_i64}),
                json!({"updatedAt": "+262142-12-31T23:59:59+00:00"}),
            ),
            // The address shows only its formatted member; it may be the 6-entry array form.
            (json!({"address": {"country": "UK"}}), json!({})),
            (
                json!({"address": ["1 Main St", null, "L", "R", "P", "UK"]}),
                json!({"address": "1 Main St"}),
            ),
            // Non-standard look-alikes pass through under their own names.
            (
                json!({"profile_url": "x", "emailVerified": "yes"}),
                json!({"profile_url": "x", "emailVerified": "yes"}),
            ),
            // A pass-through claim replaces the typed field of the same name.
            (
                json!({"given_name": "Ada", "givenName": "other"}),
                json!({"givenName": "other"}),
            ),
        ] {
            assert_eq!(fields(extra.clone()), expected, "{extra}");
        }
    }

    #[test]
    fn a_mistyped_standard_claim_fails_the_whole_parse() {
        // (claims added to a valid payload, the claim the refusal names)
        for (extra, claim) in [
            (json!({"email_verified": "yes"}), "email_verified"),
            (json!({"email_verified": 1}), "email_verified"),
            (
                json!({"phone_number_verified": "true"}),
                "phone_number_verified",
            ),
            (json!({"name": 5}), "name"),
            (json!({"given_name": ["Ada"]}), "given_name"),
            (json!({"middle_name": {}}), "middle_name"),
            (json!({"website#de": 1}), "website#de"),
            (json!({"preferred_username": 1}), "preferred_username"),
            (json!({"gender": 5}), "gender"),
            (json!({"birthday": 5}), "birthday"),
            (json!({"locale": ["en"]}), "locale"),
            (json!({"zoneinfo": {}}), "zoneinfo"),
            (json!({"address": "1 Main St"}), "address"),
            (json!({"address": {"formatted": 5}}), "address"),
            (json!({"address": ["1 Main St"]}), "address"),
            (json!({"updated_at": "2024-01-01"}), "updated_at"),
            (json!({"updated_at": true}), "updated_at"),
            (json!({"updated_at": 1e15}), "updated_at"),
            (json!({"updated_at": "+2024-01-01T00:00:00Z"}), "updated_at"),
            (json!({"amr": "pwd"}), "amr"),
            (json!({"amr": [1]}), "amr"),
            (json!({"auth_time": "soon"}), "auth_time"),
            (json!({"nonce": 5}), "nonce"),
            (json!({"acr": true}), "acr"),
            (json!({"azp": 1}), "azp"),
            (json!({"at_hash": 1}), "at_hash"),
            (json!({"c_hash": 1}), "c_hash"),
            (json!({"email#en": "a@b"}), "email#en"),
            (json!({"updated_at#x": 1}), "updated_at#x"),
            (json!({"sub#x": "y"}), "sub#x"),
            (json!({"name": "A", "name#": "B"}), "name#"),
        ] {
            let e = refused(extra.clone());
            assert_eq!(e.reason(), &Reason::IdTokenClaim(claim.into()), "{extra}");
            assert_eq!(
                (e.status(), e.code()),
                (401, "InvalidAuthHeader"),
                "{extra}"
            );
        }
        // `sub` may not be duplicated by an empty tag either (which one is named depends on
        // the map's order).
        let e = refused(json!({"sub#": "y"}));
        assert!(matches!(e.reason(), Reason::IdTokenClaim(c) if c.starts_with("sub")));
    }

    #[test]
    fn registered_claims_are_typed_too() {
        for (extra, reason) in [
            (json!({"sub": 5}), Reason::InvalidClaim("sub")),
            (json!({"exp": "soon"}), Reason::InvalidClaim("exp")),
            (json!({"iat": true}), Reason::InvalidClaim("iat")),
            (json!({"exp": null}), Reason::InvalidClaim("exp")),
            (json!({"aud": 5}), Reason::InvalidClaim("aud")),
            (json!({"aud": null}), Reason::InvalidClaim("aud")),
        ] {
            assert_eq!(refused(extra.clone()).reason(), &reason, "{extra}");
        }
        let mut p = payload(json!({}));
        p.remove("iat");
        let e = parse_id_token(&p).expect_err("no iat");
        assert_eq!(e.reason(), &Reason::MissingClaim("iat"));
        p = payload(json!({}));
        p.remove("sub");
        let e = parse_id_token(&p).expect_err("no sub");
        assert_eq!(e.reason(), &Reason::MissingClaim("sub"));
        // exp and iat may be fractional or RFC 3339 strings.
        let claims = parse_id_token(&payload(json!({
            "exp": "2027-01-15T08:00:00Z", "iat": 1_700_000_000.25, "aud": ["app"],
        })))
        .expect("parses");
        assert_eq!(claims.expiration.timestamp(), 1_800_000_000);
        assert_eq!(claims.issued_at.timestamp_subsec_millis(), 250);
        assert_eq!(claims.audiences, vec!["app".to_owned()]);
        assert_eq!(claims.subject, "user-1");
    }

    #[test]
    fn custom_jwt_flattens_and_drops_fva_and_empty_objects() {
        // (claims added to the registered ones, the identity fields)
        for (extra, expected) in [
            (
                json!({"svc": {"id": 1, "meta": {"team": "core", "tags": ["a"]}}}),
                json!({"svc.id": 1, "svc.meta.team": "core", "svc.meta.tags": ["a"]}),
            ),
            (
                json!({"act": {"sub": "svc:a", "act": {"sub": "svc:b"}}}),
                json!({"act.sub": "svc:a", "act.act.sub": "svc:b"}),
            ),
            (json!({"empty": {}, "nested": {"empty": {}}}), json!({})),
            (json!({"fva": [3, -1], "team": "t"}), json!({"team": "t"})),
            // Only the top-level `fva` goes.
            (json!({"x": {"fva": 1}}), json!({"x.fva": 1})),
            // No typing: standard OIDC names keep whatever they hold.
            (
                json!({"email_verified": "yes", "name": 5, "updated_at": "2024-01-01",
                       "nothing": null, "weight": 1.5}),
                json!({"email_verified": "yes", "name": 5, "updated_at": "2024-01-01",
                       "nothing": null, "weight": 1.5}),
            ),
        ] {
            let p = payload(extra.clone());
            assert_eq!(Value::Object(custom_jwt_fields(&p)), expected, "{extra}");
        }
    }
}
