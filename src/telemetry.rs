//! The server's own counters: `/stats` (JSON) and `/metrics` (Prometheus
//! text) read the same values, so the two can never disagree.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use serde::Serialize;

use crate::tenant::{TenantCounters, TenantStats};

pub struct Telemetry {
    registry: Registry,
    // The C++ system's four counters, same names in /stats.
    pub metrics_received: IntCounter,
    pub batches_processed: IntCounter,
    pub validation_errors: IntCounter,
    pub rate_limited_requests: IntCounter,
    /// Requests answered, by protocol and status code.
    pub requests: IntCounterVec,
    /// Data points (metrics, samples) accepted into the queue, by protocol.
    pub samples_received: IntCounterVec,
    /// Data points refused as invalid while the rest of their request was
    /// stored (remote_write and the other partial-accept protocols).
    pub samples_refused: IntCounterVec,
    /// Time from request start to answer.
    pub request_latency: Histogram,
    /// Time from handing a batch to the queue until it is durable.
    pub queue_latency: Histogram,
    /// Batches waiting in memory for the queue's writer.
    pub queue_depth: IntGauge,
    pub delivered: IntCounter,
    pub failed: IntCounter,
    pub spilled: IntCounter,
    /// Group commits (one fsync each) and the batches they carried.
    pub commits: IntCounter,
    /// A group commit's three phases: appending every partition's share,
    /// making it durable (fsync and the high watermark), answering senders.
    pub commit_write: Histogram,
    pub commit_sync: Histogram,
    pub commit_publish: Histogram,
    // Kafka producer figures (zero with the embedded log).
    /// Messages sent to a broker and awaiting its acknowledgement
    /// (librdkafka statistics, refreshed every second).
    pub in_flight: IntGauge,
    /// Produce requests librdkafka retried (statistics, every second).
    pub retried: IntCounter,
    /// Time from handing a batch to the producer until the broker's ack.
    pub delivery_latency: Histogram,
    /// Spilled batches delivered to Kafka later.
    pub resent: IntCounter,
    /// Bytes in the spill log (on disk and on their way there).
    pub spill_bytes: IntGauge,
    /// 1 while a Kafka broker answers, else 0.
    pub broker_reachable: IntGauge,
    /// Client connections being served.
    pub connections_open: IntGauge,
    /// Idle connections closed at --max-connections to admit a new one.
    pub connections_evicted: IntCounter,
    /// Connections answered 503 at --max-connections (all busy).
    pub connections_refused: IntCounter,
    /// Connections closed for not sending a request head within --idle-timeout.
    pub connections_timed_out: IntCounter,
    /// Requests, samples and 429s per tenant (`X-Scope-OrgID`).
    pub tenants: TenantCounters,
    /// TLS certificate reloads by result (`ok`, `error`).
    pub tls_reloads: IntCounterVec,
    /// TLS handshakes that failed, by reason class (`tls::server::failure_reason`).
    pub tls_handshake_failures: IntCounterVec,
}

/// The `/stats` body.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub metrics_received: u64,
    pub batches_processed: u64,
    pub validation_errors: u64,
    pub rate_limited_requests: u64,
    pub delivered: u64,
    pub failed: u64,
    pub spilled: u64,
    pub queued: i64,
    pub commits: u64,
    /// Seconds spent in each phase of the group commits so far (sums).
    pub commit_write_seconds: f64,
    pub commit_sync_seconds: f64,
    pub commit_publish_seconds: f64,
    pub in_flight: i64,
    pub retried: u64,
    pub resent: u64,
    pub connections_open: i64,
    pub connections_evicted: u64,
    pub connections_refused: u64,
    pub connections_timed_out: u64,
    /// Data points received and refused, per ingest protocol.
    pub protocols: std::collections::BTreeMap<&'static str, ProtocolStats>,
    /// Per tenant (at most 100 by name, the rest as `other`).
    pub tenants: std::collections::BTreeMap<String, TenantStats>,
}

#[derive(Debug, Serialize)]
pub struct ProtocolStats {
    pub samples_received: u64,
    pub samples_refused: u64,
}

