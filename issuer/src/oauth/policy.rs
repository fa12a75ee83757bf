//! What an authenticated client may have: its audience, its scopes, the subjects it may act
//! for. Pure functions of the client and the request.

use svctoken_jwks::Algorithm;

use super::RefusalReason;
use crate::Audience;
use crate::clients::Client;

/// The audience the token is for: the one asked for if it is the client's and known, or the
/// client's only one; with its profile's algorithms, which the signing key must use.
pub(crate) fn audience<'a>(
    client: &'a Client,
    known: &'a [Audience],
    asked: Option<&str>,
) -> Result<(&'a str, &'static [Algorithm]), RefusalReason> {
    let name = match (asked, client.audiences.as_slice()) {
        (_, []) => return Err(RefusalReason::NoAudience),
        (None, [only]) => only.as_str(),
        (None, _) => return Err(RefusalReason::AudienceRequired),
        (Some(name), own) => own
            .iter()
            .find(|a| *a == name)
            .ok_or(RefusalReason::AudienceNotAllowed)?,
    };
    let audience = known
        .iter()
        .find(|a| a.name == name)
        .ok_or(RefusalReason::AudienceNotAllowed)?;
    Ok((name, audience.profile.algorithms()))
}

/// The scopes granted: all of the client's when none are asked for, else those asked for
/// (each must be the client's; duplicates collapse). `None` when there are none.
pub(crate) fn scope(client: &Client, asked: Option<&str>) -> Result<Option<String>, RefusalReason> {
    let Some(text) = asked else {
        return Ok((!client.scopes.is_empty()).then(|| client.scopes.join(" ")));
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in text.split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|own| own == s) {
            return Err(RefusalReason::ScopeNotGranted);
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// Refuses acting for `subject` unless the client's `act_as` patterns allow it.
pub(crate) fn act_as(client: &Client, subject: &str) -> Result<(), RefusalReason> {
    if client.may_act_as(subject) {
        Ok(())
    } else {
        Err(RefusalReason::ActAsNotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;
    use crate::clients::ClientAuth;

    fn client(audiences: &[&str], scopes: &[&str]) -> Client {
        Client {
            id: "c".into(),
            auth: ClientAuth::Keys(svctoken_jwks::Jwks { keys: vec![] }),
            subject: "svc:c".into(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            max_ttl: std::time::Duration::from_secs(60),
            claims: serde_json::Map::new(),
            act_as: vec!["user:*".into()],
        }
    }

    #[test]
    fn audience_rules() {
        let known = [
            Audience {
                name: "convex".into(),
                profile: Profile::ConvexCustomJwt,
            },
            Audience {
                name: "reports".into(),
                profile: Profile::ConvexOidc,
            },
        ];
        let one = client(&["convex"], &[]);
        let two = client(&["convex", "reports"], &[]);
        let ghost = client(&["gone"], &[]);
        assert_eq!(audience(&one, &known, None).map(|a| a.0), Ok("convex"));
        assert_eq!(
            audience(&two, &known, Some("reports")).map(|a| a.0),
            Ok("reports")
        );
        assert_eq!(
            audience(&two, &known, Some("reports")).map(|a| a.1),
            Ok(Profile::ConvexOidc.algorithms())
        );
        assert_eq!(
            audience(&two, &known, None),
            Err(RefusalReason::AudienceRequired)
        );
        assert_eq!(
            audience(&one, &known, Some("reports")),
            Err(RefusalReason::AudienceNotAllowed)
        );
        assert_eq!(
            audience(&ghost, &known, None),
            Err(RefusalReason::AudienceNotAllowed)
        );
        assert_eq!(
            audience(&client(&[], &[]), &known, None),
            Err(RefusalReason::NoAudience)
        );
    }

    #[test]
    fn scope_rules() {
        let c = client(&["convex"], &["a", "b"]);
        assert_eq!(scope(&c, None), Ok(Some("a b".into())));
        assert_eq!(scope(&c, Some("b b")), Ok(Some("b".into())));
        assert_eq!(scope(&c, Some("a c")), Err(RefusalReason::ScopeNotGranted));
        assert_eq!(scope(&client(&["convex"], &[]), None), Ok(None));
        assert_eq!(act_as(&c, "user:1"), Ok(()));
        assert_eq!(act_as(&c, "admin:1"), Err(RefusalReason::ActAsNotAllowed));
    }
}
