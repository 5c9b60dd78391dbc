//! The listeners' own status: what `/healthz` and `GET /api/ztp/services` report.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::clock::now_rfc3339;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub address: String,
    /// `starting`, `up`, `down` or `disabled`.
    pub state: String,
    pub last_updated_at: String,
}

#[derive(Default)]
pub struct Services {
    map: Mutex<BTreeMap<String, Service>>,
}

impl Services {
    pub fn set(&self, name: &str, address: &str, state: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(
                name.to_string(),
                Service {
                    name: name.into(),
                    address: address.into(),
                    state: state.into(),
                    last_updated_at: now_rfc3339(),
                },
            );
        }
    }

    pub fn list(&self) -> Vec<Service> {
        self.map.lock().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Healthy once every enabled listener is up.
    pub fn healthy(&self) -> bool {
        let l = self.list();
        !l.is_empty() && l.iter().all(|s| s.state == "up" || s.state == "disabled")
    }
}
