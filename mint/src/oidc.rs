//! OpenID Connect standard claims: the JSON type an OIDC parser requires of each.
//!
//! A verifier that reads a token as an OpenID Connect ID token (a Convex OIDC provider, and
//! OIDC client libraries in general) parses every claim whose name is a standard one into a
//! typed field; a value of another type (`"email_verified": "yes"`, `"updated_at":
//! "2024-01-01"`, `"amr": "pwd"`) makes the whole token unparseable, so it is refused with a
//! 401 before any function runs. These names keep the meaning OpenID Connect Core 1.0 (sections
//! 2 and 5.1) and the IANA JWT claims registry give them whatever the audience, so svctoken
//! refuses such a custom claim for every audience, not only `convex-oidc` ones: a token that
//! one verifier reads differently from another is a bug, and an audience's profile may change.
//!
//! The rules are those of the `openidconnect` crate's ID token parser (the one Convex uses),
//! made stricter where the parser is lenient about a value that is never meant: `null` is
//! refused (OIDC says to omit a claim instead), timestamps are whole seconds since 1970 (the
//! parser would also take fractions and RFC 3339 strings), and `address` is an object.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// What a standard claim's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// A JSON string.
    String,
    /// A JSON boolean.
    Boolean,
    /// A NumericDate: whole seconds since 1970, at most [`MAX_NUMERIC_DATE`].
    NumericDate,
    /// A JSON array of strings (`amr`).
    StringArray,
    /// A JSON object whose members are strings (`address`).
    Address,
}

impl Shape {
    /// The requirement, as the error message states it.
    fn requirement(self) -> &'static str {
        match self {
            Shape::String => "a string",
            Shape::Boolean => "a boolean",
            Shape::NumericDate => "a number of whole seconds since 1970 (a NumericDate)",
            Shape::StringArray => "an array of strings",
            Shape::Address => "an object whose members are strings",
        }
    }

    /// `None` when `value` has this shape, else what it is instead (for the error message).
    fn mismatch(self, value: &Value) -> Option<String> {
        let ok = match (self, value) {
            (Shape::String, Value::String(_)) | (Shape::Boolean, Value::Bool(_)) => true,
            (Shape::NumericDate, Value::Number(n)) => {
                // A whole float (`1700000000.0`) is read as the same second.
                let secs = n.as_f64().unwrap_or(f64::NAN);
                return if n.as_u64().is_none() && secs.fract() != 0.0 {
                    Some("a fractional number".into())
                } else if secs < 0.0 {
                    Some("a date before 1970".into())
                } else if n
                    .as_u64()
                    .map_or(secs > MAX_NUMERIC_DATE as f64, |s| s > MAX_NUMERIC_DATE)
                {
                    Some("a date after the year 9999".into())
                } else {
                    None
                };
            }
            (Shape::StringArray, Value::Array(items)) => {
                return items
                    .iter()
                    .find(|item| !item.is_string())
                    .map(|item| format!("an array holding {}", json_type(item)));
            }
            (Shape::Address, Value::Object(members)) => {
                return members.iter().find(|(_, member)| !member.is_string()).map(
                    |(name, member)| {
                        format!("an object whose member {name:?} is {}", json_type(member))
                    },
                );
            }
            _ => false,
        };
        (!ok).then(|| json_type(value).to_owned())
    }
}

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// Claims of the ID token itself (OpenID Connect Core 1.0 section 2) that svctoken does not set
/// (`iss sub aud exp iat` are reserved). The parser matches these names exactly.
const ID_TOKEN_CLAIMS: [(&str, Shape); 7] = [
    ("auth_time", Shape::NumericDate),
    ("nonce", Shape::String),
    ("acr", Shape::String),
    ("amr", Shape::StringArray),
    ("azp", Shape::String),
    ("at_hash", Shape::String),
    ("c_hash", Shape::String),
];

/// Standard claims (section 5.1) that may carry a language tag (`name#fr`, section 5.2): every
/// tagged variant is parsed as the same claim, and must be a string too.
pub const LOCALIZED_CLAIMS: [&str; 8] = [
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "profile",
    "picture",
    "website",
];

