//! Counters served at `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use svctoken_mint::oauth::ErrorCode;

const ERROR_CODES: [ErrorCode; 8] = [
    ErrorCode::InvalidRequest,
    ErrorCode::InvalidClient,
    ErrorCode::UnauthorizedClient,
    ErrorCode::UnsupportedGrantType,
    ErrorCode::InvalidScope,
    ErrorCode::InvalidTarget,
    ErrorCode::ServerError,
    ErrorCode::TemporarilyUnavailable,
];

/// The issuer's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    tokens_issued: AtomicU64,
    refusals: [AtomicU64; 8],
    rotations: AtomicU64,
    rotation_failures: AtomicU64,
    signed_past_period: AtomicU64,
    jwks_requests: AtomicU64,
}

impl Metrics {
    /// A token was issued.
    pub fn issued(&self) {
        self.tokens_issued.fetch_add(1, Relaxed);
    }

    /// A token request was refused with `code`.
    pub fn refused(&self, code: &ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| c == code) {
            self.refusals[i].fetch_add(1, Relaxed);
        }
    }

    /// A lifecycle run changed the key set.
    pub fn rotated(&self) {
        self.rotations.fetch_add(1, Relaxed);
    }

    /// A lifecycle run failed (the current key keeps signing).
    pub fn rotation_failed(&self) {
        self.rotation_failures.fetch_add(1, Relaxed);
    }

    /// A failed lifecycle run found the signing key signing past its period.
    pub fn signed_past_period(&self) {
        self.signed_past_period.fetch_add(1, Relaxed);
    }

    /// The number of failed lifecycle runs so far.
    pub fn rotation_failures(&self) -> u64 {
        self.rotation_failures.load(Relaxed)
    }

    /// A JWKS was served.
    pub fn jwks_served(&self) {
        self.jwks_requests.fetch_add(1, Relaxed);
    }

    /// Renders every counter, plus `key_age_seconds` of the active key and
    /// `audit_failures_total`, which the [`Auditor`](crate::audit::Auditor) counts.
    pub fn render(
        &self,
        active_key_age: u64,
        published_keys: usize,
        audit_failures: u64,
    ) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "svctoken_tokens_issued_total",
            "Tokens issued.",
            self.tokens_issued.load(Relaxed),
        );
        counter(
            "svctoken_key_rotations_total",
            "Lifecycle runs that changed the key set.",
            self.rotations.load(Relaxed),
        );
        counter(
            "svctoken_key_rotation_failures_total",
            "Lifecycle runs that failed.",
            self.rotation_failures.load(Relaxed),
        );
        counter(
            "svctoken_key_overdue_runs_total",
            "Failed lifecycle runs while the signing key signed past its period.",
            self.signed_past_period.load(Relaxed),
        );
        counter(
            "svctoken_audit_failures_total",
            "Audit events a sink failed to record, or dropped from a full queue.",
            audit_failures,
        );
        counter(
            "svctoken_jwks_requests_total",
            "JWKS documents served.",
            self.jwks_requests.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP svctoken_token_requests_refused_total Token requests refused, by OAuth error.\n\
             # TYPE svctoken_token_requests_refused_total counter"
        );
        for (code, n) in ERROR_CODES.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "svctoken_token_requests_refused_total{{error=\"{}\"}} {}",
                code.as_str(),
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP svctoken_active_key_age_seconds Age of the signing key.\n\
             # TYPE svctoken_active_key_age_seconds gauge\nsvctoken_active_key_age_seconds {active_key_age}\n\
             # HELP svctoken_published_keys Keys in the JWKS.\n\
             # TYPE svctoken_published_keys gauge\nsvctoken_published_keys {published_keys}"
        );
        out
    }
}
