//! The issuer's metrics, served by the admin listener at `/metrics` in the Prometheus text
//! format (version 0.0.4) through the Prometheus project's client, `prometheus-client`.
//!
//! Every label set is bounded: `client` is one of the configured client ids or `unknown`
//! (anything else a caller claims), `error` one of the OAuth codes the token endpoint sends,
//! and the other labels are fixed words. Every series of a client is created when the issuer
//! opens, so the token path only looks a client up and increments: it never allocates.
//! `docs/operations.md` describes each metric and alerts on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use svctoken_mint::oauth::ErrorCode;

use crate::audit::ChangedBy;
use crate::keyring::Published;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `client` label of a token request whose client is not in the registry (or unnamed).
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The codes the token endpoint answers with, in the order of [`ClientCounters::refused`].
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

/// Bounds of the latency histograms, in seconds: 50 µs to 5 s, three a decade.
const SECONDS_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

/// A histogram of durations in seconds.
fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

/// How a token request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// A token was sent.
    Issued,
    /// An OAuth error was sent.
    Refused,
}

/// Which JWKS route was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwksRoute {
    /// `/.well-known/jwks.json`: every published key.
    All,
    /// `/audiences/{audience}/jwks.json`: the keys an audience's profile can parse.
    Audience,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabel {
    client: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    client: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByLabel {
    by: String,
}

/// One client's counters: handles on its series, shared with the registry.
#[derive(Debug)]
struct ClientCounters {
    issued: Counter,
    /// Per code of [`ERROR_CODES`].
    refused: [Counter; 8],
}

impl ClientCounters {
    fn new(
        client: &str,
        issued: &Family<ClientLabel, Counter>,
        refused: &Family<RefusalLabels, Counter>,
    ) -> Self {
        let client = client.to_owned();
        let refused = ERROR_CODES.each_ref().map(|code| {
            refused.get_or_create_owned(&RefusalLabels {
                client: client.clone(),
                error: code.as_str().to_owned(),
            })
        });
        ClientCounters {
            issued: issued.get_or_create_owned(&ClientLabel { client }),
            refused,
        }
    }
}

/// One client's counters, looked up once ([`Metrics::client`]).
#[derive(Clone, Debug)]
pub struct ClientMetrics(Arc<ClientCounters>);

impl ClientMetrics {
    /// A token was issued to the client.
    pub fn issued(self) {
        self.0.issued.inc();
    }

    /// A token request of the client was refused with `code`.
    pub fn refused(self, code: &ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| c == code) {
            self.0.refused[i].inc();
        }
    }
}

/// The audit trail's metrics, kept by the [`Auditor`](crate::audit::Auditor) and registered
/// by [`Metrics`]. Cheap to clone: clones share their values.
#[derive(Clone, Debug)]
pub(crate) struct AuditMetrics {
    failures: Counter,
    batch_size: Histogram,
    sync_seconds: Histogram,
}

impl Default for AuditMetrics {
    fn default() -> Self {
        AuditMetrics {
            failures: Counter::default(),
            // 1 to 4096 events (the queue's capacity).
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            sync_seconds: seconds_histogram(),
        }
    }
}

impl AuditMetrics {
    /// `events` events failed to be recorded in a sink, or were dropped.
    pub(crate) fn failed(&self, events: u64) {
        self.failures.inc_by(events);
    }

    /// A batch of `events` events was given to every sink in `took`.
    pub(crate) fn batch(&self, events: usize, took: Duration) {
        self.batch_size.observe(events as f64);
        self.sync_seconds.observe(took.as_secs_f64());
    }

    /// The failures so far.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.get()
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "audit_failures",
            "Audit events a sink failed to record, or dropped from a full queue",
            self.failures.clone(),
        );
        registry.register(
            "audit_batch_size",
            "Events per batch the audit writer recorded",
            self.batch_size.clone(),
        );
        registry.register(
            "audit_sync_duration_seconds",
            "Time to record one audit batch in every sink (for the chained file: write, \
             fdatasync, head file)",
            self.sync_seconds.clone(),
        );
    }
}

/// The key ring as of the last scrape, set by [`Metrics::observe_keys`].
#[derive(Debug, Default)]
struct KeyGauges {
    active_age: Gauge,
    next_activation: Gauge,
    standby: Gauge,
    published: Gauge,
    can_sign: Gauge,
}

