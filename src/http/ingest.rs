//! How a request is ingested, whatever its protocol. One path, top to
//! bottom:
//!
//! 1. framing: header limits, `Transfer-Encoding` ([`check_headers`]);
//! 2. the protocol's own header checks: content type, encoding, query
//!    string ([`Ingest::asked`]);
//! 3. admission: client id, tenant, rate limits, in-flight slot ([`admit`]);
//! 4. the body, read under `--max-body` and undone from gzip or snappy
//!    under the same limit ([`body::read`]);
//! 5. the clock, read once: the time of receipt stands in for every missing
//!    timestamp and stamps every stored batch ([`Received`]);
//! 6. the protocol decodes the body and maps it to metrics, counting what it
//!    refused ([`Ingest::decode`]);
//! 7. the metrics are split into one message per partition and stored
//!    under the request's tenant, each part durable (or accepted) before
//!    the answer ([`Parts`]);
//! 8. the counters, by one rule ([`count`]);
//! 9. the answer, in the protocol's shape ([`Ingest::answer`]);
//! 10. the request's status and latency ([`record`]).
//!
//! A protocol supplies only steps 2, 6 and 9 (and InfluxDB 1.x where its
//! credentials are); each `http/<protocol>.rs` is that and its routes. Every refusal before step 7 stores nothing; a 429 or
//! 503 means nothing was stored and the sender retries the whole request.

use std::borrow::Cow;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{request, HeaderMap};
use axum::response::Response;

use super::admit::{admit, record};
use super::body::{self, check_headers, Coding};
use super::error::ApiError;
use super::parts::Parts;
use super::state::App;
use crate::queue::Receipt;
use crate::record::Metric;
use crate::telemetry::Protocol;

/// Reasons quoted in a refusal's message, at most (of the more a protocol
/// module keeps).
pub const REASONS_SHOWN: usize = 5;

/// The first [`REASONS_SHOWN`] reasons of a refusal, as a 400 quotes them.
pub fn first_reasons(reasons: &[String]) -> String {
    let shown: Vec<&str> = reasons
        .iter()
        .take(REASONS_SHOWN)
        .map(String::as_str)
        .collect();
    shown.join("; ")
}

/// What one protocol supplies to the ingest path; the rest is [`handle`]'s.
pub trait Ingest: Sync {
    /// Counted and labelled as.
    const PROTOCOL: Protocol;
    /// How its bodies are encoded.
    const CODING: Coding;
    /// Keep a request one message in its client's partition whatever
    /// `--partition-by` says (`POST /metrics`: all or nothing).
    const WHOLE: bool = false;

    /// What the request head asks for that decoding needs: a version, an
    /// encoding, a database and precision.
    type Asked: Send + Sync;
    /// What decoding keeps for the metrics to borrow from (remote_write's
    /// decoded series); `()` when they borrow only the body.
    type Kept: Send + Sync;
    /// The protocol's own account of what it refused, for its answer.
    type Refused: Send;

    /// The protocol's header checks (415 for a content type or encoding it
    /// does not take, 400 for a bad query string), before admission.
    fn asked(&self, head: &request::Parts) -> Result<Self::Asked, ApiError>;

    /// The headers that say who the client is. InfluxDB 1.x also takes
    /// `?u=&p=`, which its protocol adds as the header they stand for.
    fn credentials<'h>(&self, _asked: &Self::Asked, headers: &'h HeaderMap) -> Cow<'h, HeaderMap> {
        Cow::Borrowed(headers)
    }

    /// Decodes `body` into the metrics to store and what was refused.
    /// `Err` when the body as a whole is invalid: a 400 with that message,
    /// counted as a validation error. `kept` holds what the metrics borrow
    /// when that is not the body.
    fn decode<'s>(
        &self,
        app: &App,
        request: Incoming<'s, Self::Asked>,
        kept: &'s mut Option<Self::Kept>,
    ) -> Result<Decoded<'s, Self::Refused>, String>;

    /// The answer in the protocol's shape: what was stored and refused, or
    /// why nothing was. `head` is the request's, for a protocol whose
    /// refusal shape depends on what it asked.
    fn answer(
        &self,
        head: &request::Parts,
        outcome: Result<Stored<Self::Refused>, ApiError>,
    ) -> Response;
}

/// One request as a protocol's [`Ingest::decode`] sees it.
pub struct Incoming<'s, A> {
    pub asked: &'s A,
    pub client: &'s str,
    pub body: &'s [u8],
    pub received: Received,
}

