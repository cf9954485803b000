//! The file backend in-process: what each ack mode answers, what is in the
//! log afterwards, group commit and the bounded wait.

use std::collections::BTreeMap;

use super::*;
use crate::log::{LogReader, Record};
use crate::queue::partitioner::partition_for;

const PARTITIONS: u32 = 4;

fn config(dir: &Path, ack: AckMode) -> FileQueueConfig {
    FileQueueConfig {
        data_dir: dir.to_path_buf(),
        partitions: PARTITIONS,
        ack,
        log: LogConfig::default(),
        queue_bytes: 1 << 20,
        sync: SyncMode::Syncfs,
        enqueue_timeout: Duration::from_secs(5),
        retention_check: Duration::from_secs(3600),
        max_record_bytes: crate::queue::DEFAULT_MAX_RECORD_BYTES,
    }
}

fn open(dir: &Path, ack: AckMode) -> (FileQueue, Arc<Telemetry>) {
    let t = Arc::new(Telemetry::new().unwrap());
    (FileQueue::open(config(dir, ack), t.clone()).unwrap(), t)
}

/// A message to the partition its key hashes to, as a client-keyed request's.
fn message(key: &str, value: String) -> Message {
    Message {
        partition: partition_for(key.as_bytes(), PARTITIONS),
        key: key.into(),
        value: crate::record::Payload::Ready(value.into_bytes()),
        timestamp_ms: 1_700_000_000_000,
    }
}

/// Every record of a partition, as a reader in another process sees it.
fn read_partition(dir: &Path, partition: u32) -> Vec<Record> {
    let mut reader = LogReader::open(&crate::data_dir::partition_dir(dir, partition)).unwrap();
    let mut records = Vec::new();
    loop {
        let from = records.last().map_or(0, |r: &Record| r.offset + 1);
        let more = reader.read(from, 1 << 20).unwrap();
        if more.is_empty() {
            return records;
        }
        records.extend(more);
    }
}

fn shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_answers_carry_the_offset_of_a_readable_record() {
    let dir = tempfile::tempdir().unwrap();
    let (q, t) = open(dir.path(), AckMode::Durable);
    for (i, key) in ["sensor-1", "sensor-2", "sensor-1"].into_iter().enumerate() {
        let value = format!("batch {i}");
        let d = q.send(message(key, value.clone())).await.unwrap();
        assert_eq!(d.partition, partition_for(key.as_bytes(), PARTITIONS));
        let offset = d.offset.expect("durable answers carry an offset");
        // Readable the moment the answer is in: it is below the watermark.
        let records = read_partition(dir.path(), d.partition);
        let r = records.iter().find(|r| r.offset == offset).unwrap();
        assert_eq!(
            (&r.key[..], &r.value[..]),
            (key.as_bytes(), value.as_bytes())
        );
    }
    let p1 = partition_for(b"sensor-1", PARTITIONS);
    let offsets: Vec<u64> = read_partition(dir.path(), p1)
        .iter()
        .filter(|r| r.key[..] == b"sensor-1"[..])
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets.len(), 2);
    assert!(offsets[0] < offsets[1]);
    let report = q.shutdown(shutdown_timeout()).await;
    assert_eq!((report.delivered, report.spilled, report.lost), (3, 0, 0));
    assert_eq!(t.delivered.get(), 3);
    assert_eq!(t.queue_depth.get(), 0);
    let late = q.send(message("sensor-1", "late".into())).await;
    assert_eq!(late, Err(QueueError::Closed));
}