impl KeyGauges {
    fn register(&self, registry: &mut Registry) {
        let gauges = [
            (
                "active_key_age_seconds",
                "Age of the signing key (since it started signing)",
                &self.active_age,
            ),
            (
                "key_next_activation_seconds",
                "Seconds until the standby takes over (negative: overdue; 0 without a standby)",
                &self.next_activation,
            ),
            (
                "key_standby_present",
                "1 when a standby key is published, else 0",
                &self.standby,
            ),
            ("published_keys", "Keys in the JWKS", &self.published),
            (
                "key_can_sign",
                "1 when a key may sign tokens now (what /readyz answers), else 0",
                &self.can_sign,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
    }
}

/// The issuer's metrics: a registry whose every series a caller can move is created up front.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Swapped whole when a reload changes the configured clients.
    clients: ArcSwap<HashMap<Box<str>, Arc<ClientCounters>>>,
    unknown: Arc<ClientCounters>,
    issued: Family<ClientLabel, Counter>,
    refused: Family<RefusalLabels, Counter>,
    latency: [Histogram; 2],
    jwks: [Counter; 2],
    rotations: [Counter; 2],
    rotation_failures: Counter,
    signed_past_period: Counter,
    audit: AuditMetrics,
    keys: KeyGauges,
}

impl Default for Metrics {
    /// Metrics with no configured client and an audit trail of their own.
    fn default() -> Self {
        Metrics::new(std::iter::empty(), AuditMetrics::default())
    }
}

impl Metrics {
    /// Metrics for the configured `clients`, registering `audit` (the auditor's).
    pub(crate) fn new<'a>(clients: impl IntoIterator<Item = &'a str>, audit: AuditMetrics) -> Self {
        let mut registry = Registry::with_prefix("svctoken");
        let issued = Family::<ClientLabel, Counter>::default();
        let refused = Family::<RefusalLabels, Counter>::default();
        let clients = clients
            .into_iter()
            .map(|id| {
                (
                    id.into(),
                    Arc::new(ClientCounters::new(id, &issued, &refused)),
                )
            })
            .collect();
        let unknown = Arc::new(ClientCounters::new(UNKNOWN_CLIENT, &issued, &refused));
        registry.register("tokens_issued", "Tokens issued, by client", issued.clone());
        registry.register(
            "token_requests_refused",
            "Token requests refused, by client and OAuth error",
            refused.clone(),
        );
        let metrics = Metrics {
            latency: Self::latency(&mut registry),
            jwks: Self::labelled(
                &mut registry,
                "jwks_requests",
                "JWKS documents served, by route",
                ["all", "audience"],
                |route| RouteLabel { route },
            ),
            rotations: Self::labelled(
                &mut registry,
                "key_rotations",
                "Changes of the key set: by the issuer's timer, or by a command (svctoken keys \
                 rotate or revoke) the issuer noticed",
                ["timer", "cli"],
                |by| ByLabel { by },
            ),
            rotation_failures: Counter::default(),
            signed_past_period: Counter::default(),
            registry,
            clients: ArcSwap::from_pointee(clients),
            unknown,
            issued,
            refused,
            audit,
            keys: KeyGauges::default(),
        };
        metrics.register_rest()
    }

    fn latency(registry: &mut Registry) -> [Histogram; 2] {
        let family = Family::<OutcomeLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds_histogram,
        );
        let handles = ["issued", "refused"].map(|outcome| {
            family.get_or_create_owned(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
        });
        registry.register(
            "token_request_duration_seconds",
            "Time from a token request's headers to its answer, by outcome",
            family,
        );
        handles
    }