/// A decoded request: what to store, and what was refused.
pub struct Decoded<'s, R> {
    pub metrics: Vec<Metric<'s>>,
    /// Data points refused while the rest is stored (a sample, a line or a
    /// string field, an OTLP point): counted as refused samples.
    pub refused_points: usize,
    /// The protocol's account of them, for its answer.
    pub refused: R,
}

/// What a stored request's answer reports.
#[derive(Debug)]
pub struct Stored<R> {
    /// Metrics stored.
    pub metrics: usize,
    /// Where each message went (one per partition the request touched).
    pub receipts: Vec<Receipt>,
    pub refused: R,
}

/// When a request was received: the clock, read once per request.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    ns: i64,
}

impl Received {
    /// Now. A clock before 1970 reads as 0: stored times then say plainly
    /// that the clock is wrong, where refusing every request would lose the
    /// data.
    pub fn now() -> Received {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Received {
            ns: i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    pub fn ns(self) -> i64 {
        self.ns
    }

    pub fn ms(self) -> u64 {
        (self.ns / 1_000_000) as u64
    }
}

/// Ingests one request of protocol `P` and answers it.
pub async fn handle<P: Ingest>(app: &App, protocol: &P, req: Request) -> Response {
    let started = Instant::now();
    let (head, body) = req.into_parts();
    let outcome = ingest(app, protocol, &head, body).await;
    let response = protocol.answer(&head, outcome);
    record(app, P::PROTOCOL, started, &response);
    response
}

async fn ingest<P: Ingest>(
    app: &App,
    protocol: &P,
    head: &request::Parts,
    body: axum::body::Body,
) -> Result<Stored<P::Refused>, ApiError> {
    check_headers(&head.headers)?;
    let asked = protocol.asked(head)?;
    let admitted = admit(
        app,
        &protocol.credentials(&asked, &head.headers),
        head.extensions.get(),
    )?;
    let body = body::read(body, &head.headers, app.max_body, P::CODING).await?;
    let received = Received::now();

    let mut kept = None;
    let request = Incoming {
        asked: &asked,
        client: &admitted.client,
        body: &body,
        received,
    };
    let decoded = protocol.decode(app, request, &mut kept).map_err(|m| {
        app.telemetry.validation_errors.inc();
        ApiError::bad_request(m)
    })?;

    let tenant = admitted.tenant.as_deref();
    let mut parts = Parts::new(app, &admitted.client, tenant, P::WHOLE);
    parts.extend(decoded.metrics);
    let placed = parts.store(app, received.ms()).await?;
    let stored = Stored {
        metrics: placed.metrics,
        receipts: placed.receipts,
        refused: decoded.refused,
    };
    count(app, P::PROTOCOL, tenant, &stored, decoded.refused_points);
    Ok(stored)
}

/// The one counting rule, the same for every protocol: a request counts
/// once the queue took every part of it. Then what was stored counts in
/// `batches_processed` (one per message), `metrics_received` and the
/// protocol's `samples_received`, and what was refused beside it in the
/// protocol's `samples_refused` and once in `validation_errors`. A request
/// the queue refused (503) counts nowhere here: its sender retries it.
/// A tenant's stored points count under it too.
fn count<R>(
    app: &App,
    protocol: Protocol,
    tenant: Option<&str>,
    stored: &Stored<R>,
    refused_points: usize,
) {
    let t = &app.telemetry;
    if stored.metrics > 0 {
        if let Some(tenant) = tenant {
            t.tenants.samples(tenant, stored.metrics as u64);
        }
        t.batches_processed.inc_by(stored.receipts.len() as u64);
        t.metrics_received.inc_by(stored.metrics as u64);
        t.samples_received
            .with_label_values(&[protocol.as_str()])
            .inc_by(stored.metrics as u64);
    }
    if refused_points > 0 {
        t.validation_errors.inc();
        t.samples_refused
            .with_label_values(&[protocol.as_str()])
            .inc_by(refused_points as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::StatusCode;
    use prost::Message as _;
    use tower::ServiceExt as _;

    use super::super::server::router;
    use super::super::state::{App, Settings};
    use crate::auth::Auth;
    use crate::queue::partitioner::{partition_for, series_key};
    use crate::queue::{
        BoxFuture, Message, PartitionBy, Queue, QueueError, Receipt, ShutdownReport,
    };
    use crate::telemetry::Telemetry;

    const PARTITIONS: u32 = 4;

    /// A queue that keeps every message it takes, or refuses them all as
    /// full (the 503 of a queue with no room).
    #[derive(Default)]
    struct TestQueue {
        refuse: bool,
        taken: Mutex<Vec<Message>>,
    }

    impl Queue for TestQueue {
        fn send(&self, msg: Message) -> BoxFuture<'_, Result<Receipt, QueueError>> {
            Box::pin(async move {
                if self.refuse {
                    return Err(QueueError::Full);
                }
                QueueError::check_partition(msg.partition, PARTITIONS)?;
                let mut taken = self.taken.lock().unwrap();
                let offset = taken
                    .iter()
                    .filter(|m| m.partition == msg.partition)
                    .count();
                let receipt = Receipt {
                    partition: msg.partition,
                    offset: Some(offset as u64),
                };
                taken.push(msg);
                Ok(receipt)
            })
        }
        fn ready(&self) -> bool {
            !self.refuse
        }
        fn partitions(&self) -> u32 {
            PARTITIONS
        }
        /// Text these tests can read.
        fn format(&self) -> crate::record::Format {
            crate::record::Format::Json
        }
        fn shutdown(&self, _timeout: Duration) -> BoxFuture<'_, ShutdownReport> {
            Box::pin(async { ShutdownReport::default() })
        }
    }

    fn app_over(queue: Arc<TestQueue>, partition_by: PartitionBy) -> Arc<App> {
        let settings = Settings {
            partition_by,
            rate_limit: 0,
            max_body: 1 << 20,
            max_inflight: 16,
        };
        let telemetry = Arc::new(Telemetry::new().unwrap());
        App::new(queue, Auth::new(vec![]), settings, telemetry)
    }

    async fn post(
        app: &Arc<App>,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> StatusCode {
        let mut req = axum::http::Request::post(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).unwrap();
        let response = router(app.clone(), Duration::from_secs(10))
            .oneshot(req)
            .await
            .unwrap();
        response.status()
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// One request of some protocol, and what it stores and refuses.
    struct Case {
        protocol: &'static str,
        path: &'static str,
        headers: Vec<(&'static str, &'static str)>,
        body: Vec<u8>,
        stored: u64,
        refused: u64,
    }

    /// One request of each protocol, each storing some points and (but
    /// JSON's, all or nothing) refusing one.
    fn requests() -> Vec<Case> {
        use prompb::v1::{Label, Sample, TimeSeries, WriteRequest};
        let label = |name: &str, value: &str| Label {
            name: name.into(),
            value: value.into(),
        };
        let samples = |n: i64| -> Vec<Sample> {
            (0..n)
                .map(|i| Sample {
                    value: i as f64,
                    timestamp: now_ms() - 1000 + i,
                })
                .collect()
        };
        let write = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "a")],
                    samples: samples(2),
                    ..TimeSeries::default()
                },
                TimeSeries {
                    // Not sorted: refused with its one sample.
                    labels: vec![label("__name__", "up"), label("z", "1"), label("b", "2")],
                    samples: samples(1),
                    ..TimeSeries::default()
                },
            ],
            metadata: vec![],
        };
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&write.encode_to_vec())
            .unwrap();
        vec![
            Case {
                protocol: "json",
                path: "/metrics",
                headers: vec![("content-type", "application/json")],
                body: br#"{"metrics":[{"name":"cpu","value":1,"type":"gauge","tags":{"host":"a"}},
                    {"name":"mem","value":2,"type":"gauge"}]}"#
                    .to_vec(),
                stored: 2,
                refused: 0,
            },
            Case {
                protocol: "remote_write",
                path: "/api/v1/write",
                headers: vec![
                    ("content-type", "application/x-protobuf"),
                    ("content-encoding", "snappy"),
                ],
                body: snappy,
                stored: 2,
                refused: 1,
            },
            Case {
                protocol: "influx",
                path: "/api/v2/write?bucket=b",
                headers: vec![],
                body: b"cpu,host=a idle=1,busy=2\nbad\ncpu,host=b idle=3\n".to_vec(),
                stored: 3,
                refused: 1,
            },
            Case {
                protocol: "otlp",
                path: "/v1/metrics",
                headers: vec![("content-type", "application/json")],
                body: br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
                    {"name":"g","gauge":{"dataPoints":[{"asInt":"1"},{"asInt":"2"}]}},
                    {"name":"","gauge":{"dataPoints":[{"asInt":"3"}]}}]}]}]}"#
                    .to_vec(),
                stored: 2,
                refused: 1,
            },
        ]
    }

    /// The one counting rule: a request the queue refused (503) counts
    /// nowhere, whatever its protocol, refused points included; one it
    /// took counts what it stored and what it refused.
    #[tokio::test]
    async fn requests_count_only_once_the_queue_took_them() {
        for refuse in [true, false] {
            for case in requests() {
                let Case {
                    protocol,
                    path,
                    stored,
                    refused,
                    ..
                } = case;
                let queue = Arc::new(TestQueue {
                    refuse,
                    ..TestQueue::default()
                });
                let app = app_over(queue, PartitionBy::Client);
                let status = post(&app, path, &case.headers, case.body).await;
                let t = &app.telemetry;
                let counted = (
                    t.metrics_received.get(),
                    t.batches_processed.get(),
                    t.samples_received.with_label_values(&[protocol]).get(),
                    t.samples_refused.with_label_values(&[protocol]).get(),
                    t.validation_errors.get(),
                );
                if refuse {
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
                    assert_eq!(counted, (0, 0, 0, 0, 0), "{path}");
                } else {
                    assert!(
                        status.is_success() || status == StatusCode::BAD_REQUEST,
                        "{path}: {status}"
                    );
                    let errors = u64::from(refused > 0);
                    assert_eq!(counted, (stored, 1, stored, refused, errors), "{path}");
                }
                let requests = t
                    .requests
                    .with_label_values(&[protocol, status.as_str()])
                    .get();
                assert_eq!(requests, 1, "{path}");
            }
        }
    }

    /// The partition is chosen where the request is split and written into
    /// each message: by client, or by series under `--partition-by series`
    /// (a whole `POST /metrics` batch stays in its client's partition).
    #[tokio::test]
    async fn each_message_names_the_partition_it_was_split_for() {
        let body = || -> Vec<u8> {
            (0..40)
                .map(|h| format!("cpu,host=h{h} idle=1,busy=2\n"))
                .collect::<String>()
                .into_bytes()
        };
        let queue = Arc::new(TestQueue::default());
        let app = app_over(queue.clone(), PartitionBy::Series);
        let auth = [("authorization", "telegraf")];
        assert_eq!(
            post(&app, "/api/v2/write?bucket=b", &auth, body()).await,
            StatusCode::NO_CONTENT
        );
        let json = br#"{"metrics":[{"name":"a","value":1,"type":"gauge","tags":{"x":"1"}},
            {"name":"b","value":1,"type":"gauge","tags":{"x":"2"}}]}"#;
        assert_eq!(
            post(&app, "/metrics", &auth, json.to_vec()).await,
            StatusCode::OK
        );
        let taken = std::mem::take(&mut *queue.taken.lock().unwrap());
        let (series, whole) = taken.split_at(taken.len() - 1);
        assert_eq!(
            series.len(),
            PARTITIONS as usize,
            "40 hosts touch every partition"
        );
        for m in series {
            assert_eq!(m.partition, partition_for(m.key.as_bytes(), PARTITIONS));
            let stored: serde_json::Value =
                serde_json::from_slice(&m.value.clone().into_bytes().unwrap()).unwrap();
            for metric in stored["metrics"].as_array().unwrap() {
                let host = metric["tags"]["host"].as_str().unwrap();
                let tags = [("db", "b"), ("host", host)];
                let key = series_key(metric["name"].as_str().unwrap(), tags);
                assert_eq!(partition_for(key.as_bytes(), PARTITIONS), m.partition);
            }
        }
        assert_eq!(whole[0].key, "telegraf");
        assert_eq!(whole[0].partition, partition_for(b"telegraf", PARTITIONS));

        // By client, one message in the client's partition.
        let queue = Arc::new(TestQueue::default());
        let app = app_over(queue.clone(), PartitionBy::Client);
        post(&app, "/api/v2/write?bucket=b", &auth, body()).await;
        let taken = queue.taken.lock().unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].key.as_str(), taken[0].partition),
            ("telegraf", partition_for(b"telegraf", PARTITIONS))
        );
    }

    /// The clock is read once: a line without a timestamp is stamped with
    /// the same time of receipt as the batch and the message it goes in.
    #[tokio::test]
    async fn one_time_of_receipt_per_request() {
        let queue = Arc::new(TestQueue::default());
        let app = app_over(queue.clone(), PartitionBy::Client);
        let lines: String = (0..2000).map(|i| format!("m,i={i} f=1\n")).collect();
        let status = post(&app, "/write?db=d", &[], lines.into_bytes()).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let taken = queue.taken.lock().unwrap();
        let stored: serde_json::Value =
            serde_json::from_slice(&taken[0].value.clone().into_bytes().unwrap()).unwrap();
        let received = stored["received_at"].as_u64().unwrap();
        assert_eq!(taken[0].timestamp_ms, received as i64);
        for metric in stored["metrics"].as_array().unwrap() {
            assert_eq!(metric["timestamp"].as_u64(), Some(received), "{metric}");
        }
    }
}
