//! Criterion micro-benchmarks (`cargo bench`) of the request path's CPU work:
//! decode + validate + normalize a batch, the partitioner, and log append
//! (with and without fsync). The end-to-end suite behind BENCHMARKS.md is
//! benchmarks/run.py; the load generator is `metricstream bench` (loadgen/).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metricstream::batch;
use metricstream::log::{LogConfig, NewRecord, PartitionLog};
use metricstream::queue::partitioner::partition_for;

const CPP_BODY: &str = r#"{
    "metrics": [
        {"name": "cpu_usage", "value": 42.123456, "type": "gauge",
         "tags": {"host": "web1", "region": "us-west"}},
        {"name": "memory_usage", "value": 4000000000, "type": "gauge",
         "tags": {"host": "web1"}},
        {"name": "requests_total", "value": 17, "type": "counter",
         "tags": {"service": "api", "host": "web1"}}
    ]
}"#;

fn big_body() -> String {
    let one = r#"{"name":"requests_total","value":17,"type":"counter","tags":{"service":"api","host":"web1"},"timestamp":1732646400000}"#;
    format!(r#"{{"metrics":[{}]}}"#, vec![one; 1000].join(","))
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_validate_normalize");
    for (name, body) in [
        ("3_metrics", CPP_BODY.to_string()),
        ("1000_metrics", big_body()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let metrics = batch::decode(body.as_bytes()).expect("valid");
                metricstream::record::json::normalize("load_client_0", 1_732_646_400_000, metrics)
                    .expect("stored")
            })
        });
    }
    g.finish();
}

fn partitioner(c: &mut Criterion) {
    c.bench_function("murmur2_partition", |b| {
        b.iter(|| partition_for(std::hint::black_box(b"load_client_17"), 4))
    });
}

fn append(c: &mut Criterion) {
    let value = metricstream::record::json::normalize(
        "load_client_0",
        1_732_646_400_000,
        batch::decode(CPP_BODY.as_bytes()).expect("valid"),
    )
    .expect("stored");
    let mut g = c.benchmark_group("log_append");
    for group in [1usize, 64] {
        g.throughput(Throughput::Elements(group as u64));
        let records: Vec<NewRecord<'_>> = (0..group)
            .map(|_| NewRecord {
                timestamp_ms: 1,
                key: b"load_client_0",
                value: &value,
            })
            .collect();
        for sync in [false, true] {
            let name = format!("{group}_records_{}", if sync { "fsync" } else { "no_sync" });
            g.bench_function(name, |b| {
                let dir = tempfile::tempdir().expect("tempdir");
                let (mut log, _) =
                    PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
                b.iter(|| {
                    log.append(&records).expect("append");
                    if sync {
                        log.sync().expect("sync");
                    }
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, decode, partitioner, append);
criterion_main!(benches);