/// The other standard claims (section 5.1), which take no language tag: the parser refuses
/// `email#en` outright. `birthday` is not in the standard, but the parser types it like
/// `birthdate`.
const USER_CLAIMS: [(&str, Shape); 13] = [
    ("sub", Shape::String),
    ("preferred_username", Shape::String),
    ("email", Shape::String),
    ("email_verified", Shape::Boolean),
    ("gender", Shape::String),
    ("birthdate", Shape::String),
    ("birthday", Shape::String),
    ("zoneinfo", Shape::String),
    ("locale", Shape::String),
    ("phone_number", Shape::String),
    ("phone_number_verified", Shape::Boolean),
    ("address", Shape::Address),
    ("updated_at", Shape::NumericDate),
];

/// Refuses every claim in `claims` that an OpenID Connect parser would refuse: see
/// [`check_standard_claim`].
pub fn check_standard_claims(claims: &Map<String, Value>) -> Result<()> {
    claims
        .iter()
        .try_for_each(|(name, value)| check_standard_claim(name, value))
}

/// Refuses a claim named like an OpenID Connect standard claim whose value an OIDC parser would
/// refuse: a wrong JSON type, a language tag on a claim that takes none, or an empty language
/// tag (`name#`, which parsers read as `name`). Other names pass.
pub fn check_standard_claim(name: &str, value: &Value) -> Result<()> {
    let refuse = |problem: String| {
        Err(Error::StandardClaim {
            claim: name.to_owned(),
            problem,
        })
    };
    if let Some((_, shape)) = ID_TOKEN_CLAIMS.iter().find(|(n, _)| *n == name) {
        return match shape.mismatch(value) {
            Some(found) => refuse(format!("must be {}, not {found}", shape.requirement())),
            None => Ok(()),
        };
    }
    let (base, tag) = match name.split_once('#') {
        Some((base, tag)) => (base, Some(tag)),
        None => (name, None),
    };
    let shape = if LOCALIZED_CLAIMS.contains(&base) {
        Shape::String
    } else if let Some((_, shape)) = USER_CLAIMS.iter().find(|(n, _)| *n == base) {
        if tag.is_some_and(|t| !t.is_empty()) {
            return refuse(format!(
                "takes no language tag: of the standard claims only {} do",
                LOCALIZED_CLAIMS.join(", ")
            ));
        }
        *shape
    } else {
        return Ok(());
    };
    if tag == Some("") {
        return refuse(format!(
            "has an empty language tag, which parsers read as {base:?}: write {base:?}"
        ));
    }
    match shape.mismatch(value) {
        Some(found) => refuse(format!("must be {}, not {found}", shape.requirement())),
        None => Ok(()),
    }
}