    /// A counter family with one label whose two values are created at once.
    fn labelled<L>(
        registry: &mut Registry,
        name: &str,
        help: &str,
        values: [&str; 2],
        label: impl Fn(String) -> L,
    ) -> [Counter; 2]
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<L, Counter>::default();
        let handles = values.map(|v| family.get_or_create_owned(&label(v.to_owned())));
        registry.register(name, help, family);
        handles
    }

    fn register_rest(mut self) -> Self {
        self.registry.register(
            "key_rotation_failures",
            "Lifecycle runs that failed",
            self.rotation_failures.clone(),
        );
        self.registry.register(
            "key_overdue_runs",
            "Failed lifecycle runs while the signing key signed past its period",
            self.signed_past_period.clone(),
        );
        self.audit.register(&mut self.registry);
        self.keys.register(&mut self.registry);
        self
    }

    /// The counters of `client_id` (as claimed, if any), or of [`UNKNOWN_CLIENT`] when it is
    /// not a configured client.
    pub fn client(&self, client_id: Option<&str>) -> ClientMetrics {
        let clients = self.clients.load();
        ClientMetrics(Arc::clone(
            client_id
                .and_then(|id| clients.get(id))
                .unwrap_or(&self.unknown),
        ))
    }

    /// The configured clients are now `clients` (a reload): each gets its series (a removed
    /// client's stay at their counts, as Prometheus expects of a counter).
    pub(crate) fn set_clients<'a>(&self, clients: impl IntoIterator<Item = &'a str>) {
        let current = self.clients.load();
        let next = clients
            .into_iter()
            .map(|id| {
                let counters = current.get(id).cloned().unwrap_or_else(|| {
                    Arc::new(ClientCounters::new(id, &self.issued, &self.refused))
                });
                (Box::<str>::from(id), counters)
            })
            .collect();
        self.clients.store(Arc::new(next));
    }

    /// A token was issued to `client_id`.
    pub fn issued(&self, client_id: &str) {
        self.client(Some(client_id)).issued();
    }

    /// A token request of `client_id` (as claimed, if any) was refused with `code`.
    pub fn refused(&self, client_id: Option<&str>, code: &ErrorCode) {
        self.client(client_id).refused(code);
    }

    /// A token request ended with `outcome` after `took`.
    pub fn token_request(&self, outcome: TokenOutcome, took: Duration) {
        let i = match outcome {
            TokenOutcome::Issued => 0,
            TokenOutcome::Refused => 1,
        };
        self.latency[i].observe(took.as_secs_f64());
    }

    /// The key set changed `times` times, `by` the timer or a command.
    pub fn rotated(&self, by: ChangedBy, times: u64) {
        let i = match by {
            ChangedBy::Timer => 0,
            ChangedBy::Cli => 1,
        };
        self.rotations[i].inc_by(times);
    }

    /// A lifecycle run failed (the current key keeps signing).
    pub fn rotation_failed(&self) {
        self.rotation_failures.inc();
    }

    /// A failed lifecycle run found the signing key signing past its period.
    pub fn signed_past_period(&self) {
        self.signed_past_period.inc();
    }

    /// The number of failed lifecycle runs so far.
    pub fn rotation_failures(&self) -> u64 {
        self.rotation_failures.get()
    }

    /// The tokens issued so far, to every configured client (and to none).
    pub fn tokens_issued(&self) -> u64 {
        self.clients
            .load()
            .values()
            .chain([&self.unknown])
            .map(|c| c.issued.get())
            .sum()
    }

    /// A JWKS was served on `route`.
    pub fn jwks_served(&self, route: JwksRoute) {
        let i = match route {
            JwksRoute::All => 0,
            JwksRoute::Audience => 1,
        };
        self.jwks[i].inc();
    }

    /// Sets the key gauges from what is `published` at `now`, and whether a key `can_sign`.
    pub fn observe_keys(&self, published: &Published, can_sign: bool, now: u64) {
        let set = &published.set;
        let age = set
            .active()
            .and_then(|k| k.state.activated_at())
            .map_or(0, |at| now.saturating_sub(at));
        let next = set.prepared().and_then(|k| match k.state {
            crate::store::KeyState::Prepared { activate_at } => Some(activate_at),
            _ => None,
        });
        let next = next.map_or(0, |at| signed(at) - signed(now));
        let g = &self.keys;
        g.active_age.set(signed(age));
        g.next_activation.set(next);
        g.standby.set(i64::from(set.prepared().is_some()));
        g.published
            .set(i64::try_from(published.all.jwks.keys.len()).unwrap_or(i64::MAX));
        g.can_sign.set(i64::from(can_sign));
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// `u64` seconds as a gauge value.
fn signed(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `name{labels}` (labels as written, in order), if present.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Every label value of `label` in the series of `name`.
    fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
        let prefix = format!("{name}{{");
        let key = format!("{label}=\"");
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| l.split_once(&key))
            .filter_map(|(_, rest)| rest.split_once('"').map(|(v, _)| v.to_owned()))
            .collect()
    }

    fn metrics() -> Metrics {
        Metrics::new(["billing", "reports"], AuditMetrics::default())
    }

    #[test]
    fn issued_and_refused_are_counted_per_configured_client() {
        let m = metrics();
        m.issued("billing");
        m.issued("billing");
        m.refused(Some("reports"), &ErrorCode::InvalidScope);
        let text = m.render();
        let v = |s| value(&text, s);
        assert_eq!(
            v("svctoken_tokens_issued_total{client=\"billing\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("svctoken_tokens_issued_total{client=\"reports\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("svctoken_token_requests_refused_total{client=\"reports\",error=\"invalid_scope\"}"),
            Some(1.0)
        );
        assert_eq!(m.tokens_issued(), 2);
    }

    #[test]
    fn an_unknown_client_id_is_counted_as_unknown_and_adds_no_series() {
        let m = metrics();
        let before = m.render().lines().count();
        for id in ["mallory", "eve", "a\"b\nc"] {
            m.refused(Some(id), &ErrorCode::InvalidClient);
        }
        m.refused(None, &ErrorCode::InvalidRequest);
        m.issued("not-registered");
        let text = m.render();
        assert_eq!(text.lines().count(), before, "no new series");
        let name = "svctoken_token_requests_refused_total";
        let mut clients = label_values(&text, name, "client");
        clients.sort();
        clients.dedup();
        assert_eq!(clients, ["billing", "reports", "unknown"]);
        assert_eq!(
            value(
                &text,
                "svctoken_token_requests_refused_total{client=\"unknown\",error=\"invalid_client\"}"
            ),
            Some(3.0)
        );
        assert_eq!(
            value(&text, "svctoken_tokens_issued_total{client=\"unknown\"}"),
            Some(1.0)
        );
        let mut errors = label_values(&text, name, "error");
        errors.sort();
        errors.dedup();
        assert_eq!(errors.len(), ERROR_CODES.len());
    }

    #[test]
    fn latency_is_a_histogram_by_outcome() {
        let m = metrics();
        m.token_request(TokenOutcome::Issued, Duration::from_micros(300));
        m.token_request(TokenOutcome::Issued, Duration::from_millis(2));
        m.token_request(TokenOutcome::Refused, Duration::from_micros(50));
        let text = m.render();
        let name = "svctoken_token_request_duration_seconds";
        assert_eq!(
            value(&text, &format!("{name}_count{{outcome=\"issued\"}}")),
            Some(2.0)
        );
        assert_eq!(
            value(&text, &format!("{name}_count{{outcome=\"refused\"}}")),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("{name}_bucket{{outcome=\"issued\",le=\"0.0005\"}}")
            ),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains(&format!("# TYPE {name} histogram")));
    }

    #[test]
    fn counters_keep_their_names_and_take_bounded_labels() {
        let audit = AuditMetrics::default();
        let m = Metrics::new(["billing"], audit.clone());
        m.rotated(ChangedBy::Timer, 1);
        m.rotated(ChangedBy::Cli, 2);
        m.rotation_failed();
        m.signed_past_period();
        m.jwks_served(JwksRoute::All);
        m.jwks_served(JwksRoute::Audience);
        m.jwks_served(JwksRoute::Audience);
        audit.failed(3);
        audit.batch(5, Duration::from_millis(1));
        let text = m.render();
        for (series, expected) in [
            ("svctoken_key_rotations_total{by=\"timer\"}", 1.0),
            ("svctoken_key_rotations_total{by=\"cli\"}", 2.0),
            ("svctoken_key_rotation_failures_total", 1.0),
            ("svctoken_key_overdue_runs_total", 1.0),
            ("svctoken_jwks_requests_total{route=\"all\"}", 1.0),
            ("svctoken_jwks_requests_total{route=\"audience\"}", 2.0),
            ("svctoken_audit_failures_total", 3.0),
            ("svctoken_audit_batch_size_count", 1.0),
            ("svctoken_audit_batch_size_sum", 5.0),
            ("svctoken_audit_sync_duration_seconds_count", 1.0),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series}: {text}");
        }
        assert_eq!(m.rotation_failures(), 1);
    }

    #[test]
    fn key_gauges_are_computed_from_the_published_set() {
        use crate::rotation::{Schedule, rotate};
        use crate::store::MemoryStore;
        let store = MemoryStore::new();
        let schedule = Schedule {
            algorithm: svctoken_jwks::Algorithm::ES256,
            rsa_bits: 2048,
            rotation_period: Duration::from_secs(3600),
            jwks_max_age: Duration::from_secs(60),
            max_token_lifetime: Duration::from_secs(300),
            propagation: Duration::ZERO,
        };
        let t0 = 1_800_000_000;
        rotate(&store, &schedule, t0, &()).expect("rotate");
        let ring =
            crate::KeyRing::open(Arc::new(store), schedule, Vec::new(), t0, &()).expect("ring");
        let m = metrics();
        m.observe_keys(&ring.published(), true, t0 + 600);
        let text = m.render();
        for (series, expected) in [
            ("svctoken_active_key_age_seconds", 600.0),
            ("svctoken_key_next_activation_seconds", 3000.0),
            ("svctoken_key_standby_present", 1.0),
            ("svctoken_published_keys", 2.0),
            ("svctoken_key_can_sign", 1.0),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series}: {text}");
        }
    }
}