/// The ingest protocols, as they are labelled in `/metrics` and `/stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /metrics`, the C++ system's JSON.
    Json,
    /// `POST /api/v1/write`, Prometheus remote_write 1.0 and 2.0.
    RemoteWrite,
    /// `POST /api/v2/write` and `POST /write`, InfluxDB line protocol.
    Influx,
    /// `POST /v1/metrics`, OpenTelemetry OTLP/HTTP.
    Otlp,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Json,
        Protocol::RemoteWrite,
        Protocol::Influx,
        Protocol::Otlp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::RemoteWrite => "remote_write",
            Protocol::Influx => "influx",
            Protocol::Otlp => "otlp",
        }
    }
}

/// Latency buckets from 50 µs to 10 s: our answers are sub-millisecond, the
/// interesting tail is in the low milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

impl Telemetry {
    /// Every counter registered once, grouped as the struct is: what the
    /// requests brought, what the queue made of it, the Kafka producer's
    /// figures, the connections.
    pub fn new() -> prometheus::Result<Telemetry> {
        let r = Registrar::default();
        Ok(Telemetry {
            metrics_received: r.counter("metrics_received_total", "metrics in decoded batches")?,
            batches_processed: r.counter("batches_processed_total", "batches accepted (200)")?,
            validation_errors: r
                .counter("validation_errors_total", "batches rejected as invalid")?,
            rate_limited_requests: r
                .counter("rate_limited_requests_total", "requests answered 429")?,
            requests: r.counter_vec(
                "http_requests_total",
                "HTTP requests by protocol and status",
                &["protocol", "status"],
            )?,
            samples_received: r.counter_vec(
                "samples_received_total",
                "data points accepted into the queue, by protocol",
                &["protocol"],
            )?,
            samples_refused: r.counter_vec(
                "samples_refused_total",
                "data points refused as invalid (the rest of their request stored), by protocol",
                &["protocol"],
            )?,
            request_latency: r.histogram(
                "http_request_duration_seconds",
                "time to answer a POST /metrics",
            )?,

            queue_latency: r.histogram(
                "queue_latency_seconds",
                "time from enqueue until the batch is durable",
            )?,
            queue_depth: r.gauge("queue_depth", "batches waiting in memory for the queue")?,
            delivered: r.counter("deliveries_total", "batches made durable by the queue")?,
            failed: r.counter(
                "delivery_failures_total",
                "batches the queue could not store",
            )?,
            spilled: r.counter("spills_total", "batches written to the spill log")?,
            commits: r.counter("group_commits_total", "fsyncs, each covering many batches")?,
            commit_write: r.histogram(
                "commit_write_seconds",
                "time a group commit spends appending its batches to the log files",
            )?,
            commit_sync: r.histogram(
                "commit_sync_seconds",
                "time a group commit spends making its appends durable (fsync, high watermark)",
            )?,
            commit_publish: r.histogram(
                "commit_publish_seconds",
                "time a group commit spends answering the requests it made durable",
            )?,

            in_flight: r.gauge(
                "kafka_in_flight",
                "messages sent to a Kafka broker and awaiting its acknowledgement",
            )?,
            retried: r.counter("kafka_retries_total", "produce requests librdkafka retried")?,
            delivery_latency: r.histogram(
                "kafka_delivery_latency_seconds",
                "time from handing a batch to the Kafka producer until the broker's ack",
            )?,
            resent: r.counter(
                "spill_resent_total",
                "spilled batches delivered to Kafka later",
            )?,
            spill_bytes: r.gauge("spill_bytes", "bytes in the spill log")?,
            broker_reachable: r.gauge(
                "kafka_broker_reachable",
                "1 while a Kafka broker answers, else 0",
            )?,

            connections_open: r.gauge("connections_open", "client connections being served")?,
            connections_evicted: r.counter(
                "connections_evicted_total",
                "idle connections closed at --max-connections to admit a new one",
            )?,
            connections_refused: r.counter(
                "connections_refused_total",
                "connections answered 503 at --max-connections (all busy)",
            )?,
            connections_timed_out: r.counter(
                "connections_timed_out_total",
                "connections closed for not sending a request head within --idle-timeout",
            )?,
            tenants: TenantCounters::register(&r.registry)?,
            tls_reloads: r.counter_vec(
                "tls_reloads_total",
                "TLS certificate reloads (SIGHUP or changed files), by result",
                &["result"],
            )?,
            tls_handshake_failures: r.counter_vec(
                "tls_handshake_failures_total",
                "TLS handshakes that failed, by reason class",
                &["reason"],
            )?,
            registry: r.registry,
        })
    }

