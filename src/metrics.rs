//! The service's metrics, under one prefix, in a registry the app owns (not
//! the global one), so tests can run several apps in one process. Two
//! adapters define their own and register them here: the outbox worker's
//! (`notify::worker`: `outbox_pending`, `notifications_total`) and the IMAP
//! poller's (`imap`: `imap_*`); `tests/http/dashboards.rs` checks that
//! every name the dashboards use is registered.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub const PREFIX: &str = "keepword";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Full names of every registered family, including those with no
    /// samples yet (the text exposition omits those).
    names: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub build_info: IntGaugeVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub contract_reload_failures: IntCounter,
    pub messages: IntCounterVec,
    pub sla_met: IntCounterVec,
    pub sla_breaches: IntCounterVec,
    pub sla_response: HistogramVec,
    pub conversations_open: IntGaugeVec,
    pub escalations: IntCounterVec,
    pub channel_mismatches: IntCounterVec,
    pub acknowledgements: IntCounterVec,
    pub ingest_rejected: IntCounterVec,
    pub retention_deleted: IntCounterVec,
    pub webhook_ignored: IntCounterVec,
    pub scheduler_lateness: prometheus::Histogram,
    pub event_batch_size: prometheus::Histogram,
    pub notifications_deferred: IntCounterVec,
    pub urgent_share: GaugeVec,
    pub urgent_share_limit: GaugeVec,
    pub sla_paused: HistogramVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl Metrics {
    /// Acknowledgements a committed batch sent, suppressed and could not
    /// build: every channel's intake counts them the same way, after its
    /// commit (a rolled-back batch counts nothing).
    pub fn count_acknowledgements(&self, sent: usize, suppressed: usize, failed: usize) {
        for (result, n) in [
            ("sent", sent),
            ("suppressed", suppressed),
            ("failed", failed),
        ] {
            if n > 0 {
                self.acknowledgements
                    .with_label_values(&[result])
                    .inc_by(n as u64);
            }
        }
    }

    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some(PREFIX.into()), None).expect("valid prefix");
        let mut names = Vec::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Build of the running keepword; the value is always 1.",
            ),
            &["version"],
        )
        .expect("valid metric");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route pattern and method.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        let contract_reload_failures = IntCounter::new(
            "contract_reload_failures_total",
            "Contract reloads rejected because the new file was invalid.",
        )
        .expect("valid metric");
        let messages = counter(
            "messages_total",
            "Messages and ticket events stored, by channel and direction.",
            &["channel", "direction"],
        );
        let sla_met = counter(
            "sla_met_total",
            "Timers stopped at or before their due.",
            &["client", "request_type", "timer"],
        );
        let sla_breaches = counter(
            "sla_breaches_total",
            "Timers whose due passed while running, counted when the due passed.",
            &["client", "request_type", "timer"],
        );
        // Business seconds: a 4h window is 14,400 whatever the weekend in between.
        let sla_response = HistogramVec::new(
            HistogramOpts::new(
                "sla_response_business_seconds",
                "Business time from the start of a response timer to the response.",
            )
            .buckets(vec![
                60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 57600.0, 144000.0,
            ]),
            &["request_type", "timer"],
        )
        .expect("valid metric");
        let conversations_open = IntGaugeVec::new(
            Opts::new(
                "conversations_open",
                "Conversations not solved, by request type and health.",
            ),
            &["request_type", "health"],
        )
        .expect("valid metric");
        let escalations = counter(
            "escalations_total",
            "Escalation steps fired.",
            &["request_type", "step"],
        );
        let channel_mismatches = counter(
            "channel_mismatches_total",
            "Conversations opened through a channel their request type does not list.",
            &["request_type", "channel"],
        );
        let acknowledgements = counter(
            "acknowledgements_total",
            "Acknowledgements to clients, by result.",
            &["result"],
        );
        let ingest_rejected = counter(
            "ingest_rejected_total",
            "Input refused or kept raw because it could not be processed.",
            &["channel", "reason"],
        );
        let retention_deleted = counter(
            "retention_deleted_total",
            "Rows the retention job emptied or deleted: message bodies (with their raw mail) \
             and rejected input older than `[retention] bodies`.",
            &["kind"],
        );
        let webhook_ignored = counter(
            "webhook_events_ignored_total",
            "Webhook deliveries acknowledged but not tracked (other events or actions).",
            &["source", "event"],
        );
        let scheduler_lateness = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "scheduler_lateness_seconds",
                "Delay between an escalation step or breach falling due and its recording.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 30.0, 300.0]),
        )
        .expect("valid metric");
        // Group commit at work: 1 when idle, larger under a burst.
        let event_batch_size = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "event_batch_size",
                "Ticket events stored per transaction by the event writers.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )
        .expect("valid metric");
        let notifications_deferred = counter(
            "notifications_deferred_total",
            "Escalation notifications held for a contact's working hours (reason=hours) or collected into a digest (reason=digest).",
            &["reason"],
        );
        let urgent_share = GaugeVec::new(
            Opts::new(
                "urgent_share",
                "Share (0-1) of a client's conversations opened in the trailing 30 days that were classified urgent.",
            ),
            &["client"],
        )
        .expect("valid metric");
        // No labels: one series while the contract sets urgent_share_limit,
        // none otherwise, so the alert rule has nothing to compare against.
        let urgent_share_limit = GaugeVec::new(
            Opts::new(
                "urgent_share_limit",
                "The contract's urgent_share_limit as a share (0-1); absent when the contract sets none.",
            ),
            &[],
        )
        .expect("valid metric");
        let sla_paused = HistogramVec::new(
            HistogramOpts::new(
                "sla_paused_business_seconds",
                "Business time a conversation spent waiting on the client, observed when its resolution timer stops.",
            )
            .buckets(vec![
                0.0, 3600.0, 14400.0, 28800.0, 57600.0, 86400.0, 144000.0, 288000.0, 576000.0,
            ]),
            &["request_type"],
        )
        .expect("valid metric");
        for c in [
            Box::new(build_info.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(notifications_deferred.clone()),
            Box::new(urgent_share.clone()),
            Box::new(urgent_share_limit.clone()),
            Box::new(sla_paused.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(contract_reload_failures.clone()),
            Box::new(messages.clone()),
            Box::new(sla_met.clone()),
            Box::new(sla_breaches.clone()),
            Box::new(sla_response.clone()),
            Box::new(conversations_open.clone()),
            Box::new(escalations.clone()),
            Box::new(channel_mismatches.clone()),
            Box::new(acknowledgements.clone()),
            Box::new(ingest_rejected.clone()),
            Box::new(retention_deleted.clone()),
            Box::new(webhook_ignored.clone()),
            Box::new(scheduler_lateness.clone()),
            Box::new(event_batch_size.clone()),
        ] {
            names.extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c).expect("metric registered once");
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            registry,
            names: std::sync::Arc::new(std::sync::Mutex::new(names)),
            build_info,
            http_requests,
            http_duration,
            contract_reload_failures,
            messages,
            sla_met,
            sla_breaches,
            sla_response,
            conversations_open,
            escalations,
            channel_mismatches,
            acknowledgements,
            ingest_rejected,
            retention_deleted,
            webhook_ignored,
            scheduler_lateness,
            event_batch_size,
            notifications_deferred,
            urgent_share,
            urgent_share_limit,
            sla_paused,
        }
    }

    /// Registers collectors owned elsewhere (the outbox worker's).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        let names: Vec<String> = c.desc().iter().map(|d| d.fq_name.clone()).collect();
        if let Err(e) = self.registry.register(c) {
            tracing::warn!(error = %e, "metric registered twice");
            return;
        }
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(names);
    }

    /// Every exported family name with the `keepword_` prefix, e.g.
    /// `keepword_outbox_pending`.
    pub fn family_names(&self) -> Vec<String> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|n| format!("{PREFIX}_{n}"))
            .collect()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buf).expect("prometheus text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
