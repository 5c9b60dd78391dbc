//! The open-file budget of a load: tree files served from disk hold a descriptor
//! each, and a reload briefly holds two generations' worth.
//!
//! Counting the descriptors open by listing /proc/self/fd costs about a microsecond per
//! descriptor, 10 ms per reload at 10,000 devices (perf, bench/reload), so a load works
//! from an estimate instead: the served files' descriptors are counted as they open and
//! close ([`ServedFile`]), everything else (sockets, the status store) as it was at the
//! first load. The estimate is checked against /proc only when it says the budget is
//! spent, so near the limit the answer is as exact as before.

use std::fs::File;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use super::check::FileKey;

/// Descriptors of served files open now: tree files held by generations, images open
/// for a transfer.
static SERVED: AtomicI64 = AtomicI64::new(0);

/// An open descriptor of a served file, counted while it is open (see the module doc).
#[derive(Debug)]
pub struct ServedFile {
    file: File,
    /// The file as a request last found it by hashing it again ([`super::TreeFile::still_matches`]),
    /// when its check at load could not vouch for it: later requests compare with this
    /// instead of hashing it each time. Kept here because the descriptor is shared by
    /// every generation that took the file over (with the same sha256).
    pub(super) rechecked: OnceLock<FileKey>,
}

impl ServedFile {
    pub fn new(file: File) -> ServedFile {
        SERVED.fetch_add(1, Ordering::Relaxed);
        ServedFile { file, rechecked: OnceLock::new() }
    }
}

impl Drop for ServedFile {
    fn drop(&mut self) {
        SERVED.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Deref for ServedFile {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

impl AsFd for ServedFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Descriptors a load may keep open for the files it serves from disk.
pub(super) struct Fds {
    limit: u64,
    spare: AtomicI64,
    /// Whether `spare` was counted from /proc (rather than estimated).
    exact: Mutex<bool>,
    /// Files held in memory because none was left.
    pub(super) short: AtomicUsize,
}

/// Descriptors left for sockets, TFTP transfers, images opened per request and SQLite,
/// whatever the tree takes: at least this many, or an eighth of the limit.
const FD_RESERVE: u64 = 1024;

/// Descriptors open besides served files, as counted at the first load.
static OTHERS: OnceLock<u64> = OnceLock::new();

impl Fds {
    /// What the open-file limit leaves after the descriptors open now (the serving
    /// generation's among them) and the reserve, estimated (see the module doc).
    pub(super) fn spare() -> Fds {
        use rustix::process::{Resource, getrlimit};
        let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let others = *OTHERS.get_or_init(|| open_now().map_or(0, |n| n.saturating_sub(served())));
        let spare = Self::left(limit, Some(others + served()));
        Fds { limit, spare: AtomicI64::new(spare), exact: Mutex::new(false), short: AtomicUsize::new(0) }
    }

    /// What `limit` leaves after `open` descriptors and the reserve; everything without
    /// /proc, where no limit is assumed.
    fn left(limit: u64, open: Option<u64>) -> i64 {
        let spare = match open {
            Some(open) => limit.saturating_sub(open).saturating_sub(FD_RESERVE.max(limit / 8)),
            None => u64::MAX,
        };
        i64::try_from(spare).unwrap_or(i64::MAX)
    }

    /// Take a descriptor; false (and counted) when none is left: the file is then held
    /// in memory, so that a tree larger than the limit allows is served, not refused.
    pub(super) fn take(&self) -> bool {
        if self.spare.fetch_sub(1, Ordering::Relaxed) > 0 {
            return true;
        }
        // The estimate is spent: count what is really open (this load's descriptors
        // taken so far included), once, before holding files in memory.
        if let Ok(mut exact) = self.exact.lock()
            && !*exact
        {
            *exact = true;
            self.spare.store(Self::left(self.limit, open_now()), Ordering::Relaxed);
            if self.spare.fetch_sub(1, Ordering::Relaxed) > 0 {
                return true;
            }
        }
        self.short.fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// Descriptors of served files open now (tree files held by generations, images open
/// for a transfer).
pub fn served() -> u64 {
    u64::try_from(SERVED.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Descriptors open in this process, from /proc; `None` without /proc.
fn open_now() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).ok()
}

/// Tree files served from disk hold a descriptor each (two generations' worth during
/// a reload: 2,400 for 1,000 devices), over the usual soft limit of 1,024; raise the
/// soft limit to the hard one, once. If that fails, a load that runs out of
/// descriptors is refused with a clear error and the old generation keeps serving.
pub(super) fn raise_fd_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut l = getrlimit(Resource::Nofile);
        if l.current < l.maximum {
            l.current = l.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, l) {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
        }
    });
}
