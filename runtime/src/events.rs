//! Per-device events from the serving paths (DHCP exchanges, TFTP and HTTP fetches)
//! into the status store's device log, without ever making a request wait on SQLite.
//!
//! Emitters `try_send` into a bounded channel; one writer task drains it in batches.
//! When the writer falls behind, events are dropped and counted rather than slowing
//! DHCP: device reports (the durable part) go through the API, not through here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::status::Store;

#[derive(Debug, Clone)]
pub struct Event {
    pub ip: String,
    pub kind: &'static str,
    pub text: String,
    pub name: Option<String>,
    pub mac: Option<String>,
}

#[derive(Clone)]
pub struct Sink {
    tx: Option<mpsc::Sender<Event>>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// A sink that discards everything (tests, or a runtime without a store).
    pub fn disabled() -> Sink {
        Sink { tx: None, dropped: Arc::new(AtomicU64::new(0)) }
    }

    pub fn emit(&self, e: Event) {
        if let Some(tx) = &self.tx
            && tx.try_send(e).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Start the writer; returns the sink to hand to the listeners.
pub fn start(store: Arc<Store>) -> Sink {
    let (tx, mut rx) = mpsc::channel::<Event>(4096);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            let store = store.clone();
            let events = std::mem::take(&mut batch);
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
    });
    Sink { tx: Some(tx), dropped: Arc::new(AtomicU64::new(0)) }
}
