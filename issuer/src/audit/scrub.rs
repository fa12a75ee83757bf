//! The last guard on every string field: token-shaped substrings redacted, long values cut.

use std::borrow::Cow;

use crate::clients::SECRET_PREFIX;

/// What replaces a token-shaped substring of a string field.
const REDACTED: &str = "[redacted]";
/// The longest a string field is written, in bytes (longer ones are cut, at a character
/// boundary, and marked); this bounds a line to well under the longest line verification
/// accepts.
pub(super) const MAX_FIELD: usize = 1024;
/// What marks a string field that was cut.
pub(super) const TRUNCATED: &str = "…[truncated]";

/// `text` scrubbed of token-shaped substrings, then cut to [`MAX_FIELD`] bytes.
pub(super) fn clean(text: &str) -> Cow<'_, str> {
    let scrubbed = scrub(text);
    if scrubbed.len() <= MAX_FIELD {
        return scrubbed;
    }
    let mut end = MAX_FIELD;
    while !scrubbed.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = scrubbed.get(..end).unwrap_or_default().to_owned();
    out.push_str(TRUNCATED);
    Cow::Owned(out)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Where a compact JWS/JWE starting at `start` (at an `eyJ`) ends, if it is one: base64url
/// segments joined by at least two dots.
fn compact_jose_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    let skip_segment = |mut at: usize| {
        while bytes.get(at).is_some_and(|&b| is_base64url(b)) {
            at += 1;
        }
        at
    };
    at = skip_segment(at);
    let mut dots = 0;
    while bytes.get(at) == Some(&b'.') {
        dots += 1;
        at = skip_segment(at + 1);
    }
    (dots >= 2).then_some(at)
}

/// Where a client secret starting at `start` (at its [`SECRET_PREFIX`]) ends, if it is one: the
/// prefix and at least 16 base64url characters.
fn secret_end(bytes: &[u8], start: usize) -> Option<usize> {
    let body = start + SECRET_PREFIX.len();
    let mut at = body;
    while bytes.get(at).is_some_and(|&b| is_base64url(b)) {
        at += 1;
    }
    (at - body >= 16).then_some(at)
}

/// `text` with every credential-shaped substring (a compact JWS or JWE, an svctoken client
/// secret) replaced by `[redacted]`.
fn scrub(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        let end = if rest.starts_with(b"eyJ") {
            compact_jose_end(bytes, at)
        } else if rest.starts_with(SECRET_PREFIX.as_bytes()) {
            secret_end(bytes, at)
        } else {
            None
        };
        match end {
            Some(end) => {
                let out = out.get_or_insert_with(String::new);
                out.push_str(text.get(copied..at).unwrap_or_default());
                out.push_str(REDACTED);
                copied = end;
                at = end;
            }
            None => at += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(text.get(copied..).unwrap_or_default());
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::{AuditEvent, StdoutSink};
    use svctoken_mint::Actor;

    #[test]
    fn token_shaped_strings_are_redacted() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let event = AuditEvent {
            reason: Some(format!("bad assertion {jwt}, and eyJ alone; {jwt}.")),
            sub: Some(jwt.to_owned()),
            peer: Some("10.0.0.1:1".to_owned()),
            ..AuditEvent::refused(1_793_534_400, "invalid_grant", "")
        };
        let line = StdoutSink::format_line(&event).unwrap();
        assert!(!line.contains("eyJhbGci"), "{line}");
        let back: AuditEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back.reason.as_deref(),
            Some("bad assertion [redacted], and eyJ alone; [redacted]")
        );
        assert_eq!(back.sub.as_deref(), Some("[redacted]"));
        assert_eq!(back.peer.as_deref(), Some("10.0.0.1:1"));
        assert_eq!(scrub("a.b.c eyJx.y"), "a.b.c eyJx.y");
        // A five-part JWE goes whole.
        assert_eq!(scrub("x eyJa.b.c.d.e y"), "x [redacted] y");
        // A client secret too, wherever it appears; a short `sts_` word is left alone.
        let secret = crate::clients::generate_secret().unwrap();
        assert_eq!(
            scrub(&format!("subject={}&x", secret.as_str())),
            "subject=[redacted]&x"
        );
        assert_eq!(scrub("sts_short é"), "sts_short é");
    }

    #[test]
    fn long_fields_are_cut() {
        let event = AuditEvent {
            client_id: Some("é".repeat(5000)),
            act: Some(Actor::new("x".repeat(5000))),
            ..AuditEvent::refused(1_793_534_400, "invalid_client", "unknown client")
        };
        let back: AuditEvent =
            serde_json::from_str(&StdoutSink::format_line(&event).unwrap()).unwrap();
        let client_id = back.client_id.unwrap();
        assert!(client_id.ends_with(TRUNCATED));
        assert_eq!(client_id.len(), MAX_FIELD + TRUNCATED.len());
        assert_eq!(back.act.unwrap().sub.len(), MAX_FIELD + TRUNCATED.len());
    }
}
