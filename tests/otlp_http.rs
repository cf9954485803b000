//! `POST /v1/metrics` at the HTTP level: every answer of the OTLP/HTTP
//! spec in the request's encoding (200 with `partial_success`, 400 with a
//! `google.rpc.Status`, 413 measured after gunzip, 415, 429 and 503 with
//! `Retry-After`), the counters, and `--partition-by series`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::in_process::InProcess;
use common::{consume_all, request, Server};
use metricstream::auth::Auth;
use metricstream::http::{self, connections, App, ServerConfig, Settings};
use metricstream::otlp::Status;
use metricstream::queue::{
    AckMode, BoxFuture, Message as QueueMessage, PartitionBy, Queue, QueueError, Receipt,
    ShutdownReport,
};
use metricstream::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use prost::Message;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// An answer with its body as bytes (protobuf is not UTF-8).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// One POST /v1/metrics on a fresh connection.
fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        String::from("POST /v1/metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before it has read all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    assert!(!chunked, "answers have a Content-Length");
    Answer {
        status: status.expect("a status"),
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// A gauge `name` with one point per (host, value).
fn gauges(name: &str, points: &[(&str, i64)]) -> ExportMetricsServiceRequest {
    let t = now_ns() - 1_000_000_000;
    let data_points = points
        .iter()
        .map(|&(host, v)| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "host".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(host.into())),
                }),
            }],
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsInt(v)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn status_of(r: &Answer) -> Status {
    match r.header("content-type") {
        Some(PROTOBUF) => Status::decode(&r.body[..]).expect("a google.rpc.Status"),
        Some(JSON) => {
            let v = r.json();
            Status {
                code: v["code"].as_i64().expect("code") as i32,
                message: v["message"].as_str().expect("message").into(),
            }
        }
        other => panic!("content-type {other:?}: {r:?}"),
    }
}

#[test]
fn every_answer_in_the_request_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);

    // 200, protobuf: one point stored, one refused and said why.
    let mut req = gauges("temp", &[("a", 1)]);
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .push(Metric {
            name: String::new(),
            ..gauges("", &[("b", 2)]).resource_metrics[0].scope_metrics[0].metrics[0].clone()
        });
    let r = post(s.addr, &[("Content-Type", PROTOBUF)], &req.encode_to_vec());
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some(PROTOBUF));
    let answer = ExportMetricsServiceResponse::decode(&r.body[..]).unwrap();
    let partial = answer.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_data_points, 1);
    assert_eq!(
        partial.error_message,
        r#"1 data points refused: resource_metrics[0].scope_metrics[0].metrics[1] "": empty metric name"#
    );
    // 200, everything stored: an empty response, in JSON for a JSON request.
    let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"json.gauge",
        "gauge":{"dataPoints":[{"asInt":"5"}]}}]}]}]}"#;
    let r = post(s.addr, &[("Content-Type", JSON)], body.as_bytes());
    assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]), "{r:?}");
    assert_eq!(r.header("content-type"), Some(JSON));
    // An empty protobuf request: 200, nothing to store.
    let r = post(s.addr, &[("Content-Type", PROTOBUF)], b"");
    assert_eq!((r.status, r.body.len()), (200, 0), "{r:?}");

    // 400: a google.rpc.Status, INVALID_ARGUMENT, in the request's encoding.
    let r = post(s.addr, &[("Content-Type", PROTOBUF)], b"\xff\xff\xff\xff");
    assert_eq!(r.status, 400, "{r:?}");
    let st = status_of(&r);
    assert_eq!(st.code, 3);
    assert!(
        st.message.starts_with("body: invalid OTLP protobuf body"),
        "{st:?}"
    );
    let r = post(
        s.addr,
        &[("Content-Type", JSON)],
        br#"{"resourceMetrics":[{"scopeMetrics":7}]}"#,
    );
    assert_eq!(
        (r.status, r.header("content-type")),
        (400, Some(JSON)),
        "{r:?}"
    );
    let st = status_of(&r);
    assert!(
        st.message.contains("at resourceMetrics[0].scopeMetrics"),
        "{st:?}"
    );
    let r = post(
        s.addr,
        &[("Content-Type", PROTOBUF), ("Content-Encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(status_of(&r).message.contains("not valid gzip"));

    // 413: over the 1 MiB limit as sent, or only once gunzipped.
    let r = post(
        s.addr,
        &[("Content-Type", PROTOBUF)],
        &vec![0u8; (1 << 20) + 1],
    );
    assert_eq!(r.status, 413, "{r:?}");
    let bomb = gzip(&vec![0u8; 2 << 20]);
    assert!(bomb.len() < 10_000);
    let r = post(
        s.addr,
        &[("Content-Type", PROTOBUF), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("content-type"), Some(PROTOBUF));
    assert_eq!(status_of(&r).code, 3);
    // A gzipped body under the limit once inflated is fine.
    let r = post(
        s.addr,
        &[("Content-Type", PROTOBUF), ("Content-Encoding", "gzip")],
        &gzip(&gauges("gz", &[("c", 3)]).encode_to_vec()),
    );
    assert_eq!(r.status, 200, "{r:?}");

    // 415: a content type or encoding OTLP does not speak; JSON status.
    for headers in [
        vec![("Content-Type", "text/plain")],
        vec![],
        vec![("Content-Type", PROTOBUF), ("Content-Encoding", "br")],
    ] {
        let r = post(s.addr, &headers, b"x");
        assert_eq!(r.status, 415, "{headers:?}: {r:?}");
        assert_eq!(status_of(&r).code, 3);
    }

    let stats = request(s.addr, "GET", "/stats", &[], b"").json();
    let otlp = &stats["protocols"]["otlp"];
    assert_eq!(
        (
            otlp["samples_received"].as_u64(),
            otlp["samples_refused"].as_u64()
        ),
        (Some(3), Some(1)),
        "{stats}"
    );
    assert_eq!(s.stop().lost, 0);

    let lines = consume_all(dir.path(), "check");
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["temp", "json.gauge", "gz"], "{lines:#?}");
    assert_eq!(lines[1]["value"], 5);
}

#[test]
fn over_the_rate_limit_is_a_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--rate-limit", "1"]);
    let body = gauges("g", &[("a", 1)]).encode_to_vec();
    let answers: Vec<Answer> = (0..5)
        .map(|_| post(server.addr, &[("Content-Type", PROTOBUF)], &body))
        .collect();
    assert_eq!(answers[0].status, 200, "{:?}", answers[0]);
    let limited = answers
        .iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no 429 in {answers:?}"));
    let secs: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&secs), "{limited:?}");
    assert_eq!(limited.header("content-type"), Some(PROTOBUF));
    let st = status_of(limited);
    assert_eq!(st.code, 8, "RESOURCE_EXHAUSTED: {st:?}");
    assert!(st.message.contains("requests/s"), "{st:?}");
}

