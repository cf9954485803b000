//! The librdkafka client context: its logs go to `tracing`, its global
//! errors mark the brokers unreachable at once, and its statistics (every
//! second) feed the in-flight and retry figures of `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

use crate::telemetry::Telemetry;

/// Whether a broker answers, as the producer's callbacks and the health
/// probe (`health.rs`) see it.
pub struct Link {
    pub telemetry: Arc<Telemetry>,
    reachable: AtomicBool,
    /// Set when a callback learned something the probe should act on now.
    wake: Mutex<bool>,
    woken: Condvar,
    /// librdkafka's running total of retried requests, last seen.
    retries_seen: AtomicU64,
}

impl Link {
    pub fn new(telemetry: Arc<Telemetry>) -> Link {
        Link {
            telemetry,
            reachable: AtomicBool::new(false),
            wake: Mutex::new(false),
            woken: Condvar::new(),
            retries_seen: AtomicU64::new(0),
        }
    }

    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Records the new state; returns the previous one.
    pub fn set_reachable(&self, up: bool) -> bool {
        self.telemetry.broker_reachable.set(i64::from(up));
        self.reachable.swap(up, Ordering::AcqRel)
    }

    /// Wakes the health probe early.
    pub fn wake(&self) {
        let mut w = crate::sync::lock(&self.wake);
        *w = true;
        self.woken.notify_all();
    }

    /// Sleeps up to `timeout` or until [`wake`](Self::wake).
    pub fn wait(&self, timeout: Duration) {
        let w = crate::sync::lock(&self.wake);
        let (mut w, _) =
            crate::sync::recover(self.woken.wait_timeout_while(w, timeout, |woken| !*woken));
        *w = false;
    }

    fn observe(&self, stats: &Statistics) {
        let mut in_flight = 0i64;
        let mut retries = 0u64;
        for b in stats.brokers.values() {
            in_flight += b.waitresp_msg_cnt;
            retries += b.txretries;
        }
        self.telemetry.in_flight.set(in_flight);
        // The per-broker totals are cumulative; count what is new. A broker
        // that disappears from the list can make the sum shrink: start over.
        let before = self.retries_seen.swap(retries, Ordering::AcqRel);
        if retries > before {
            self.telemetry.retried.inc_by(retries - before);
        }
    }
}

/// Context of the producer (and of the admin client made at start).
#[derive(Clone)]
pub struct ProducerContext {
    pub link: Arc<Link>,
}

impl ClientContext for ProducerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        self.link.observe(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                if self.link.set_reachable(false) {
                    tracing::warn!("every Kafka broker is down: {reason}");
                }
                self.link.wake();
            }
            // librdkafka's own log line already says it.
            Some(RDKafkaErrorCode::BrokerTransportFailure) => tracing::debug!("kafka: {reason}"),
            _ => tracing::warn!("kafka: {error}: {reason}"),
        }
    }
}

/// librdkafka's log lines, at the matching `tracing` level.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac}: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}
