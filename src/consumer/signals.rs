//! SIGTERM and SIGINT set the stop flag the consumer loops check; a
//! progress line every 10 s for whoever watches the log.

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
