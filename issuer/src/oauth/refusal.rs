//! Why a token request was refused ([`RefusalReason`]), and the one place a reason becomes its
//! wire answer ([`OAuthError`]: code, status, description). No reason holds text the caller
//! sent, so neither the answer nor the log nor the audit trail can echo a credential.

use std::fmt;

use svctoken_mint::oauth::ErrorCode;

/// Why a token request was refused. The `Display` text is what the log and the audit trail
/// record; the caller hears only the [`OAuthError`] the reason maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The body could not be read, or is over the 64 KiB limit (413).
    BodyUnreadable {
        /// The HTTP status: 413 over the limit, else 400.
        status: u16,
    },
    /// The request URI has a query string: parameters, and above all credentials, belong in
    /// the body (RFC 6749 sections 2.3.1 and 3.2), where no access log records them.
    QueryString,
    /// A header that must appear at most once (`Authorization`, `Content-Type`) appears
    /// more than once.
    RepeatedHeader(&'static str),
    /// The body is not `application/x-www-form-urlencoded`.
    NotAForm,
    /// The body or a parameter is not UTF-8.
    NotUtf8,
    /// A parameter appears twice.
    RepeatedParameter(&'static str),
    /// No `grant_type`.
    MissingGrantType,
    /// A `grant_type` other than client credentials or token exchange.
    UnsupportedGrantType,
    /// `subject` breaks the subject rules (length, control and bidirectional formatting
    /// characters).
    InvalidSubject,
    /// Token exchange without `subject_token`.
    MissingSubjectToken,
    /// Token exchange with a `subject_token_type` other than a JWT, access or ID token.
    SubjectTokenType,
    /// Token exchange asking for something other than an access token.
    RequestedTokenType,
    /// Token exchange with an `actor_token`: the authenticated client is the actor.
    ActorTokenUnsupported,
    /// No client authentication at all.
    NoClientAuthentication,
    /// A `client_id` in the body with no secret.
    NoSecret,
    /// An `Authorization` header that is not a well-formed `Basic` one.
    MalformedBasic,
    /// Two authentication methods at once.
    TwoAuthMethods,
    /// `client_id` in the body differs from the one authenticated.
    ClientIdMismatch,
    /// A `client_assertion_type` other than `jwt-bearer`.
    AssertionType,
    /// `client_assertion` without its type, or the type without an assertion.
    AssertionIncomplete,
    /// No client has the id presented.
    UnknownClient,
    /// The secret does not match.
    WrongSecret,
    /// A client registered with keys sent a secret.
    NotASecretClient,
    /// A client registered with a secret sent an assertion.
    NotAKeyClient,
    /// The client assertion failed a check.
    Assertion(AssertionFailure),
    /// The client is over its rate limit.
    RateLimited {
        /// Seconds until a request would be accepted (at least 1).
        retry_after: u64,
    },
    /// The client may not obtain tokens for any audience.
    NoAudience,
    /// The client has several audiences and named none.
    AudienceRequired,
    /// The audience asked for is unknown or not the client's.
    AudienceNotAllowed,
    /// A scope asked for is not the client's.
    ScopeNotGranted,
    /// The client may not act for that subject (`act_as`).
    ActAsNotAllowed,
    /// The subject token failed verification or the subject rules.
    SubjectToken(SubjectTokenFailure),
    /// The active key's algorithm is not one the audience verifies (an algorithm change is
    /// under way).
    AlgorithmChanging,
    /// Signing failed.
    SigningFailed,
    /// The audit trail is fail-closed and could not record the issuance.
    AuditFailed,
    /// The replay cache replicas share could not be reached: a `private_key_jwt` assertion
    /// can't be checked for replay, so it is refused (fail closed).
    ReplayCacheUnavailable,
    /// This replica may not sign now: its first key is not yet in every verifier's JWKS, or
    /// its lease lapsed while the database was out of reach.
    NotSigning,
}

/// Why a client assertion was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionFailure {
    /// It names no client (no `client_id`, and no readable `sub`).
    NoClient,
    /// `client_id` and the assertion's `sub` differ.
    ClientMismatch,
    /// The signature, algorithm, key, dates, `iss` or `aud` failed.
    Jose(JoseFailure),
    /// `sub` is not the client id.
    SubjectNotClient,
    /// `exp` is more than 5 minutes ahead.
    TooLong,
    /// No usable `jti`.
    NoJti,
    /// The `jti` was used before.
    Replay,
}

/// Why a subject token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectTokenFailure {
    /// Not a readable JWT.
    Unreadable,
    /// Its `iss` is not a trusted issuer.
    UntrustedIssuer,
    /// The trusted issuer's keys could not be fetched.
    KeysUnavailable,
    /// The signature, algorithm, key, dates, `iss` or `aud` failed.
    Jose(JoseFailure),
    /// `sub` is missing or breaks the subject rules.
    BadSubject,
    /// `act` is not a valid chain of actors.
    BadActor,
    /// The chain of actors would be too long.
    ActorChainTooLong,
}

