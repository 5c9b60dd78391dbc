//! Where rendered files go as they are made: into memory, or straight to disk.
//!
//! A 10,000-device build renders 150 MB of device scripts. Holding them all until the
//! end cost a quarter of the build in page faults for fresh memory, so the renderers hand
//! each file to a [`Sink`] the moment it exists; `emit`'s staging directory writes it at
//! once and keeps only its size and digest, while [`MemorySink`] keeps it for tests,
//! `explain` and `diff`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::render::{Artifact, Artifacts};

/// A consumer of rendered files, called from every rendering thread at once.
pub trait Sink: Sync {
    /// Take the file at `path` (relative to the output directory).
    fn put(&self, path: &str, artifact: Artifact) -> Result<(), String>;
}

/// Keeps every file in memory, for callers that want the whole artifact set.
#[derive(Default)]
pub struct MemorySink(Mutex<Artifacts>);

impl MemorySink {
    pub fn into_artifacts(self) -> Artifacts {
        self.0.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Sink for MemorySink {
    fn put(&self, path: &str, artifact: Artifact) -> Result<(), String> {
        let mut tree = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tree.insert(path.to_string(), artifact);
        Ok(())
    }
}

/// What the rest of a build needs to know about a served file once it has gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
}

/// The served tree's files by path relative to the tree, in path order.
pub type Index = BTreeMap<String, Served>;
