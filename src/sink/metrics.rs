//! The consumer's own metrics (`--metrics-listen`), Prometheus text on
//! `GET /metrics`, with the same crate as the server's telemetry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct ConsumeMetrics {
    registry: Registry,
    /// Samples the store acknowledged (2xx).
    pub sent: IntCounter,
    /// Samples in requests that failed and were sent again.
    pub retried: IntCounter,
    pub dead_lettered: IntCounter,
    /// Samples refused as already stored during a replay (counted as delivered).
    pub replayed: IntCounter,
    /// Records acknowledged (their offsets committable), counted from each
    /// partition's first acknowledgement in this process.
    pub records: IntCounter,
    /// Requests by outcome: the status code, `unreachable` or `no_answer`.
    pub requests: IntCounterVec,
    pub latency: Histogram,
    /// Records between the committed offset and the end of the partition.
    pub lag_records: IntGaugeVec,
    /// Age of the last acknowledged record when it was acknowledged, by partition.
    pub lag_seconds: IntGaugeVec,
    pub last_error_time: IntGauge,
    last_error: IntGaugeVec,
    last_error_text: Mutex<String>,
}

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl ConsumeMetrics {
    pub fn new() -> prometheus::Result<ConsumeMetrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(format!("metricstream_consume_{name}"), help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauges = |name: &str, help: &str, label: &str| -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(
                Opts::new(format!("metricstream_consume_{name}"), help),
                &[label],
            )?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let requests = IntCounterVec::new(
            Opts::new(
                "metricstream_consume_requests_total",
                "Requests to the store by outcome (status code, unreachable, no_answer)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "metricstream_consume_store_latency_seconds",
                "Time from sending a request to the store's answer",
            )
            .buckets(BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(latency.clone()))?;
        let last_error_time = IntGauge::new(
            "metricstream_consume_last_error_timestamp_seconds",
            "When the last failed request or refusal happened",
        )?;
        registry.register(Box::new(last_error_time.clone()))?;
        Ok(ConsumeMetrics {
            sent: counter("samples_sent_total", "Samples the store acknowledged")?,
            retried: counter(
                "samples_retried_total",
                "Samples in requests sent again after a failure",
            )?,
            dead_lettered: counter(
                "samples_dead_lettered_total",
                "Samples the store refused for good, written to the dead-letter file",
            )?,
            replayed: counter(
                "samples_replayed_total",
                "Samples refused as already stored while replaying after a crash (delivered)",
            )?,
            records: counter(
                "records_acknowledged_total",
                "Queue records fully delivered",
            )?,
            requests,
            latency,
            lag_records: gauges(
                "lag_records",
                "Records between the committed offset and the end of the partition",
                "partition",
            )?,
            lag_seconds: gauges(
                "lag_seconds",
                "Seconds from receiving the last acknowledged record to its acknowledgement",
                "partition",
            )?,
            last_error_time,
            last_error: gauges("last_error", "1, labelled with the last error", "error")?,
            last_error_text: Mutex::new(String::new()),
            registry,
        })
    }

    /// Remembers `error` as the last one (the label is cut to 200 bytes).
    pub fn error(&self, error: &str) {
        let mut cut = error.len().min(200);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        let error = &error[..cut];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.last_error_time.set(now);
        let mut last = crate::sync::lock(&self.last_error_text);
        if *last != error {
            self.last_error.reset();
            self.last_error.with_label_values(&[error]).set(1);
            *last = error.to_string();
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Serves `GET /metrics` on `listener` until the runtime ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<ConsumeMetrics>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { m.render() }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("--metrics-listen server stopped: {e}");
    }
}

/// Binds `addr` now, so a taken port is an error at start.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}
