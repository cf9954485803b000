//! Is a broker reachable? A background thread asks the cluster for the
//! topic's metadata every second: an answer naming a leader for every
//! partition means yes, an error or a timeout means no.
//!
//! Why a probe and not only librdkafka's callbacks: librdkafka reports "all
//! brokers down" (the context uses it to turn unready at once), but nothing
//! when they come back, and an idle client may legitimately have no open
//! connection at all. A metadata request is answered by any live broker and
//! costs one small round trip per second.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::context::{Link, ProducerContext};

pub const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed probes in a row before the brokers count as unreachable: one
/// slow answer from a busy broker is not an outage. (A broker that really
/// goes away is noticed at once through librdkafka's callback.)
const FAILURES_TO_DOWN: u32 = 2;

/// Partitions of `topic` if the metadata shows it whole: every partition
/// with a leader and no error.
pub fn topic_partitions(md: &Metadata, topic: &str) -> Result<u32, String> {
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(format!("topic {topic} is not in the metadata"));
    };
    if let Some(e) = t.error() {
        return Err(format!("topic {topic}: {}", RDKafkaErrorCode::from(e)));
    }
    if t.partitions().is_empty() {
        return Err(format!("topic {topic} has no partitions"));
    }
    for p in t.partitions() {
        if p.error().is_some() || p.leader() < 0 {
            return Err(format!("topic {topic} partition {} has no leader", p.id()));
        }
    }
    Ok(t.partitions().len() as u32)
}

/// Starts the probe.
pub fn spawn(
    producer: FutureProducer<ProducerContext>,
    topic: String,
    link: Arc<Link>,
    partitions: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kafka-health".into())
        .spawn(move || {
            let mut last = link.reachable();
            let mut failures = 0;
            let mut fatal_logged = false;
            while !stop.load(Ordering::Acquire) {
                // An idempotent producer can fail for good (librdkafka's
                // "fatal error"); every later send fails. Say so and stay
                // unready: only a new process (a new producer) recovers.
                if let Some((code, why)) = producer.client().fatal_error() {
                    if !fatal_logged {
                        tracing::error!(
                            "the Kafka producer failed for good ({code}: {why}); \
                             restart metricstream"
                        );
                        fatal_logged = true;
                    }
                    link.set_reachable(false);
                    link.wait(PROBE_EVERY);
                    continue;
                }
                // A callback may have marked the brokers down meanwhile.
                if last && !link.reachable() {
                    last = false;
                }
                let probe = producer
                    .client()
                    .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                    .map_err(|e| e.to_string())
                    .and_then(|md| topic_partitions(&md, &topic));
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let up = match probe {
                    Ok(n) => {
                        failures = 0;
                        let before = partitions.swap(n, Ordering::AcqRel);
                        if before != n {
                            tracing::warn!(
                                topic,
                                before,
                                now = n,
                                "the topic's partition count changed"
                            );
                        }
                        true
                    }
                    Err(why) => {
                        failures += 1;
                        let down = failures >= FAILURES_TO_DOWN || !link.reachable();
                        if last && down {
                            tracing::warn!("Kafka unreachable: {why}");
                        }
                        !down
                    }
                };
                link.set_reachable(up);
                if up && !last {
                    tracing::info!("Kafka reachable again");
                }
                last = up;
                link.wait(PROBE_EVERY);
            }
        })
}
