//! SIGTERM and SIGINT set the stop flag the consumer loops check; progress
//! for whoever watches: a line redrawn every second on a terminal, else a
//! log line every 10 s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::sink::metrics::ConsumeMetrics;

/// Registers now (a signal before the task first runs is not missed).
pub fn watch(rt: &tokio::runtime::Handle, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let _enter = rt.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    rt.spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("stopping: finishing what is in flight, then committing");
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}

pub async fn progress(m: Arc<ConsumeMetrics>) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        return redrawn(m).await;
    }
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let sent = m.sent.get();
        if sent == last && m.retried.get() == 0 {
            continue;
        }
        tracing::info!(
            sent,
            per_second = (sent - last) / 10,
            retried = m.retried.get(),
            dead_lettered = m.dead_lettered.get(),
            replayed = m.replayed.get(),
            "delivery progress"
        );
        last = sent;
    }
}

/// One status line, rewritten in place every second.
async fn redrawn(m: Arc<ConsumeMetrics>) {
    use std::io::Write;
    let mut last = m.sent.get();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sent = m.sent.get();
        let line = format!(
            // Cursor back at the start: a log line written next covers it.
            "\x1b[2Ksent {sent} samples ({}/s), retried {}, dead-lettered {}, replayed {}\r",
            sent - last,
            m.retried.get(),
            m.dead_lettered.get(),
            m.replayed.get()
        );
        last = sent;
        // A terminal that went away is no reason to stop delivering.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}
