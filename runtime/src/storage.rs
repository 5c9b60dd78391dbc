//! The health of the state directory's writers (the DHCP lease journal and the status
//! database): the last failure of each, shown in `GET /api/ztp/services`, with one log
//! line when a writer starts failing and one when it works again.
//!
//! A full disk or a read-only state directory stops nothing that can go on without a
//! write: reservations, files, reads of the status API. What needs a write (a pool
//! lease's ACK, a status report) is refused until it works again (ACK withheld, 503), so
//! nothing is ever acknowledged that is not on disk.

use std::sync::Mutex;

use serde::Serialize;

use crate::clock::now_rfc3339;

/// One writer's failure, while it lasts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub part: &'static str,
    pub error: String,
    /// When it started failing (RFC 3339).
    pub since: String,
    /// Failed writes since then.
    pub failures: u64,
}

/// The writers' health; see [`STORAGE`].
#[derive(Debug, Default)]
pub struct Health {
    failing: Mutex<Vec<Failure>>,
}

/// The process's storage health (one state directory per process).
pub static STORAGE: Health = Health { failing: Mutex::new(Vec::new()) };

impl Health {
    /// Record a write's outcome for `part`.
    pub fn record<T, E: std::fmt::Display>(&self, part: &'static str, r: &Result<T, E>) {
        match r {
            Ok(_) => self.ok(part),
            Err(e) => self.failed(part, &e.to_string()),
        }
    }

    pub fn failed(&self, part: &'static str, error: &str) {
        let mut f = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = f.iter_mut().find(|x| x.part == part) {
            x.failures += 1;
            x.error = error.to_string();
            return;
        }
        tracing::error!(
            part,
            error,
            "storage: writes to the state directory fail; what needs them is refused until they work"
        );
        f.push(Failure { part, error: error.to_string(), since: now_rfc3339(), failures: 1 });
    }

    pub fn ok(&self, part: &'static str) {
        let mut f = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = f.iter().position(|x| x.part == part) {
            let gone = f.remove(i);
            tracing::warn!(part, failures = gone.failures, since = %gone.since, "storage: writes work again");
        }
    }

    /// The writers failing now (empty when all is well).
    pub fn failing(&self) -> Vec<Failure> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `{"state": "ok"}`, or `{"state": "failing", "failing": [...]}`.
    pub fn report(&self) -> serde_json::Value {
        let f = self.failing();
        if f.is_empty() {
            serde_json::json!({ "state": "ok" })
        } else {
            serde_json::json!({ "state": "failing", "failing": f })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_shows_until_the_next_success() {
        let h = Health::default();
        assert_eq!(h.report()["state"], "ok");
        h.record::<(), _>("status database", &Err("database or disk is full"));
        h.record::<(), _>("status database", &Err("database or disk is full"));
        h.record::<(), _>("dhcp lease journal", &Ok::<(), &str>(()));
        let r = h.report();
        assert_eq!(r["state"], "failing");
        assert_eq!(r["failing"][0]["part"], "status database");
        assert_eq!(r["failing"][0]["failures"], 2);
        h.ok("status database");
        assert_eq!(h.report()["state"], "ok");
    }
}
