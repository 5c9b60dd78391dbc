//! The serving state shared by every listener: the current generation (swapped
//! atomically on reload) and the record of the last refused reload.

use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;

use crate::generation::{Generation, Shared};

#[derive(Debug, Clone, Default)]
pub struct Refusal {
    pub at: String,
    pub reason: String,
}

pub struct State {
    current: ArcSwap<Generation>,
    last_refusal: Mutex<Option<Refusal>>,
    /// Where listeners file per-device events; set once at start-up.
    events: OnceLock<crate::events::Sink>,
}

impl State {
    pub fn new(g: Generation) -> Arc<State> {
        Arc::new(State {
            current: ArcSwap::from_pointee(g),
            last_refusal: Mutex::new(None),
            events: OnceLock::new(),
        })
    }

    /// The generation a new request or transfer should use, and keep to its end.
    pub fn current(&self) -> Shared {
        self.current.load_full()
    }

    pub fn swap(&self, g: Generation) -> Shared {
        self.current.swap(Arc::new(g))
    }

    pub fn refuse(&self, r: Refusal) {
        if let Ok(mut l) = self.last_refusal.lock() {
            *l = Some(r);
        }
    }

    pub fn set_events(&self, sink: crate::events::Sink) {
        let _ = self.events.set(sink);
    }

    /// File a device event, if a store is attached (never blocks).
    pub fn event(&self, e: crate::events::Event) {
        if let Some(s) = self.events.get() {
            s.emit(e);
        }
    }

    /// Events the sink has dropped so far (0 without a sink).
    pub fn events_dropped(&self) -> u64 {
        self.events.get().map_or(0, |s| s.dropped())
    }

    pub fn last_refusal(&self) -> Option<Refusal> {
        self.last_refusal.lock().ok().and_then(|l| l.clone())
    }
}
