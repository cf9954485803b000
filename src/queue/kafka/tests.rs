//! The Kafka backend in-process, against librdkafka's mock cluster: what
//! each ack mode answers, and where batches go while the broker is down.

use std::future::Future;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tempfile::TempDir;

use super::*;
use crate::queue::partitioner::partition_for;

const TOPIC: &str = "metrics";
const PARTITIONS: u32 = 4;
/// The mock cluster numbers its brokers from 1.
const BROKER: i32 = 1;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Long enough for librdkafka to notice a broker is back (it reconnects
/// within a second) and for the health probe (every second) to see it.
const WAIT: Duration = Duration::from_secs(15);

/// Fields drop in order: the queue before the cluster it talks to.
struct Setup {
    queue: KafkaQueue,
    telemetry: Arc<Telemetry>,
    cluster: MockCluster<'static, DefaultProducerContext>,
    _dir: TempDir,
}

async fn start(ack: AckMode) -> Setup {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS as i32, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Arc::new(Telemetry::new().unwrap());
    let config = KafkaQueueConfig {
        brokers: cluster.bootstrap_servers(),
        topic: TOPIC.into(),
        properties: Vec::new(),
        ack,
        create_topic: None,
        enqueue_timeout: Duration::from_secs(1),
        delivery_timeout: DELIVERY_TIMEOUT,
        connect_timeout: Duration::from_secs(5),
        data_dir: dir.path().to_path_buf(),
        spill_max_bytes: 1 << 20,
        format: crate::record::Format::Compact,
        max_record_bytes: crate::queue::DEFAULT_MAX_RECORD_BYTES,
    };
    let queue = KafkaQueue::open(config, telemetry.clone()).await.unwrap();
    Setup {
        queue,
        telemetry,
        cluster,
        _dir: dir,
    }
}

/// A message to the partition its key hashes to, as a client-keyed request's.
fn message(key: &str, value: &str) -> Message {
    Message {
        partition: partition_for(key.as_bytes(), PARTITIONS),
        key: key.into(),
        value: crate::record::Payload::Ready(value.as_bytes().to_vec()),
        timestamp_ms: now_ms(),
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

async fn shutdown(s: &Setup) -> ShutdownReport {
    s.queue.shutdown(Duration::from_secs(4)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_sends_are_acknowledged_with_partition_and_offset() {
    let s = start(AckMode::Durable).await;
    let p1 = partition_for(b"sensor-1", PARTITIONS);
    let other = (2..)
        .map(|i| format!("sensor-{i}"))
        .find(|k| partition_for(k.as_bytes(), PARTITIONS) != p1)
        .unwrap();
    // Offsets count per partition.
    for (key, offset) in [("sensor-1", 0), ("sensor-1", 1), (other.as_str(), 0)] {
        let d = s.queue.send(message(key, "batch")).await.unwrap();
        assert_eq!(
            d,
            Receipt {
                partition: partition_for(key.as_bytes(), PARTITIONS),
                offset: Some(offset),
            }
        );
    }
    let report = shutdown(&s).await;
    assert_eq!((report.delivered, report.spilled, report.lost), (3, 0, 0));
}

/// Produced to the partition the message names (the broker's report says
/// where it went), not where librdkafka's partitioner would hash its key;
/// a partition the topic does not have is refused, not remapped.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_goes_to_the_partition_it_names() {
    let s = start(AckMode::Durable).await;
    let hashed = partition_for(b"sensor-1", PARTITIONS);
    let named = (hashed + 1) % PARTITIONS;
    let mut msg = message("sensor-1", "batch");
    msg.partition = named;
    let d = s.queue.send(msg).await.unwrap();
    assert_eq!((d.partition, d.offset), (named, Some(0)));
    let mut msg = message("sensor-1", "batch");
    msg.partition = PARTITIONS;
    assert_eq!(
        s.queue.send(msg).await,
        Err(QueueError::NoSuchPartition {
            partition: PARTITIONS,
            partitions: PARTITIONS
        })
    );
    let report = shutdown(&s).await;
    assert_eq!((report.delivered, report.spilled, report.lost), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_sends_are_answered_before_the_broker_acks() {
    let s = start(AckMode::Accepted).await;
    // Every answer from the broker now takes a quarter of a second.
    s.cluster
        .broker_round_trip_time(BROKER, Duration::from_millis(250))
        .unwrap();
    let (answer, took) = timed(s.queue.send(message("sensor-1", "batch"))).await;
    let d = answer.unwrap();
    assert_eq!(d.offset, None);
    assert_eq!(d.partition, partition_for(b"sensor-1", PARTITIONS));
    assert!(took < Duration::from_millis(100), "answered after {took:?}");
    assert_eq!(s.telemetry.delivered.get(), 0);
    // Shutdown waits for the broker's ack.
    let report = shutdown(&s).await;
    assert_eq!((report.delivered, report.spilled, report.lost), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_batches_spill_while_the_broker_is_down_and_are_resent() {
    const BATCHES: u64 = 10;
    let s = start(AckMode::Accepted).await;
    s.cluster.broker_down(BROKER).unwrap();
    wait_until("the broker counts as down", || !s.queue.ready()).await;
    for i in 0..BATCHES {
        let d = s.queue.send(message("sensor-1", &format!("{i}"))).await;
        assert_eq!(d.unwrap().offset, None);
    }
    let t = s.telemetry.clone();
    wait_until("every batch is spilled", || t.spilled.get() == BATCHES).await;
    assert_eq!(s.queue.inner.spill.end(), BATCHES);
    assert_eq!(t.delivered.get(), 0);

    s.cluster.broker_up(BROKER).unwrap();
    wait_until("every spilled batch is re-sent", || {
        t.resent.get() == BATCHES
    })
    .await;
    wait_until("requests produce directly again", || {
        !s.queue.inner.diverting.load(Ordering::Acquire)
    })
    .await;
    let d = s.queue.send(message("sensor-1", "direct")).await.unwrap();
    assert_eq!(d.offset, None);
    let report = shutdown(&s).await;
    assert_eq!(
        (report.delivered, report.spilled, report.lost),
        (BATCHES + 1, BATCHES, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_sends_fail_when_the_broker_does_not_ack_in_time() {
    let s = start(AckMode::Durable).await;
    // Refused with a retriable error until the delivery timeout ends it.
    let retriable = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 200];
    s.cluster.request_errors(RDKafkaApiKey::Produce, &retriable);
    let (answer, took) = timed(s.queue.send(message("sensor-1", "batch"))).await;
    assert!(
        matches!(answer, Err(QueueError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(
        took >= DELIVERY_TIMEOUT - Duration::from_millis(100),
        "{took:?}"
    );
    assert!(took < DELIVERY_TIMEOUT * 3, "{took:?}");

    // A broker that is down: the same answer, at the latest after the
    // delivery timeout, and at once when the health probe knows it.
    s.cluster.clear_request_errors(RDKafkaApiKey::Produce);
    s.cluster.broker_down(BROKER).unwrap();
    let (answer, took) = timed(s.queue.send(message("sensor-1", "batch"))).await;
    assert!(
        matches!(answer, Err(QueueError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(took < DELIVERY_TIMEOUT * 3, "{took:?}");
    wait_until("the broker counts as down", || !s.queue.ready()).await;
    let (answer, took) = timed(s.queue.send(message("sensor-1", "batch"))).await;
    assert!(
        matches!(answer, Err(QueueError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(took < Duration::from_millis(100), "{took:?}");
    let report = shutdown(&s).await;
    assert_eq!((report.delivered, report.spilled, report.lost), (0, 0, 0));
}

/// A failed delivery's message without its bytes (or key) is an error,
/// counted lost, never spilled as an empty record that would be re-sent
/// in place of an acknowledged batch.
#[test]
fn a_returned_message_without_its_bytes_is_not_spilled_empty() {
    use rdkafka::Timestamp;
    let returned = |payload: Option<&[u8]>, key: Option<&[u8]>| {
        let m = OwnedMessage::new(
            payload.map(<[u8]>::to_vec),
            key.map(<[u8]>::to_vec),
            TOPIC.into(),
            Timestamp::CreateTime(1234),
            0,
            -1,
            None,
        );
        returned_batch(&m)
    };
    let batch = returned(Some(b"record"), Some(b"client")).unwrap();
    assert_eq!(
        (&batch.key[..], &batch.value[..], batch.timestamp_ms),
        (&b"client"[..], &b"record"[..], 1234)
    );
    assert!(returned(None, Some(b"client")).is_err());
    assert!(returned(Some(b"record"), None).is_err());
}
