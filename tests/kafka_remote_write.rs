//! remote_write into Kafka with `--partition-by series`, read back by an
//! independent client (Python's confluent-kafka): every series lands whole
//! in the partition its key hashes to, keyed by the part's first series.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::broker::{kafka_args, Broker};
use common::{request, Server};
use metricstream::queue::partitioner::{partition_for, series_key};
use prompb::v1;
use prost::Message as _;

#[test]
fn series_partitioned_remote_write_reaches_kafka_by_series() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "metrics");
    args.extend(["--partition-by", "series"]);
    let s = Server::start(dir.path(), &args);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let timeseries: Vec<v1::TimeSeries> = (0..50)
        .map(|i| v1::TimeSeries {
            labels: [
                ("__name__", "disk_io"),
                ("device", &format!("sd{i}")),
                ("job", "node"),
            ]
            .iter()
            .map(|(n, v)| v1::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
            samples: vec![
                v1::Sample {
                    value: i as f64,
                    timestamp: t,
                },
                v1::Sample {
                    value: i as f64 + 0.5,
                    timestamp: t + 1,
                },
            ],
            ..Default::default()
        })
        .collect();
    let raw = v1::WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let r = request(
        s.addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("Authorization", "prom-k"),
        ],
        &body,
    );
    assert_eq!(r.status, 204, "{r:?}");

    let records = broker.read_until("metrics", Duration::from_secs(30), |rs| {
        rs.iter()
            .map(|r| r.value["metrics"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
            >= 100
    });
    let mut seen: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let partitions: BTreeSet<u32> = records.iter().map(|r| r.partition).collect();
    assert!(
        partitions.len() > 1,
        "50 series of one sender in one partition"
    );
    for rec in &records {
        assert_eq!(
            rec.partition,
            partition_for(rec.key.as_bytes(), 4),
            "key {}",
            rec.key
        );
        assert_eq!(rec.value["client_id"], "prom-k");
        for m in rec.value["metrics"].as_array().unwrap() {
            let tags = m["tags"].as_object().unwrap();
            let labels = tags.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap()));
            let key = series_key(m["name"].as_str().unwrap(), labels);
            assert_eq!(partition_for(key.as_bytes(), 4), rec.partition, "{key}");
            seen.entry(key)
                .or_default()
                .push(m["value"].as_f64().unwrap());
        }
    }
    assert_eq!(seen.len(), 50);
    for (key, values) in &seen {
        assert_eq!(values.len(), 2, "{key}: {values:?}");
        assert!(values[0] < values[1], "{key}: samples out of order");
    }
}
