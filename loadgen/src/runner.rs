//! Drives the client tasks: one tokio task per client, each with its own
//! `Stats`, so the hot path shares nothing but two relaxed atomics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hyper::header::HeaderValue;

use super::client::{Client, ClientConfig, Target};
use super::config::Format;
use super::influx::{self, InfluxBodies};
use super::otlp::{self, OtlpBodies};
use super::outcome::FailureKind;
use super::payload::BodyPool;
use super::progress::Counters;
use super::remote_write::{self, RemoteWriteBodies};
use super::schedule::{instant_after, OpenSchedule, Pacing, Plan, Stop};
use super::stats::Stats;

/// Everything the client tasks share (read-only).
pub struct Load {
    pub plan: Plan,
    pub target: Target,
    pub config: ClientConfig,
    /// JSON bodies (unused for remote_write).
    pub pool: BodyPool,
    pub format: Format,
    /// remote_write, line protocol: samples (fields) per request.
    pub samples_per_request: usize,
    /// remote_write: series per request at most.
    pub series_per_request: usize,
    /// remote_write: new series in every request.
    pub series_churn: bool,
    /// Line protocol: fields per line.
    pub fields_per_line: usize,
    /// One `Authorization` value per client.
    pub authorizations: Vec<HeaderValue>,
    pub counters: Arc<Counters>,
}

/// Where one client's bodies come from: the shared JSON pool, or (remote_write)
/// its own series, stamped afresh for every request.
enum Bodies {
    Pool,
    RemoteWrite(Box<RemoteWriteBodies>),
    Influx(Box<InfluxBodies>),
    Otlp(Box<OtlpBodies>),
}

impl Bodies {
    fn new(load: &Load, id: u32) -> Self {
        match load.format {
            Format::Json => Self::Pool,
            Format::RemoteWrite => Self::RemoteWrite(Box::new(
                RemoteWriteBodies::new(id, load.samples_per_request, load.series_per_request)
                    .churning(load.series_churn),
            )),
            Format::Influx => Self::Influx(Box::new(InfluxBodies::new(
                id,
                load.samples_per_request,
                load.fields_per_line,
                load.config.gzip,
            ))),
            Format::Otlp => Self::Otlp(Box::new(OtlpBodies::new(
                id,
                load.samples_per_request,
                load.config.gzip,
            ))),
        }
    }

    /// Body for this client's `k`-th request; `None` if it could not be
    /// built (the run checked one body before starting, so not expected).
    fn next(&mut self, load: &Load, id: u32, k: u64) -> Option<Bytes> {
        match self {
            Self::Pool => Some(load.pool.get(u64::from(id).wrapping_add(k))),
            Self::RemoteWrite(bodies) => bodies.next_body(remote_write::now_ms()).ok(),
            Self::Influx(bodies) => bodies.next_body(influx::now_ns()).ok(),
            Self::Otlp(bodies) => bodies.next_body(otlp::now_ns()).ok(),
        }
    }
}

/// Runs all clients to completion; returns the merged stats and the wall time.
pub async fn run_clients(load: Load, start: Instant) -> anyhow::Result<(Stats, Duration)> {
    let load = Arc::new(load);
    let mut tasks = Vec::with_capacity(load.plan.clients as usize);
    for id in 0..load.plan.clients {
        let stats = Stats::new()?;
        let load = Arc::clone(&load);
        tasks.push(tokio::spawn(async move {
            let authorization = load
                .authorizations
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("load_client"));
            let client = Client::new(load.target.clone(), load.config.clone(), authorization);
            match load.plan.pacing {
                Pacing::Closed { interval } => {
                    closed_loop(&load, id, client, stats, start, interval).await
                }
                Pacing::Open { rate } => {
                    let schedule = OpenSchedule {
                        rate,
                        clients: load.plan.clients,
                        stop: load.plan.stop,
                    };
                    open_loop(&load, id, client, stats, start, schedule).await
                }
            }
        }));
    }
    let mut total = Stats::new()?;
    for task in tasks {
        let stats = task.await.context("bench client task failed")?;
        total.merge(&stats)?;
    }
    Ok((total, start.elapsed()))
}

/// Send, wait for the answer, pause, repeat.
async fn closed_loop(
    load: &Load,
    id: u32,
    mut client: Client,
    mut stats: Stats,
    start: Instant,
    interval: Duration,
) -> Stats {
    let (limit, deadline) = match load.plan.stop {
        Stop::Requests(n) => (Some(n), None),
        // An unrepresentable end is as good as no end.
        Stop::After(duration) => (None, start.checked_add(duration)),
    };
    let mut bodies = Bodies::new(load, id);
    let mut k: u64 = 0;
    loop {
        if limit.is_some_and(|n| k >= n) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let Some(body) = bodies.next(load, id, k) else {
            stats.record_failures(FailureKind::NotSent, limit.map_or(1, |n| n - k));
            break;
        };
        let sent = Instant::now();
        let outcome = client.send(body).await;
        stats.record(outcome, sent.elapsed());
        load.counters.note(outcome);
        k += 1;
        let more_to_do = limit.is_none_or(|n| k < n);
        if !interval.is_zero() && more_to_do {
            let wake = Instant::now().checked_add(interval);
            // Never sleep past the end of the run.
            let wake = match (wake, deadline) {
                (Some(w), Some(d)) => Some(w.min(d)),
                (w, None) => w,
                (None, d) => d,
            };
            match wake {
                Some(wake) => tokio::time::sleep_until(wake.into()).await,
                None => tokio::time::sleep(interval).await,
            }
        }
    }
    client.tally_connections(&mut stats);
    stats
}

/// Fixed arrival schedule; latency counts from the slot's due time whenever
/// the client was late for it, so server stalls show up in the percentiles
/// instead of silently thinning the load (coordinated omission).
async fn open_loop(
    load: &Load,
    id: u32,
    mut client: Client,
    mut stats: Stats,
    start: Instant,
    schedule: OpenSchedule,
) -> Stats {
    let slots = schedule.slots(id);
    let mut bodies = Bodies::new(load, id);
    // Requests may run late, but not forever: past the last slot plus one
    // timeout, whatever is still unsent is reported as `not_sent`.
    let give_up =
        instant_after(start, schedule.end()).and_then(|end| end.checked_add(load.config.timeout));
    for k in 0..slots {
        let due = instant_after(start, schedule.due(id, k));
        let now = Instant::now();
        let (Some(due), true) = (due, give_up.is_none_or(|g| now < g)) else {
            stats.record_failures(FailureKind::NotSent, slots - k);
            break;
        };
        let origin = if now >= due {
            // Behind schedule (the previous answer came late): the wait
            // since `due` is the server's doing and is counted.
            due
        } else {
            tokio::time::sleep_until(due.into()).await;
            // On time: measure from the actual send, so the timer's
            // millisecond granularity is not billed to the server.
            Instant::now()
        };
        let Some(body) = bodies.next(load, id, k) else {
            stats.record_failures(FailureKind::NotSent, slots - k);
            break;
        };
        let outcome = client.send(body).await;
        stats.record(outcome, origin.elapsed());
        load.counters.note(outcome);
    }
    client.tally_connections(&mut stats);
    stats
}
