//! One lane's sender: delivers a batch, splits what the store refused, and
//! dead-letters the single samples it refuses for good.
//!
//! Each answer means what the store's retry policy says
//! ([`Sink::classify`], the table in [`super::retry`]): accepted; retried,
//! the same batch, without end, with backoff and jitter
//! ([`super::backoff`]), so the place in the partition is kept; or refused.
//! A refused batch can never succeed as it is. A store such as Prometheus
//! refuses a whole request for one bad sample without saying which, so the
//! batch is split in halves, sent first half first (series order is kept),
//! down to the samples that are refused alone: those go to the dead-letter
//! file with the store's answer — unless the answer means "already stored"
//! ([`Sink::already_stored`]) for a sample that may have been delivered
//! before: sent in a request that got no answer or before a crash
//! ([`super::marks`]), or an exact copy of one delivered lately (the queue
//! holds it twice, [`super::recent`]). That counts as delivered.
//!
//! A batch the store's encoding cannot hold ([`Sink::encode`]'s error, a
//! body past what snappy compresses) is taken as refused without being
//! sent: split the same way, and a sample that cannot be encoded alone is
//! dead-lettered with the reason. It is never sent as an empty body.
//!
//! [`Sink::classify`]: crate::sink::store::Sink::classify
//! [`Sink::already_stored`]: crate::sink::store::Sink::already_stored
//! [`Sink::encode`]: crate::sink::store::Sink::encode

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::backoff::Backoff;
use super::context::DeliveryContext;
use super::http::Client;
use super::marks::Mark;
use super::recent::{Recent, REMEMBERED};
use super::retry::{Answer, Decision};
use crate::sink::store::{Body, EncodeError};
use crate::sink::Sample;

/// Shutdown came while the batch was waiting for a retry.
#[derive(Debug)]
pub struct Stopped;

/// The store's final word on a batch.
enum Verdict {
    Accepted,
    /// `status` is `None` for a batch that could not be encoded: never sent.
    Refused {
        status: Option<u16>,
        reason: String,
    },
}

/// One lane's sender: the partition worker splits its series among its
/// lanes by hash, each lane with one request in flight, so a series'
/// samples still reach the store in order.
pub struct LaneSender {
    pub context: Arc<DeliveryContext>,
    pub partition: u32,
    pub client: Client,
    /// The partition's sent mark, shared by its lanes (it only rises).
    pub mark: Arc<Mutex<Mark>>,
    /// Samples at or below this offset may be in the store already.
    pub uncertain: Option<u64>,
    pub stop: watch::Receiver<bool>,
    /// What this lane delivered lately (duplicates within the queue).
    pub recent: Recent,
}

