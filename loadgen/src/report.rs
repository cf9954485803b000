//! The end-of-run summary: the C++ tool's rows plus percentiles and failure
//! kinds, as a table for people and JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use super::stats::Stats;

/// What the run was asked to do (the API key itself is never recorded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunParams {
    pub url: String,
    pub clients: u32,
    /// Per client; `None` when the run was bounded by `duration`.
    pub requests_per_client: Option<u64>,
    pub duration_limit_secs: Option<f64>,
    /// Open-loop total rate; `None` for closed loop.
    pub rate: Option<f64>,
    pub metrics_per_request: u32,
    /// `"remote-write"`; absent for JSON, so JSON reports keep their shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// remote_write: samples per request (absent for JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_request: Option<u32>,
    pub keep_alive: bool,
    /// `https://` (a TLS handshake per connection opened).
    pub tls: bool,
    pub interval_ms: u64,
    pub gzip: bool,
    /// `"bearer"` (--api-key) or `"load_client"` (per-client C++ style).
    pub auth: String,
    pub timeout_ms: u64,
}

/// The results of one run. Latency figures cover successful requests only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    /// Percent, 0–100.
    pub success_rate: f64,
    /// Wall time from the first request to the last answer.
    pub duration_secs: f64,
    /// All requests (successful or not) per second.
    pub requests_per_sec: f64,
    /// Metrics in successful requests per second (remote_write: samples).
    pub metrics_per_sec: f64,
    /// remote_write only: samples in successful requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_sec: Option<f64>,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Failure count by kind (`status_503`, `timeout`, …).
    pub failures: BTreeMap<String, u64>,
    /// Connections opened (with https: TLS handshakes completed). Equal
    /// to the requests with a new connection per request; about the
    /// clients with keep-alive.
    pub connections_opened: u64,
    /// Connections opened per second (with https: handshakes/s).
    pub connections_per_sec: f64,
    /// https only: how many of the handshakes resumed an earlier session
    /// (rustls' client resumes when the server allows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_resumed: Option<u64>,
    pub params: RunParams,
}

impl Report {
    pub fn from_stats(stats: &Stats, elapsed: Duration, params: RunParams) -> Self {
        let total = stats.total();
        let failed = stats.failed();
        let secs = elapsed.as_secs_f64();
        let per_sec = |count: f64| if secs > 0.0 { count / secs } else { 0.0 };
        let histogram = &stats.latency_us;
        let samples = histogram.len();
        let quantile_ms = |q: f64| {
            if samples == 0 {
                0.0
            } else {
                us_to_ms(histogram.value_at_quantile(q))
            }
        };
        let per_request = params
            .samples_per_request
            .unwrap_or(params.metrics_per_request);
        let metrics_per_sec = per_sec(stats.successful as f64 * f64::from(per_request));
        Self {
            total,
            successful: stats.successful,
            failed,
            success_rate: if total == 0 {
                0.0
            } else {
                stats.successful as f64 * 100.0 / total as f64
            },
            duration_secs: secs,
            requests_per_sec: per_sec(total as f64),
            metrics_per_sec,
            samples_per_sec: params.samples_per_request.map(|_| metrics_per_sec),
            mean_ms: if samples == 0 {
                0.0
            } else {
                stats.latency_sum_us as f64 / samples as f64 / 1000.0
            },
            p50_ms: quantile_ms(0.50),
            p90_ms: quantile_ms(0.90),
            p99_ms: quantile_ms(0.99),
            p999_ms: quantile_ms(0.999),
            max_ms: if samples == 0 {
                0.0
            } else {
                us_to_ms(histogram.max())
            },
            failures: stats
                .failures
                .iter()
                .map(|(kind, count)| (kind.to_string(), *count))
                .collect(),
            connections_opened: stats.connections,
            connections_per_sec: per_sec(stats.connections as f64),
            tls_resumed: params.tls.then_some(stats.resumed),
            params,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let mut row = |label: &str, value: String| {
            let _ = writeln!(out, "{label:<22}{value:>14}");
        };
        row("Total Requests:", self.total.to_string());
        row("Successful:", self.successful.to_string());
        row("Failed:", self.failed.to_string());
        row("Success Rate:", format!("{:.2}%", self.success_rate));
        row("Duration:", format!("{:.3} s", self.duration_secs));
        row("Requests/sec:", format!("{:.2}", self.requests_per_sec));
        match self.samples_per_sec {
            Some(samples) => row("Samples/sec:", format!("{samples:.2}")),
            None => row("Metrics/sec:", format!("{:.2}", self.metrics_per_sec)),
        }
        row("Mean latency:", format!("{:.3} ms", self.mean_ms));
        row("Latency p50:", format!("{:.3} ms", self.p50_ms));
        row("Latency p90:", format!("{:.3} ms", self.p90_ms));
        row("Latency p99:", format!("{:.3} ms", self.p99_ms));
        row("Latency p99.9:", format!("{:.3} ms", self.p999_ms));
        row("Latency max:", format!("{:.3} ms", self.max_ms));
        if let Some(resumed) = self.tls_resumed {
            row("TLS handshakes:", self.connections_opened.to_string());
            row("  of them resumed:", resumed.to_string());
            row(
                "Handshakes/sec:",
                format!("{:.2}", self.connections_per_sec),
            );
        } else {
            row("Connections opened:", self.connections_opened.to_string());
        }
        let mut text = format!("=== Load Test Results ===\n{out}");
        if !self.failures.is_empty() {
            text.push_str("Failures by kind:\n");
            for (kind, count) in &self.failures {
                let _ = writeln!(text, "  {kind:<20}{count:>14}");
            }
        }
        let p = &self.params;
        let mode = match p.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => format!("closed loop, {} ms pause", p.interval_ms),
        };
        let per_request = match p.samples_per_request {
            Some(samples) => match p.format.as_deref() {
                Some("influx") => format!("line protocol, {samples} fields/request"),
                Some("otlp") => format!("OTLP/HTTP protobuf, {samples} data points/request"),
                _ => format!("remote_write 1.0, {samples} samples/request"),
            },
            None => format!("{} metrics/request", p.metrics_per_request),
        };
        let _ = writeln!(
            text,
            "({} clients, {mode}, {per_request}, {}{}{}; latency of successful requests{})",
            p.clients,
            if p.tls { "https, " } else { "" },
            if p.keep_alive {
                "keep-alive"
            } else {
                "new connection per request"
            },
            if p.gzip { ", gzip" } else { "" },
            if p.rate.is_some() {
                " from scheduled send time"
            } else {
                ""
            },
        );
        text
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self).context("serialize report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("write report to {}", path.display()))
    }
}