/// A JWS verification failure, without the values the token carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoseFailure {
    /// Not a compact JWS of JSON objects.
    Malformed,
    /// An algorithm that is not supported, or not the one pinned to the key.
    Algorithm,
    /// A critical header parameter.
    Critical,
    /// A header parameter that is refused (`b64`, `cty`, `enc`, `zip`).
    UnsupportedHeader,
    /// No key matches the `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Expired.
    Expired,
    /// Not valid yet, or issued in the future.
    NotYetValid,
    /// Wrong issuer.
    WrongIssuer,
    /// Wrong audience.
    WrongAudience,
    /// A required claim is missing.
    MissingClaim,
    /// A claim has the wrong JSON type (an array `aud` in a client assertion included).
    InvalidClaim,
    /// A date is not an integer NumericDate in range.
    InvalidDate,
    /// Anything else.
    Other,
}

impl From<&svctoken_jwks::Error> for JoseFailure {
    fn from(e: &svctoken_jwks::Error) -> Self {
        use svctoken_jwks::Error as E;
        match e {
            E::Malformed(_) | E::Json(_) => JoseFailure::Malformed,
            E::UnsupportedAlgorithm(_) | E::AlgorithmMismatch { .. } => JoseFailure::Algorithm,
            E::UnsupportedCritical => JoseFailure::Critical,
            E::UnsupportedHeader(_) => JoseFailure::UnsupportedHeader,
            E::UnknownKey(_) => JoseFailure::UnknownKey,
            E::BadSignature => JoseFailure::BadSignature,
            E::Expired => JoseFailure::Expired,
            E::NotYetValid | E::IssuedInFuture => JoseFailure::NotYetValid,
            E::WrongIssuer => JoseFailure::WrongIssuer,
            E::WrongAudience => JoseFailure::WrongAudience,
            E::MissingClaim(_) => JoseFailure::MissingClaim,
            E::InvalidClaim(_) => JoseFailure::InvalidClaim,
            E::InvalidDate(_) => JoseFailure::InvalidDate,
            _ => JoseFailure::Other,
        }
    }
}

impl JoseFailure {
    fn as_str(self) -> &'static str {
        match self {
            JoseFailure::Malformed => "malformed",
            JoseFailure::Algorithm => "algorithm not allowed",
            JoseFailure::Critical => "critical header parameters",
            JoseFailure::UnsupportedHeader => "unsupported header parameter",
            JoseFailure::UnknownKey => "no key matches the kid",
            JoseFailure::BadSignature => "bad signature",
            JoseFailure::Expired => "expired",
            JoseFailure::NotYetValid => "not valid yet",
            JoseFailure::WrongIssuer => "wrong issuer",
            JoseFailure::WrongAudience => "wrong audience",
            JoseFailure::MissingClaim => "a required claim is missing",
            JoseFailure::InvalidClaim => "a claim has the wrong JSON type",
            JoseFailure::InvalidDate => "a date is not an integer NumericDate in range",
            JoseFailure::Other => "invalid",
        }
    }
}

/// `Retry-After` of a refusal that a retry in a moment (at another replica, or once the
/// database answers) may turn into a token.
const RETRY_SOON: std::time::Duration = std::time::Duration::from_secs(2);

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RefusalReason as R;
        let text = match self {
            R::BodyUnreadable { status: 413 } => "body over the limit",
            R::BodyUnreadable { .. } => "body unreadable",
            R::QueryString => "parameters in the query string",
            R::RepeatedHeader(name) => return write!(f, "header {name} repeated"),
            R::NotAForm => "not a form body",
            R::NotUtf8 => "not UTF-8",
            R::RepeatedParameter(name) => return write!(f, "parameter {name} repeated"),
            R::MissingGrantType => "no grant_type",
            R::UnsupportedGrantType => "unsupported grant_type",
            R::InvalidSubject => "invalid subject",
            R::MissingSubjectToken => "no subject_token",
            R::SubjectTokenType => "unsupported subject_token_type",
            R::RequestedTokenType => "unsupported requested_token_type",
            R::ActorTokenUnsupported => "actor_token sent",
            R::NoClientAuthentication => "no client authentication",
            R::NoSecret => "client_id without secret",
            R::MalformedBasic => "malformed Basic header",
            R::TwoAuthMethods => "two authentication methods",
            R::ClientIdMismatch => "client_id mismatch",
            R::AssertionType => "unsupported client_assertion_type",
            R::AssertionIncomplete => "client_assertion and client_assertion_type go together",
            R::UnknownClient => "unknown client",
            R::WrongSecret => "wrong secret",
            R::NotASecretClient => "a key-registered client sent a secret",
            R::NotAKeyClient => "a secret client sent an assertion",
            R::Assertion(why) => return write!(f, "assertion: {}", why.as_str()),
            R::RateLimited { .. } => "rate limited",
            R::NoAudience => "no audience for this client",
            R::AudienceRequired => "audience required",
            R::AudienceNotAllowed => "audience not allowed",
            R::ScopeNotGranted => "scope not granted",
            R::ActAsNotAllowed => "act_as does not allow the subject",
            R::SubjectToken(why) => return write!(f, "subject_token: {}", why.as_str()),
            R::AlgorithmChanging => "the active key's algorithm is not the audience's",
            R::SigningFailed => "signing failed",
            R::AuditFailed => "the audit trail could not record the issuance",
            R::ReplayCacheUnavailable => "the shared replay cache could not be reached",
            R::NotSigning => {
                "this replica may not sign now (its key is not yet published long enough, or its lease lapsed)"
            }
        };
        f.write_str(text)
    }
}