impl LaneSender {
    /// The senders of the `n` lanes of `partition`.
    pub fn lanes(
        context: &Arc<DeliveryContext>,
        partition: u32,
        n: usize,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Vec<LaneSender>> {
        let mark = Mark::open(&context.marks_dir, partition)?;
        let uncertain = mark.get();
        let mark = Arc::new(Mutex::new(mark));
        let n = n.max(1);
        Ok((0..n)
            .map(|_| LaneSender {
                client: Client::new(context.endpoint.clone()),
                uncertain,
                mark: mark.clone(),
                context: context.clone(),
                partition,
                stop: stop.clone(),
                // A series stays in its lane: a lane remembers its share.
                recent: Recent::new(REMEMBERED / n),
            })
            .collect())
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Delivers `samples` (in offset order): on `Ok` every one of them was
    /// acknowledged, dead-lettered, or recognised as already stored.
    /// `encoded`, if given, is the request body of all of `samples` (or
    /// why it could not be made).
    pub async fn deliver(
        &mut self,
        samples: &[Sample],
        mut encoded: Option<Result<Body, EncodeError>>,
    ) -> Result<(), Stopped> {
        let sink = self.context.sink.clone();
        // Samples the store cannot take at all go first to the dead-letter
        // file; the common case (none) sends the slice as it is.
        let filtered: Vec<Sample>;
        let mut ok = samples;
        if samples.iter().any(|s| sink.refuse(s).is_some()) {
            let mut keep = Vec::with_capacity(samples.len());
            for s in samples {
                match sink.refuse(s) {
                    Some(reason) => self.dead_letter(std::slice::from_ref(s), None, &reason),
                    None => keep.push(s.clone()),
                }
            }
            filtered = keep;
            ok = &filtered;
            encoded = None;
        }
        let mut parts = vec![(0, ok.len())];
        while let Some((a, b)) = parts.pop() {
            if a == b {
                continue;
            }
            let part = &ok[a..b];
            let body = match encoded.take() {
                Some(body) => body,
                None => super::tenant::encode(&self.context, part),
            };
            let verdict = match body {
                Ok(body) => self.send_until_decided(part, body).await?,
                // Never sent: split as a refusal is, down to the sample
                // that cannot be encoded alone, dead-lettered with why.
                Err(e) => Verdict::Refused {
                    status: None,
                    reason: e.to_string(),
                },
            };
            match verdict {
                Verdict::Accepted => {
                    self.context.metrics.sent.inc_by(part.len() as u64);
                    for s in part {
                        self.recent.insert(s);
                    }
                }
                Verdict::Refused { status, reason } if part.len() == 1 => {
                    let maybe_sent = self.uncertain.is_some_and(|u| part[0].offset <= u)
                        || self.recent.contains(&part[0]);
                    let replay =
                        status.is_some_and(|s| sink.already_stored(s, &reason)) && maybe_sent;
                    if replay {
                        self.context.metrics.replayed.inc();
                    } else {
                        self.dead_letter(part, status, &reason);
                    }
                }
                Verdict::Refused { .. } => {
                    let mid = a + (b - a) / 2;
                    // Popped first half first: each series stays in order.
                    parts.push((mid, b));
                    parts.push((a, mid));
                }
            }
            if self.stopping() && !parts.is_empty() {
                return Err(Stopped);
            }
        }
        Ok(())
    }

    fn dead_letter(&self, samples: &[Sample], status: Option<u16>, reason: &str) {
        let m = &self.context.metrics;
        m.dead_lettered.inc_by(samples.len() as u64);
        m.error(&format!("dead-lettered: {reason}"));
        tracing::warn!(
            partition = self.partition,
            offset = samples.first().map(|s| s.offset),
            status,
            "the store refused {} sample(s) for good: {reason}; written to {}",
            samples.len(),
            self.context.dead.path().display()
        );
        if let Err(e) = self.context.dead.write(
            self.partition,
            samples,
            self.context.sink.name(),
            status,
            reason,
        ) {
            // Losing it silently is not an option: stop the process, the
            // offset stays uncommitted and the next start tries again.
            tracing::error!("cannot write the dead-letter file: {e}");
            std::process::abort();
        }
    }

    /// Sends `body` (the samples `part`) until the store decides. What an
    /// answer means is the store's retry policy's (`Sink::classify`): this
    /// loop only marks, sends, counts, backs off and stops.
    async fn send_until_decided(
        &mut self,
        part: &[Sample],
        body: Body,
    ) -> Result<Verdict, Stopped> {
        let last = part.iter().map(|s| s.offset).max().unwrap_or(0);
        let mut backoff = Backoff::new(self.context.retry_min, self.context.retry_max);
        let sink = self.context.sink.clone();
        loop {
            self.raise_mark(last);
            let started = Instant::now();
            let answer = self.client.send(&body).await;
            self.count(&answer, started);
            if answer.may_be_stored() {
                // A later refusal of these samples as already stored is believed.
                self.uncertain = Some(self.uncertain.map_or(last, |u| u.max(last)));
            }
            let (after, why) = match sink.classify(&answer) {
                Decision::Accept => return Ok(Verdict::Accepted),
                Decision::Refuse { status, reason } => {
                    return Ok(Verdict::Refused {
                        status: Some(status),
                        reason,
                    })
                }
                Decision::Retry {
                    after,
                    why,
                    config_error,
                } => {
                    if config_error {
                        tracing::error!(
                            partition = self.partition,
                            "the store answers {answer}: check --url and the credentials; retrying"
                        );
                    }
                    (after, why)
                }
            };
            let metrics = &self.context.metrics;
            metrics.retried.inc_by(part.len() as u64);
            metrics.error(&why);
            let wait = backoff.next(after);
            tracing::warn!(
                partition = self.partition,
                samples = part.len(),
                "store: {why}; retrying in {wait:?}"
            );
            self.sleep(wait).await?;
        }
    }

    /// Before sending: after a crash from here on, the records up to `last`
    /// may be in the store.
    fn raise_mark(&self, last: u64) {
        let raised = match self.mark.lock() {
            Ok(mut mark) => mark.raise(last),
            Err(_) => Err(std::io::Error::other("poisoned")),
        };
        if let Err(e) = raised {
            tracing::warn!(
                partition = self.partition,
                "cannot record the sent mark: {e}"
            );
        }
    }

    /// Counts a request by its outcome, and the latency of an answered one.
    fn count(&self, answer: &Answer, started: Instant) {
        let metrics = &self.context.metrics;
        if matches!(answer, Answer::Status { .. }) {
            metrics.latency.observe(started.elapsed().as_secs_f64());
        }
        metrics
            .requests
            .with_label_values(&[&answer.outcome()])
            .inc();
    }

    /// Waits `wait` before the next attempt, unless shutdown comes first.
    async fn sleep(&self, wait: Duration) -> Result<(), Stopped> {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return Err(Stopped);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = stop.changed() => Err(Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;

    use super::*;
    use crate::record::{MetricType, Value};
    use crate::sink::delivery::dead_letter::DeadLetters;
    use crate::sink::delivery::http::Endpoint;
    use crate::sink::metrics::ConsumeMetrics;
    use crate::sink::store::Sink;

    /// A store protocol whose encoding cannot hold a sample named
    /// `unencodable` (as snappy cannot hold a body over ~3.7 GB): the body
    /// is the samples' names, one a line.
    struct Fussy;

    impl Sink for Fussy {
        fn name(&self) -> &'static str {
            "fussy"
        }
        fn refuse(&self, _: &Sample) -> Option<String> {
            None
        }
        fn encode(&self, samples: &[Sample]) -> Result<Body, EncodeError> {
            if samples.iter().any(|s| s.name() == "unencodable") {
                return Err(EncodeError(format!("{} samples too big", samples.len())));
            }
            let names: Vec<&str> = samples.iter().map(|s| s.name()).collect();
            Ok(Body {
                content_type: "text/plain",
                encoding: None,
                headers: &[],
                bytes: Bytes::from(names.join("\n")),
                tenant: None,
            })
        }
        fn already_stored(&self, _: u16, _: &str) -> bool {
            false
        }
    }

    /// A store that answers every request 204 and keeps its body.
    async fn store() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = bodies.clone();
        let app = axum::Router::new().route(
            "/write",
            axum::routing::post(move |body: String| async move {
                kept.lock().unwrap().push(body);
                axum::http::StatusCode::NO_CONTENT
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, bodies)
    }

    /// A batch that cannot be encoded is never sent as anything else (an
    /// empty body a store would acknowledge): it is split like a refused
    /// one; the rest is delivered, the sample that cannot be encoded alone
    /// is dead-lettered with the reason, and only then is the batch done.
    #[tokio::test]
    async fn a_batch_that_cannot_be_encoded_is_split_and_dead_lettered_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, bodies) = store().await;
        let endpoint = Endpoint::resolve(
            &format!("http://{addr}/write"),
            &super::super::http::Auth::None,
            &[],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let metrics = Arc::new(ConsumeMetrics::new().unwrap());
        let dead_path = dir.path().join("dead-letter/g.jsonl");
        let context = Arc::new(DeliveryContext {
            sink: Arc::new(Fussy),
            endpoint: Arc::new(endpoint),
            dead: DeadLetters::open(&dead_path).unwrap(),
            metrics: metrics.clone(),
            marks_dir: dir.path().join("marks"),
            lanes: 1,
            max_samples: 100,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(10),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(100),
            tenant_header: None,
        });
        let (_stop_tx, stop) = watch::channel(false);
        let mut lane = LaneSender::lanes(&context, 0, 1, &stop).unwrap().remove(0);
        let names = ["a", "b", "unencodable", "c", "d"];
        let samples: Vec<Sample> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Sample::new(n, &[], Value::Float(1.0), 1000, MetricType::Gauge, i as u64))
            .collect();
        let encoded = Some(context.sink.encode(&samples));
        lane.deliver(&samples, encoded).await.unwrap();

        let sent: Vec<String> = bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.lines().map(String::from).collect::<Vec<_>>())
            .collect();
        let mut sorted = sent.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c", "d"], "sent {sent:?}");
        assert!(bodies.lock().unwrap().iter().all(|b| !b.is_empty()));
        assert_eq!(metrics.sent.get(), 4);
        assert_eq!(metrics.dead_lettered.get(), 1);
        let text = std::fs::read_to_string(&dead_path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["name"], "unencodable");
        assert_eq!(lines[0]["offset"], 2);
        assert!(lines[0]["status"].is_null(), "never sent: {text}");
        assert_eq!(
            lines[0]["reason"],
            "cannot encode the request: 1 samples too big"
        );
    }
}
