//! Live progress: client tasks bump two atomics, and (only on a terminal) a
//! side task prints them once a second on stderr.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::outcome::Outcome;

/// Shared counters; relaxed atomics are enough for a display.
#[derive(Debug, Default)]
pub struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    pub fn note(&self, outcome: Outcome) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        if outcome != Outcome::Success {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The once-a-second printer; `stop` ends the line.
pub struct Printer {
    task: JoinHandle<()>,
}

impl Printer {
    pub fn start(counters: Arc<Counters>, start: Instant) -> Self {
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticker.tick().await; // the first tick is immediate
            let mut last = 0;
            loop {
                ticker.tick().await;
                let completed = counters.completed();
                let line = format!(
                    "\r\x1b[K[{:>5.0}s] {completed} requests, {} failed, {} req/s",
                    start.elapsed().as_secs_f64(),
                    counters.failed(),
                    completed.saturating_sub(last),
                );
                last = completed;
                // Progress is best effort: a closed stderr must not stop the run.
                let mut stderr = std::io::stderr().lock();
                let _ = stderr.write_all(line.as_bytes());
                let _ = stderr.flush();
            }
        });
        Self { task }
    }

    pub fn stop(self) {
        self.task.abort();
        let _ = writeln!(std::io::stderr());
    }
}