fn us_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{FailureKind, Outcome};

    fn params() -> RunParams {
        RunParams {
            url: "http://127.0.0.1:8080/metrics".into(),
            clients: 2,
            requests_per_client: Some(550),
            duration_limit_secs: None,
            rate: None,
            metrics_per_request: 3,
            format: None,
            samples_per_request: None,
            keep_alive: false,
            tls: false,
            interval_ms: 0,
            gzip: false,
            auth: "load_client".into(),
            timeout_ms: 5000,
        }
    }

    /// 1000 successes at 1, 2, …, 1000 µs, plus 100 failures.
    fn known_stats() -> Stats {
        let mut stats = Stats::new().unwrap();
        for ms in 1..=1000u64 {
            stats.record(Outcome::Success, Duration::from_micros(ms));
        }
        for _ in 0..60 {
            stats.record(Outcome::Failure(FailureKind::Status(503)), Duration::ZERO);
        }
        for _ in 0..40 {
            stats.record(Outcome::Failure(FailureKind::Timeout), Duration::ZERO);
        }
        stats
    }

    #[test]
    fn known_latencies_give_known_percentiles() {
        let report = Report::from_stats(&known_stats(), Duration::from_secs(2), params());
        // Values below 2048 µs are exact at 3 significant digits.
        assert_eq!(report.p50_ms, 0.5);
        assert_eq!(report.p90_ms, 0.9);
        assert_eq!(report.p99_ms, 0.99);
        assert_eq!(report.p999_ms, 0.999);
        assert_eq!(report.max_ms, 1.0);
        assert!(
            (report.mean_ms - 0.5005).abs() < 1e-12,
            "{}",
            report.mean_ms
        );
    }

    #[test]
    fn counts_and_rates() {
        let report = Report::from_stats(&known_stats(), Duration::from_secs(2), params());
        assert_eq!(report.total, 1100);
        assert_eq!(report.successful, 1000);
        assert_eq!(report.failed, 100);
        assert_eq!(report.successful + report.failed, report.total);
        assert!((report.success_rate - 90.909_090_909).abs() < 1e-6);
        assert_eq!(report.requests_per_sec, 550.0);
        assert_eq!(report.metrics_per_sec, 1500.0, "successful × 3 / 2 s");
        assert_eq!(report.failures["status_503"], 60);
        assert_eq!(report.failures["timeout"], 40);
        assert_eq!(report.failures.values().sum::<u64>(), report.failed);
    }

    #[test]
    fn remote_write_reports_samples() {
        let rw = RunParams {
            format: Some("remote-write".into()),
            samples_per_request: Some(2000),
            ..params()
        };
        let report = Report::from_stats(&known_stats(), Duration::from_secs(2), rw);
        assert_eq!(
            report.samples_per_sec,
            Some(1_000_000.0),
            "1000 × 2000 / 2 s"
        );
        assert_eq!(report.metrics_per_sec, 1_000_000.0);
        let table = report.table();
        assert!(table.contains("Samples/sec:"), "{table}");
        assert!(table.contains("1000000.00"), "{table}");
        assert!(table.contains("2000 samples/request"), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["samples_per_sec"], 1_000_000.0);
        assert_eq!(json["params"]["format"], "remote-write");
        assert_eq!(json["params"]["samples_per_request"], 2000);

        // JSON runs keep the old shape: no new keys.
        let report = Report::from_stats(&known_stats(), Duration::from_secs(2), params());
        let json = serde_json::to_value(&report).unwrap();
        assert!(json.get("samples_per_sec").is_none());
        assert!(json["params"].get("format").is_none());
        assert!(json["params"].get("samples_per_request").is_none());
        assert!(report.table().contains("Metrics/sec:"));
        assert!(json.get("tls_resumed").is_none());
    }

    #[test]
    fn tls_runs_report_handshakes() {
        let mut stats = known_stats();
        stats.connections = 1100;
        stats.resumed = 1000;
        let tls = RunParams {
            url: "https://127.0.0.1:8443/metrics".into(),
            tls: true,
            ..params()
        };
        let report = Report::from_stats(&stats, Duration::from_secs(2), tls);
        assert_eq!(report.connections_opened, 1100);
        assert_eq!(report.connections_per_sec, 550.0);
        assert_eq!(report.tls_resumed, Some(1000));
        let table = report.table();
        for needle in [
            "TLS handshakes:",
            "1100",
            "of them resumed:",
            "Handshakes/sec:",
            "https, ",
        ] {
            assert!(table.contains(needle), "missing {needle:?} in\n{table}");
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["tls_resumed"], 1000);
        assert_eq!(json["params"]["tls"], true);
    }

    #[test]
    fn larger_latencies_are_within_resolution() {
        let mut stats = Stats::new().unwrap();
        for ms in [10, 20, 30, 40, 50, 60, 70, 80, 90, 100] {
            stats.record(Outcome::Success, Duration::from_millis(ms));
        }
        let report = Report::from_stats(&stats, Duration::from_secs(1), params());
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert!(close(report.p50_ms, 50.0), "{}", report.p50_ms);
        assert!(close(report.p90_ms, 90.0), "{}", report.p90_ms);
        assert!(close(report.max_ms, 100.0), "{}", report.max_ms);
        assert_eq!(report.mean_ms, 55.0);
        assert_eq!(report.success_rate, 100.0);
    }

    #[test]
    fn empty_run_is_all_zero() {
        let report = Report::from_stats(&Stats::new().unwrap(), Duration::ZERO, params());
        assert_eq!(report.total, 0);
        assert_eq!(report.success_rate, 0.0);
        assert_eq!(report.requests_per_sec, 0.0);
        assert_eq!(report.p99_ms, 0.0);
        assert_eq!(report.max_ms, 0.0);
        assert!(report.failures.is_empty());
    }

    #[test]
    fn table_and_json_carry_everything() {
        let report = Report::from_stats(&known_stats(), Duration::from_secs(2), params());
        let table = report.table();
        for needle in [
            "Total Requests:",
            "1100",
            "Successful:",
            "Failed:",
            "Success Rate:",
            "90.91%",
            "Requests/sec:",
            "550.00",
            "Metrics/sec:",
            "Mean latency:",
            "Latency p99.9:",
            "status_503",
            "timeout",
        ] {
            assert!(table.contains(needle), "missing {needle:?} in\n{table}");
        }
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["total"], 1100);
        assert_eq!(json["failures"]["status_503"], 60);
        assert_eq!(json["params"]["clients"], 2);
        for key in [
            "successful",
            "failed",
            "success_rate",
            "duration_secs",
            "requests_per_sec",
            "metrics_per_sec",
            "mean_ms",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