impl AssertionFailure {
    fn as_str(self) -> &'static str {
        match self {
            AssertionFailure::NoClient => "names no client",
            AssertionFailure::ClientMismatch => "client_id differs from the assertion's sub",
            AssertionFailure::Jose(j) => j.as_str(),
            AssertionFailure::SubjectNotClient => "sub is not the client id",
            AssertionFailure::TooLong => "exp is more than 5 minutes ahead",
            AssertionFailure::NoJti => "no usable jti",
            AssertionFailure::Replay => "jti already used (replay)",
        }
    }
}

impl SubjectTokenFailure {
    fn as_str(self) -> &'static str {
        match self {
            SubjectTokenFailure::Unreadable => "unreadable",
            SubjectTokenFailure::UntrustedIssuer => "untrusted issuer",
            SubjectTokenFailure::KeysUnavailable => "the issuer's keys could not be fetched",
            SubjectTokenFailure::Jose(j) => j.as_str(),
            SubjectTokenFailure::BadSubject => "sub missing or invalid",
            SubjectTokenFailure::BadActor => "act is not a chain of actors",
            SubjectTokenFailure::ActorChainTooLong => "the chain of actors is too long",
        }
    }
}

/// The answer to a refused request (RFC 6749 section 5.2): `{"error", "error_description"}`
/// sent with `status`, and `Retry-After` when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// A fixed description for the developer.
    pub description: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl From<RefusalReason> for OAuthError {
    /// The one mapping from a reason to its wire answer.
    fn from(reason: RefusalReason) -> Self {
        use ErrorCode as C;
        use RefusalReason as R;
        let (code, description) = match reason {
            R::BodyUnreadable { .. } => (
                C::InvalidRequest,
                "the request body could not be read (limit 64 KiB)",
            ),
            R::QueryString => (
                C::InvalidRequest,
                "send the parameters in the form body, not the query string",
            ),
            R::RepeatedHeader(_) => (
                C::InvalidRequest,
                "send the Authorization and Content-Type headers at most once each",
            ),
            R::NotAForm => (
                C::InvalidRequest,
                "the body must be application/x-www-form-urlencoded",
            ),
            R::NotUtf8 => (C::InvalidRequest, "the body is not valid UTF-8"),
            R::RepeatedParameter(_) => (C::InvalidRequest, "a parameter is repeated"),
            R::MissingGrantType => (C::InvalidRequest, "grant_type is required"),
            R::UnsupportedGrantType => (
                C::UnsupportedGrantType,
                "grant_type must be client_credentials or urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            R::InvalidSubject => (
                C::InvalidRequest,
                "subject must be 1 to 256 bytes without control or bidirectional formatting characters",
            ),
            R::MissingSubjectToken => (C::InvalidRequest, "subject_token is required"),
            R::SubjectTokenType => (
                C::InvalidRequest,
                "subject_token_type must be urn:ietf:params:oauth:token-type:jwt (or access_token, id_token)",
            ),
            R::RequestedTokenType => (C::InvalidRequest, "only access tokens (JWTs) are issued"),
            R::ActorTokenUnsupported => (
                C::InvalidRequest,
                "actor_token is not supported: the authenticated client is the actor",
            ),
            R::TwoAuthMethods => (
                C::InvalidRequest,
                "use one client authentication method, not two",
            ),
            R::ClientIdMismatch => (C::InvalidRequest, "client_id differs from the Basic header"),
            R::NoClientAuthentication
            | R::NoSecret
            | R::MalformedBasic
            | R::AssertionType
            | R::AssertionIncomplete
            | R::UnknownClient
            | R::WrongSecret
            | R::NotASecretClient
            | R::NotAKeyClient
            | R::Assertion(_) => (C::InvalidClient, "client authentication failed"),
            R::RateLimited { .. } => (
                C::TemporarilyUnavailable,
                "too many token requests from this client; retry later",
            ),
            R::NoAudience => (
                C::UnauthorizedClient,
                "this client may not obtain tokens for any audience",
            ),
            R::AudienceRequired => (
                C::InvalidRequest,
                "audience is required: this client may use several",
            ),
            R::AudienceNotAllowed => (
                C::InvalidTarget,
                "the audience is not available to this client",
            ),
            R::ScopeNotGranted => (
                C::InvalidScope,
                "a requested scope is not granted to this client",
            ),
            R::ActAsNotAllowed => (
                C::UnauthorizedClient,
                "this client may not act on behalf of that subject",
            ),
            R::SubjectToken(SubjectTokenFailure::ActorChainTooLong) => (
                C::InvalidRequest,
                "the subject_token's chain of actors is too long",
            ),
            // Not the token's fault: RFC 8693's invalid_request would tell the client to give
            // up on a token that may be valid; a 503 tells it (and svctoken-client) to retry.
            R::SubjectToken(SubjectTokenFailure::KeysUnavailable) => (
                C::TemporarilyUnavailable,
                "the keys of the subject_token's issuer could not be fetched; retry later",
            ),
            R::SubjectToken(_) => (C::InvalidRequest, "the subject_token is not acceptable"),
            R::AlgorithmChanging => (
                C::TemporarilyUnavailable,
                "the signing key is being replaced by one this audience can verify; retry in a few minutes",
            ),
            R::SigningFailed => (C::ServerError, "the token could not be signed"),
            R::AuditFailed => (C::ServerError, "the issuance could not be recorded"),
            R::ReplayCacheUnavailable => (
                C::TemporarilyUnavailable,
                "client assertions can't be checked right now; retry shortly",
            ),
            R::NotSigning => (
                C::TemporarilyUnavailable,
                "this issuer replica can't sign right now; retry shortly",
            ),
        };
        let status = match (reason, &code) {
            (R::BodyUnreadable { status }, _) => status,
            (R::RateLimited { .. }, _) => 429,
            (_, C::InvalidClient) => 401,
            (_, C::ServerError) => 500,
            (_, C::TemporarilyUnavailable) => 503,
            _ => 400,
        };
        let retry_after = match reason {
            R::RateLimited { retry_after } => Some(retry_after),
            R::SubjectToken(SubjectTokenFailure::KeysUnavailable) => {
                Some(super::trusted::FETCH_RETRY_AFTER.as_secs())
            }
            R::ReplayCacheUnavailable | R::NotSigning => Some(RETRY_SOON.as_secs()),
            _ => None,
        };
        OAuthError {
            code,
            description,
            status,
            retry_after,
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_authentication_failure_looks_the_same_to_the_caller() {
        let same = OAuthError::from(RefusalReason::WrongSecret);
        for reason in [
            RefusalReason::UnknownClient,
            RefusalReason::NotASecretClient,
            RefusalReason::MalformedBasic,
            RefusalReason::Assertion(AssertionFailure::Replay),
            RefusalReason::Assertion(AssertionFailure::Jose(JoseFailure::Expired)),
        ] {
            assert_eq!(OAuthError::from(reason), same, "{reason}");
        }
        assert_eq!((same.code, same.status), (ErrorCode::InvalidClient, 401));
    }

    #[test]
    fn statuses() {
        let limited = OAuthError::from(RefusalReason::RateLimited { retry_after: 3 });
        assert_eq!((limited.status, limited.retry_after), (429, Some(3)));
        assert_eq!(
            OAuthError::from(RefusalReason::BodyUnreadable { status: 413 }).status,
            413
        );
        assert_eq!(
            OAuthError::from(RefusalReason::AlgorithmChanging).status,
            503
        );
        assert_eq!(OAuthError::from(RefusalReason::AuditFailed).status, 500);
        let upstream_down = OAuthError::from(RefusalReason::SubjectToken(
            SubjectTokenFailure::KeysUnavailable,
        ));
        assert_eq!(
            (
                upstream_down.code,
                upstream_down.status,
                upstream_down.retry_after
            ),
            (ErrorCode::TemporarilyUnavailable, 503, Some(5))
        );
        assert_eq!(OAuthError::from(RefusalReason::ScopeNotGranted).status, 400);
        for reason in [
            RefusalReason::ReplayCacheUnavailable,
            RefusalReason::NotSigning,
        ] {
            let e = OAuthError::from(reason);
            assert_eq!(
                (e.code, e.status, e.retry_after),
                (ErrorCode::TemporarilyUnavailable, 503, Some(2)),
                "{reason}"
            );
        }
    }
}