#[test]
fn partition_by_series_keeps_each_series_in_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start_with(dir.path(), AckMode::Durable, PartitionBy::Series);
    let hosts = ["h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7"];
    for round in 0..3 {
        let points: Vec<(&str, i64)> = hosts.iter().map(|&h| (h, round)).collect();
        let r = post(
            s.addr,
            &[("Content-Type", PROTOBUF)],
            &gauges("load", &points).encode_to_vec(),
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(s.stop().lost, 0);
    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 24);
    let mut partitions: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut values: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for l in &lines {
        let host = l["tags"]["host"].as_str().unwrap().to_string();
        partitions
            .entry(host.clone())
            .or_default()
            .insert(l["partition"].as_u64().unwrap());
        values
            .entry(host)
            .or_default()
            .push(l["value"].as_i64().unwrap());
    }
    for (host, p) in &partitions {
        assert_eq!(p.len(), 1, "{host} is in partitions {p:?}");
        assert_eq!(values[host], [0, 1, 2], "{host}: in order");
    }
    let used: BTreeSet<u64> = partitions.values().flatten().copied().collect();
    assert!(used.len() > 1, "8 series all in partition {used:?}");
}

#[test]
fn twenty_thousand_refused_points_get_one_short_answer() {
    // A metric with an empty name: all its points refused, one reason.
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let mut req = gauges("", &[]);
    let points = &mut req.resource_metrics[0].scope_metrics[0].metrics[0];
    let template = gauges("x", &[("a", 1)]).resource_metrics[0].scope_metrics[0].metrics[0].clone();
    let Some(metric::Data::Gauge(g)) = template.data else {
        unreachable!()
    };
    points.data = Some(metric::Data::Gauge(Gauge {
        data_points: vec![g.data_points[0].clone(); 20_000],
    }));
    let started = std::time::Instant::now();
    let r = post(s.addr, &[("Content-Type", PROTOBUF)], &req.encode_to_vec());
    // Nothing stored: bad data, a 400, not a partial success.
    assert_eq!(r.status, 400, "{r:?}");
    let st = status_of(&r);
    assert_eq!(st.code, 3);
    assert!(
        st.message.starts_with("20000 data points refused: "),
        "{st:?}"
    );
    assert!(st.message.ends_with("empty metric name"), "{st:?}");
    assert!(st.message.len() < 500, "{st:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let stats = request(s.addr, "GET", "/stats", &[], b"").json();
    assert_eq!(stats["protocols"]["otlp"]["samples_refused"], 20_000);
    s.stop();
}

/// A queue with never any room: every store is a 503.
struct FullQueue;

impl Queue for FullQueue {
    fn send(&self, _msg: QueueMessage) -> BoxFuture<'_, Result<Receipt, QueueError>> {
        Box::pin(async { Err(QueueError::Full) })
    }
    fn ready(&self) -> bool {
        false
    }
    fn partitions(&self) -> u32 {
        1
    }
    fn shutdown(&self, _timeout: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(async { ShutdownReport::default() })
    }
}

#[test]
fn a_full_queue_is_a_503_with_retry_after_in_the_request_encoding() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let telemetry = Arc::new(Telemetry::new().unwrap());
    let settings = Settings {
        partition_by: PartitionBy::Client,
        rate_limit: 0,
        max_body: 1 << 20,
        max_inflight: 16,
    };
    let app = App::new(Arc::new(FullQueue), Auth::new(vec![]), settings, telemetry);
    let config = ServerConfig {
        request_timeout: Duration::from_secs(30),
        shutdown_timeout: Duration::from_secs(5),
        connections: connections::Config {
            max_connections: 16,
            idle_timeout: Duration::from_secs(30),
        },
    };
    let listener = {
        let _guard = rt.enter();
        http::listen("127.0.0.1:0".parse().unwrap()).unwrap()
    };
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = rt.spawn(http::run(listener, app, config, async {
        let _ = stopped.await;
    }));

    let body = gauges("g", &[("a", 1)]).encode_to_vec();
    let r = post(addr, &[("Content-Type", PROTOBUF)], &body);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
    assert_eq!(r.header("content-type"), Some(PROTOBUF));
    let st = status_of(&r);
    assert_eq!((st.code, st.message.as_str()), (14, "the queue is full"));
    let json = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asInt":"1"}]}}]}]}]}"#;
    let r = post(addr, &[("Content-Type", JSON)], json);
    assert_eq!(
        (r.status, r.header("retry-after")),
        (503, Some("1")),
        "{r:?}"
    );
    assert_eq!(status_of(&r).code, 14);

    let _ = stop.send(());
    rt.block_on(served).unwrap().unwrap();
}
