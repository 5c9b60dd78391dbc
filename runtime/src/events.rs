//! Per-device events from the serving paths (DHCP exchanges, TFTP and HTTP fetches)
//! into the status store's device log, without ever making a request wait on SQLite.
//!
//! Emitters `try_send` into a bounded channel; one writer task drains it in batches of
//! up to [`BATCH`] events, lingering [`LINGER`] after the first event of a quiet spell so
//! that a burst shares one transaction (under HTTP load, one commit per few events was
//! a fifth of the server's CPU: perf, bench/http). When the writer falls behind, events
//! are dropped and counted rather than slowing DHCP or HTTP.
//!
//! Durability: events are the device's history, not its status. Their transactions
//! commit without an fsync ([`crate::status::Store::events`]); a clean shutdown flushes
//! every queued event ([`Sink::flush`]); kill -9 loses at most the events still queued
//! here (at most [`LINGER`] plus one write's worth), never a committed one. Device
//! reports (the status itself) go through the API and stay durable when acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::status::Store;

/// Most events in one transaction.
pub const BATCH: usize = 1024;
/// How long the writer waits for more events after the first of a batch.
pub const LINGER: Duration = Duration::from_millis(20);
/// Events waiting at most; past that new ones are dropped (and counted).
const QUEUE: usize = 8192;

#[derive(Debug, Clone)]
pub struct Event {
    pub ip: String,
    pub kind: &'static str,
    pub text: String,
    pub name: Option<String>,
    pub mac: Option<String>,
}

enum Msg {
    Event(Event),
    /// Answer once every event queued before this one is committed.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Sink {
    tx: Option<mpsc::Sender<Msg>>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// A sink that discards everything (tests, or a runtime without a store).
    pub fn disabled() -> Sink {
        Sink { tx: None, dropped: Arc::new(AtomicU64::new(0)) }
    }

    pub fn emit(&self, e: Event) {
        if let Some(tx) = &self.tx
            && tx.try_send(Msg::Event(e)).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wait until every event emitted before this call is committed (or could not be:
    /// the writer logs that). For a clean shutdown.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Start the writer; returns the sink to hand to the listeners.
pub fn start(store: Arc<Store>) -> Sink {
    let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
    tokio::spawn(async move {
        // Grown as a batch needs and shrunk after it: a full batch's buffer (180 kB)
        // kept for the runtime's whole idle life would be a fiftieth of its RSS.
        let mut msgs = Vec::new();
        while rx.recv_many(&mut msgs, BATCH).await > 0 {
            if msgs.len() < BATCH && !msgs.iter().any(|m| matches!(m, Msg::Flush(_))) {
                tokio::time::sleep(LINGER).await;
                while msgs.len() < BATCH
                    && let Ok(m) = rx.try_recv()
                {
                    msgs.push(m);
                }
            }
            let mut events = Vec::with_capacity(msgs.len());
            let mut flushes = Vec::new();
            for m in msgs.drain(..) {
                match m {
                    Msg::Event(e) => events.push(e),
                    Msg::Flush(f) => flushes.push(f),
                }
            }
            msgs.shrink_to(16);
            if !events.is_empty() {
                write(&store, events).await;
            }
            for f in flushes {
                let _ = f.send(());
            }
        }
    });
    Sink { tx: Some(tx), dropped: Arc::new(AtomicU64::new(0)) }
}

async fn write(store: &Arc<Store>, events: Vec<Event>) {
    let store = store.clone();
    let res = tokio::task::spawn_blocking(move || {
        let r = store.events(&events);
        if r.is_ok() {
            crate::web::live::recorded(&store, &events);
        }
        r
    })
    .await;
    if let Ok(Err(e)) = res {
        tracing::warn!(error = %e, "could not record device events");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> Event {
        Event { ip: "10.0.0.9".into(), kind: "http", text: format!("GET /f{i}: 200"), name: None, mac: None }
    }

    /// A clean shutdown loses nothing: flush waits for every event emitted before it,
    /// including those that arrived while the writer lingered or wrote a batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_commits_every_queued_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let sink = start(store.clone());
        let n = 3 * BATCH + 17;
        for i in 0..n {
            sink.emit(ev(i));
            if i % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
        sink.flush().await;
        assert_eq!(sink.dropped(), 0);
        let log = store.log("10.0.0.9").unwrap();
        assert_eq!(log.len(), n, "every event before the flush is committed");
        assert_eq!(log.iter().filter(|e| e.text == format!("GET /f{}: 200", n - 1)).count(), 1);
        // And they survive reopening the database (a new process after the shutdown).
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.log("10.0.0.9").unwrap().len(), n);
    }

    #[tokio::test]
    async fn a_disabled_sink_flushes_at_once() {
        let sink = Sink::disabled();
        sink.emit(ev(1));
        sink.flush().await;
        assert_eq!(sink.dropped(), 0);
    }
}