    pub fn stats(&self) -> Stats {
        Stats {
            metrics_received: self.metrics_received.get(),
            batches_processed: self.batches_processed.get(),
            validation_errors: self.validation_errors.get(),
            rate_limited_requests: self.rate_limited_requests.get(),
            delivered: self.delivered.get(),
            failed: self.failed.get(),
            spilled: self.spilled.get(),
            queued: self.queue_depth.get(),
            commits: self.commits.get(),
            commit_write_seconds: self.commit_write.get_sample_sum(),
            commit_sync_seconds: self.commit_sync.get_sample_sum(),
            commit_publish_seconds: self.commit_publish.get_sample_sum(),
            in_flight: self.in_flight.get(),
            retried: self.retried.get(),
            resent: self.resent.get(),
            connections_open: self.connections_open.get(),
            connections_evicted: self.connections_evicted.get(),
            connections_refused: self.connections_refused.get(),
            connections_timed_out: self.connections_timed_out.get(),
            protocols: Protocol::ALL
                .iter()
                .map(|p| {
                    let label = [p.as_str()];
                    let stats = ProtocolStats {
                        samples_received: self.samples_received.with_label_values(&label).get(),
                        samples_refused: self.samples_refused.with_label_values(&label).get(),
                    };
                    (p.as_str(), stats)
                })
                .collect(),
            tenants: self.tenants.stats(),
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding gathered families into a Vec only fails on invalid metric
        // names, which are fixed above.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics: {e}");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Makes each metric, named `metricstream_<name>`, and registers it.
#[derive(Default)]
struct Registrar {
    registry: Registry,
}

impl Registrar {
    fn register<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> prometheus::Result<M> {
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.register(IntCounter::new(format!("metricstream_{name}"), help)?)
    }

    fn gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.register(IntGauge::new(format!("metricstream_{name}"), help)?)
    }

    /// With [`LATENCY_BUCKETS`].
    fn histogram(&self, name: &str, help: &str) -> prometheus::Result<Histogram> {
        let opts = HistogramOpts::new(format!("metricstream_{name}"), help)
            .buckets(LATENCY_BUCKETS.to_vec());
        self.register(Histogram::with_opts(opts)?)
    }

    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        let opts = Opts::new(format!("metricstream_{name}"), help);
        self.register(IntCounterVec::new(opts, labels)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_prometheus_agree() {
        let t = Telemetry::new().unwrap();
        t.metrics_received.inc_by(3);
        t.batches_processed.inc();
        t.requests.with_label_values(&["json", "200"]).inc();
        t.samples_received
            .with_label_values(&["remote_write"])
            .inc_by(5);
        t.request_latency.observe(0.0003);
        let s = t.stats();
        assert_eq!(s.metrics_received, 3);
        assert_eq!(s.batches_processed, 1);
        let text = t.render();
        assert!(
            text.contains("metricstream_metrics_received_total 3"),
            "{text}"
        );
        assert!(
            text.contains("metricstream_http_requests_total{protocol=\"json\",status=\"200\"} 1")
        );
        assert!(text.contains("metricstream_samples_received_total{protocol=\"remote_write\"} 5"));
        assert_eq!(s.protocols["remote_write"].samples_received, 5);
        assert_eq!(s.protocols["json"].samples_refused, 0);
        assert!(text.contains("metricstream_http_request_duration_seconds_bucket"));
    }
}