/// Standard claims with a JSON type OIDC parsers refuse, one of each kind (for tests).
#[cfg(any(test, feature = "test-util"))]
pub fn mistyped_examples() -> [(&'static str, Value); 6] {
    [
        ("email_verified", Value::from("yes")),
        ("name", Value::from(5)),
        ("address", Value::from("1 Main St")),
        ("updated_at", Value::from("2024-01-01")),
        ("amr", Value::from("pwd")),
        ("auth_time", Value::from("soon")),
    ]
}

/// The JSON type of `value`, with its article.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(name: &str, value: Value) -> Option<String> {
        match check_standard_claim(name, &value) {
            Ok(()) => None,
            Err(Error::StandardClaim { claim, problem }) => {
                assert_eq!(claim, name);
                Some(problem)
            }
            Err(other) => panic!("{name}: unexpected error {other}"),
        }
    }

    #[test]
    fn every_standard_claim_refuses_every_other_json_type() {
        let samples = [
            json!(null),
            json!(true),
            json!(1_700_000_000),
            json!("text"),
            json!(["text"]),
            json!({"formatted": "text"}),
        ];
        let expect = |shape: Shape| -> &'static [usize] {
            match shape {
                Shape::String => &[3],
                Shape::Boolean => &[1],
                Shape::NumericDate => &[2],
                Shape::StringArray => &[4],
                Shape::Address => &[5],
            }
        };
        let every = ID_TOKEN_CLAIMS
            .iter()
            .chain(&USER_CLAIMS)
            .copied()
            .chain(LOCALIZED_CLAIMS.iter().map(|n| (*n, Shape::String)))
            .chain(LOCALIZED_CLAIMS.iter().map(|n| (*n, Shape::String)));
        let mut checked = 0;
        for (i, (base, shape)) in every.enumerate() {
            // The second pass over the localized claims uses a language tag.
            let name = if i >= ID_TOKEN_CLAIMS.len() + USER_CLAIMS.len() + LOCALIZED_CLAIMS.len() {
                format!("{base}#fr-CA")
            } else {
                base.to_owned()
            };
            for (j, sample) in samples.iter().enumerate() {
                let refused = problem(&name, sample.clone());
                assert_eq!(
                    refused.is_none(),
                    expect(shape).contains(&j),
                    "{name} = {sample}: {refused:?}"
                );
                if let Some(p) = refused {
                    assert!(p.starts_with(&format!("must be {}, not ", shape.requirement())));
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 6 * (7 + 13 + 8 + 8));
    }

    #[test]
    fn messages_name_the_required_and_the_given_type() {
        let err = check_standard_claim("email_verified", &json!("yes")).expect_err("string");
        let text = err.to_string();
        assert!(
            text.starts_with("claim \"email_verified\" must be a boolean, not a string"),
            "{text}"
        );
        assert!(text.contains("convex-oidc"), "{text}");
        for (name, value, found) in [
            ("name", json!(5), "must be a string, not a number"),
            (
                "address",
                json!("1 Main St"),
                "must be an object whose members are strings, not a string",
            ),
            (
                "address",
                json!({"formatted": "1 Main St", "postal_code": 12345}),
                "not an object whose member \"postal_code\" is a number",
            ),
            (
                "updated_at",
                json!("2024-01-01"),
                "must be a number of whole seconds since 1970 (a NumericDate), not a string",
            ),
            ("updated_at", json!(1.5), "not a fractional number"),
            ("auth_time", json!(-1), "not a date before 1970"),
            ("auth_time", json!(-1.0), "not a date before 1970"),
            (
                "auth_time",
                json!(253_402_300_800u64),
                "not a date after the year 9999",
            ),
            ("auth_time", json!(2.6e11), "not a date after the year 9999"),
            (
                "auth_time",
                json!(u64::MAX),
                "not a date after the year 9999",
            ),
            ("auth_time", json!("soon"), "not a string"),
            (
                "amr",
                json!("pwd"),
                "must be an array of strings, not a string",
            ),
            ("amr", json!(["pwd", 2]), "not an array holding a number"),
            ("nonce", json!(null), "must be a string, not null"),
            ("email#en", json!("a@b"), "takes no language tag"),
            ("sub#x", json!("a"), "takes no language tag"),
            ("name#", json!("Ada"), "write \"name\""),
            ("email#", json!("a@b"), "write \"email\""),
            (
                "website#de",
                json!(["https://a"]),
                "must be a string, not an array",
            ),
        ] {
            let p = problem(name, value).unwrap_or_else(|| panic!("{name} accepted"));
            assert!(p.contains(found), "{name}: {p}");
        }
    }

    #[test]
    fn well_typed_and_unrelated_claims_pass() {
        let fine = json!({
            "name": "Ada", "name#en-GB": "Ada", "given_name": "Ada", "middle_name": "King",
            "picture": "https://p.example/a.png", "website#fr": "https://a.example",
            "email": "ada@example.com", "email_verified": true, "phone_number_verified": false,
            "address": {"formatted": "1 Main St", "country": "UK"},
            "updated_at": 1_700_000_000.0, "auth_time": 0, "amr": ["pwd", "otp"], "amr#x": 1,
            "acr": "urn:mace:incommon:iap:silver", "azp": "worker", "nonce": "n",
            "at_hash": "x", "c_hash": "y", "acr#en": 5,
            "team": "payments", "svc": {"tier": 2}, "roles": ["a"], "weight": 1.5, "x": null,
            "emailVerified": "yes",
        });
        check_standard_claims(fine.as_object().expect("object")).expect("accepted");
    }
}