/// The partition is the one the message names, whatever its key hashes to
/// (the two agree only while both sides hash alike over the same count);
/// one the queue does not have is refused, not remapped.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_goes_to_the_partition_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _t) = open(dir.path(), AckMode::Durable);
    let hashed = partition_for(b"sensor-1", PARTITIONS);
    let named = (hashed + 1) % PARTITIONS;
    let mut msg = message("sensor-1", "named".into());
    msg.partition = named;
    let d = q.send(msg).await.unwrap();
    assert_eq!((d.partition, d.offset), (named, Some(0)));
    let stored = read_partition(dir.path(), named);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (&stored[0].key[..], &stored[0].value[..]),
        (&b"sensor-1"[..], &b"named"[..])
    );
    assert!(read_partition(dir.path(), hashed).is_empty());

    let mut msg = message("sensor-1", "nowhere".into());
    msg.partition = PARTITIONS;
    assert_eq!(
        q.send(msg).await,
        Err(QueueError::NoSuchPartition {
            partition: PARTITIONS,
            partitions: PARTITIONS
        })
    );
    let report = q.shutdown(shutdown_timeout()).await;
    assert_eq!((report.delivered, report.lost), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_answers_have_no_offset_and_shutdown_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _t) = open(dir.path(), AckMode::Accepted);
    let keys: Vec<String> = (0..20).map(|k| format!("client-{k}")).collect();
    let mut expected: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for i in 0..300 {
        let key = &keys[i % keys.len()];
        let value = format!("batch {i}");
        let d = q.send(message(key, value.clone())).await.unwrap();
        assert_eq!(d.offset, None);
        assert_eq!(d.partition, partition_for(key.as_bytes(), PARTITIONS));
        expected
            .entry(d.partition)
            .or_default()
            .push((key.clone(), value));
    }
    let report = q.shutdown(shutdown_timeout()).await;
    assert_eq!((report.delivered, report.spilled, report.lost), (300, 0, 0));
    drop(q);
    for p in 0..PARTITIONS {
        let got: Vec<(String, String)> = read_partition(dir.path(), p)
            .into_iter()
            .map(|r| {
                let key = String::from_utf8(r.key.to_vec()).unwrap();
                (key, String::from_utf8(r.value.to_vec()).unwrap())
            })
            .collect();
        // One sender, so the log holds each partition's share in send order.
        assert_eq!(
            got,
            expected.remove(&p).unwrap_or_default(),
            "partition {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sends_share_commits_and_get_dense_ordered_offsets() {
    const TASKS: usize = 64;
    const EACH: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let (q, t) = open(dir.path(), AckMode::Durable);
    let q = Arc::new(q);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("client-{task}");
            let mut got = Vec::new();
            for i in 0..EACH {
                let d = q.send(message(&key, format!("{task}/{i}"))).await.unwrap();
                got.push((d.partition, d.offset.unwrap()));
            }
            got
        }));
    }
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for task in tasks {
        let got = task.await.unwrap();
        // One client's batches keep their order within its partition.
        assert!(got.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1));
        for (p, offset) in got {
            by_partition.entry(p).or_default().push(offset);
        }
    }
    let batches = (TASKS * EACH) as u64;
    for (p, mut offsets) in by_partition {
        offsets.sort_unstable();
        let dense: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, dense, "partition {p}: offsets not dense");
        assert_eq!(read_partition(dir.path(), p).len(), dense.len());
    }
    let commits = t.commits.get();
    assert!(
        commits < batches,
        "{commits} commits for {batches} batches: no group commit"
    );
    let report = q.shutdown(shutdown_timeout()).await;
    assert_eq!((report.delivered, report.lost), (batches, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_that_finds_no_room_in_time_is_refused_as_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), AckMode::Durable);
    cfg.enqueue_timeout = Duration::from_millis(50);
    let q = FileQueue::open(cfg, Arc::new(Telemetry::new().unwrap())).unwrap();
    // Stands for batches still waiting to be written: the whole byte budget.
    let held = q
        .budget
        .clone()
        .acquire_many_owned(q.budget_max as u32)
        .await
        .unwrap();
    let refused = q.send(message("k", "v".into())).await;
    assert_eq!(refused, Err(QueueError::Full));
    drop(held);
    let d = q.send(message("k", "v".into())).await.unwrap();
    assert_eq!(d.offset, Some(0));
    q.shutdown(shutdown_timeout()).await;
}
