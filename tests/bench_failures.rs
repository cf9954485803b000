//! `metricstream bench`'s load generator (the `loadgen` crate) against tiny
//! in-process servers that succeed, refuse, hang up, stall or lie: every
//! request must be counted exactly once, and nothing but a real
//! acknowledgement may count as a success. Its flags are tested in
//! src/cli/bench.rs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use loadgen::{BenchConfig, Report};
use tokio::net::TcpListener;

/// The defaults of `metricstream bench --quiet --url URL`.
fn config(url: &str) -> BenchConfig {
    BenchConfig {
        url: url.to_string(),
        quiet: true,
        ..BenchConfig::default()
    }
}

async fn run(config: BenchConfig) -> Report {
    let report = loadgen::run(config).await.expect("bench run");
    assert_eq!(
        report.successful + report.failed,
        report.total,
        "every request counted once: {report:#?}"
    );
    assert_eq!(report.failures.values().sum::<u64>(), report.failed);
    report
}

/// Serves `app` on an ephemeral loopback port; returns the /metrics URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/metrics")
}

fn json(status: StatusCode, body: &'static str) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn ok_server() -> String {
    serve(Router::new().route(
        "/metrics",
        post(|_body: Bytes| async {
            json(StatusCode::OK, r#"{"success":true,"metrics_processed":3}"#)
        }),
    ))
    .await
}

/// Accepts TCP connections and closes them at once, without a byte of HTTP.
async fn hang_up_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    format!("http://{addr}/metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_successes_against_a_healthy_server() {
    let url = ok_server().await;
    for keep_alive in [false, true] {
        let report = run(BenchConfig {
            clients: 4,
            requests: 25,
            keep_alive,
            ..config(&url)
        })
        .await;
        assert_eq!(report.total, 100, "keep-alive {keep_alive}");
        assert_eq!(
            report.successful, 100,
            "keep-alive {keep_alive}: {:?}",
            report.failures
        );
        assert_eq!(report.success_rate, 100.0);
        assert!(report.p50_ms > 0.0 && report.p50_ms <= report.max_ms);
        assert!(
            report.metrics_per_sec > report.requests_per_sec,
            "3 metrics each"
        );
    }
    let report = run(BenchConfig {
        clients: 2,
        requests: 5,
        gzip: true,
        api_key: Some("k".to_string()),
        ..config(&url)
    })
    .await;
    assert_eq!(report.successful, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_503_is_a_failure_by_kind() {
    let url = serve(Router::new().route(
        "/metrics",
        post(|| async { json(StatusCode::SERVICE_UNAVAILABLE, r#"{"success":true}"#) }),
    ))
    .await;
    for keep_alive in [false, true] {
        let report = run(BenchConfig {
            clients: 3,
            requests: 10,
            keep_alive,
            ..config(&url)
        })
        .await;
        assert_eq!(report.total, 30);
        assert_eq!(report.successful, 0, "a 503 is never a success");
        assert_eq!(
            report.failures.get("status_503"),
            Some(&30),
            "{:?}",
            report.failures
        );
        assert_eq!(report.success_rate, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_without_acknowledgement_is_bad_body() {
    let url = serve(Router::new().route(
        "/metrics",
        post(|| async { json(StatusCode::OK, r#"{"success":false,"error":"nope"}"#) }),
    ))
    .await;
    let report = run(BenchConfig {
        clients: 2,
        requests: 5,
        ..config(&url)
    })
    .await;
    assert_eq!(report.successful, 0);
    assert_eq!(report.failures.get("bad_body"), Some(&10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_are_failures_by_kind() {
    let url = hang_up_server().await;
    for keep_alive in [false, true] {
        let report = run(BenchConfig {
            clients: 3,
            requests: 10,
            keep_alive,
            ..config(&url)
        })
        .await;
        let mode = format!("keep-alive {keep_alive}");
        assert_eq!(report.total, 30, "{mode}");
        assert_eq!(report.successful, 0, "{mode}: a hang-up is never a success");
        assert!(
            report
                .failures
                .keys()
                .all(|k| k == "reset" || k == "io_error"),
            "{mode}: {:?}",
            report.failures
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_connect_errors() {
    // Bind, note the port, close: nothing listens there any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run(BenchConfig {
        clients: 2,
        requests: 3,
        ..config(&format!("http://{addr}/metrics"))
    })
    .await;
    assert_eq!(report.successful, 0);
    assert_eq!(
        report.failures.get("connect_error"),
        Some(&6),
        "{:?}",
        report.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out() {
    let url = serve(Router::new().route(
        "/metrics",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            json(StatusCode::OK, r#"{"success":true}"#)
        }),
    ))
    .await;
    let started = Instant::now();
    let report = run(BenchConfig {
        clients: 2,
        requests: 2,
        timeout: Duration::from_millis(200),
        ..config(&url)
    })
    .await;
    assert_eq!(
        report.failures.get("timeout"),
        Some(&4),
        "{:?}",
        report.failures
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeouts were enforced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reconnects_when_the_server_closes() {
    // Every answer says `Connection: close`, so each request needs a new connection.
    let url = serve(Router::new().route(
        "/metrics",
        post(|| async {
            (
                StatusCode::OK,
                [(header::CONNECTION, "close")],
                r#"{"success":true}"#,
            )
        }),
    ))
    .await;
    let report = run(BenchConfig {
        clients: 2,
        requests: 20,
        keep_alive: true,
        ..config(&url)
    })
    .await;
    assert_eq!(report.successful, 40, "{:?}", report.failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_bounds_a_closed_loop_run() {
    let url = ok_server().await;
    let report = run(BenchConfig {
        clients: 2,
        duration: Some(Duration::from_millis(500)),
        interval: Duration::from_millis(50),
        keep_alive: true,
        ..config(&url)
    })
    .await;
    // About 10 requests per client; generous bounds for a loaded machine.
    assert!((6..=24).contains(&report.total), "{}", report.total);
    assert!(report.duration_secs >= 0.45 && report.duration_secs < 2.0);
    assert_eq!(report.params.requests_per_client, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_rate_sends_the_scheduled_count() {
    let url = ok_server().await;
    let report = run(BenchConfig {
        rate: Some(200.0),
        duration: Some(Duration::from_secs(1)),
        clients: 10,
        ..config(&url)
    })
    .await;
    // The schedule has exactly 200 slots in 1 s.
    assert_eq!(report.total, 200, "{:?}", report.failures);
    assert!(report.successful >= 190, "{:?}", report.failures);
    assert!(
        report.duration_secs >= 0.95 && report.duration_secs < 2.0,
        "{}",
        report.duration_secs
    );
    assert!(
        report.requests_per_sec > 100.0 && report.requests_per_sec <= 210.0,
        "{}",
        report.requests_per_sec
    );

    let report = run(BenchConfig {
        rate: Some(100.0),
        clients: 2,
        requests: 5,
        ..config(&url)
    })
    .await;
    assert_eq!(report.total, 10);
}

/// A server that stalls once for 300 ms, on its 10th request.
async fn stall_once_server() -> String {
    let seen = Arc::new(AtomicU64::new(0));
    serve(
        Router::new()
            .route(
                "/metrics",
                post(|State(seen): State<Arc<AtomicU64>>| async move {
                    if seen.fetch_add(1, Ordering::Relaxed) == 9 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    json(StatusCode::OK, r#"{"success":true}"#)
                }),
            )
            .with_state(seen),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_does_not_hide_a_stall() {
    // One client at 100 req/s for 1 s: the stall delays ~30 scheduled sends,
    // and each must carry its wait, so p90 lands far above a healthy answer.
    let url = stall_once_server().await;
    let open = run(BenchConfig {
        rate: Some(100.0),
        duration: Some(Duration::from_secs(1)),
        clients: 1,
        keep_alive: true,
        ..config(&url)
    })
    .await;
    assert_eq!(open.successful, 100, "{:?}", open.failures);
    assert!(open.max_ms >= 290.0, "max {}", open.max_ms);
    assert!(open.p90_ms >= 100.0, "p90 {} hides the stall", open.p90_ms);

    // The same stall in a closed loop is a single slow sample.
    let url = stall_once_server().await;
    let closed = run(BenchConfig {
        requests: 100,
        clients: 1,
        keep_alive: true,
        ..config(&url)
    })
    .await;
    assert!(closed.max_ms >= 290.0, "max {}", closed.max_ms);
    assert!(closed.p90_ms < 100.0, "p90 {}", closed.p90_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_is_written() {
    let url = ok_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let report = run(BenchConfig {
        clients: 2,
        requests: 3,
        json: Some(path.clone()),
        ..config(&url)
    })
    .await;
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["total"], report.total);
    assert_eq!(written["successful"], 6);
    assert_eq!(written["params"]["clients"], 2);
    assert!(written["p99_ms"].is_number());
}

#[tokio::test]
async fn bad_urls_are_errors_not_panics() {
    for url in ["https://127.0.0.1/metrics", "nonsense", "http://"] {
        assert!(loadgen::run(config(url)).await.is_err(), "{url}");
    }
}

/// A remote_write receiver that checks what Prometheus would send (headers,
/// snappy, a decodable WriteRequest with increasing timestamps per series)
/// and answers `status`; counts the samples it saw.
async fn remote_write_server(status: StatusCode, samples: Arc<AtomicU64>) -> String {
    use prost::Message as _;
    use std::collections::HashMap;
    use std::sync::Mutex;
    let last: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    serve(Router::new().route(
        "/metrics",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let samples = Arc::clone(&samples);
            let last = Arc::clone(&last);
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                assert_eq!(header("content-type"), Some("application/x-protobuf"));
                assert_eq!(header("content-encoding"), Some("snappy"));
                assert_eq!(header("x-prometheus-remote-write-version"), Some("0.1.0"));
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                let request = prompb::v1::WriteRequest::decode(&raw[..]).unwrap();
                let mut last = last.lock().unwrap();
                for series in &request.timeseries {
                    let key = format!("{:?}", series.labels);
                    for sample in &series.samples {
                        let before = last.insert(key.clone(), sample.timestamp);
                        assert!(before.is_none_or(|b| b < sample.timestamp), "{key}");
                        samples.fetch_add(1, Ordering::Relaxed);
                    }
                }
                status
            }
        }),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_any_2xx_is_a_success_and_others_fail() {
    for (status, ok) in [
        (StatusCode::NO_CONTENT, true),
        (StatusCode::OK, true),
        (StatusCode::BAD_REQUEST, false),
        (StatusCode::SERVICE_UNAVAILABLE, false),
    ] {
        let samples = Arc::new(AtomicU64::new(0));
        let url = remote_write_server(status, Arc::clone(&samples)).await;
        let report = run(BenchConfig {
            format: loadgen::Format::RemoteWrite,
            samples_per_request: 700,
            clients: 3,
            requests: 10,
            keep_alive: true,
            ..config(&url)
        })
        .await;
        assert_eq!(report.total, 30, "{status}");
        assert_eq!(samples.load(Ordering::Relaxed), 30 * 700, "{status}");
        if ok {
            assert_eq!(report.successful, 30, "{status}: {:?}", report.failures);
            assert_eq!(report.samples_per_sec, Some(report.metrics_per_sec));
            assert!(report.metrics_per_sec > 0.0);
        } else {
            assert_eq!(report.successful, 0, "{status}");
            assert_eq!(report.failures[&format!("status_{}", status.as_u16())], 30);
        }
    }
}
