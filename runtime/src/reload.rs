//! Hot reload: a watcher (notify) only signals; one task loads and checks the new
//! generation off the request paths, then swaps it in, or refuses it and keeps the old
//! one serving.
//!
//! When to load: `ztpc build` writes a complete tree beside the artifact directory and
//! renames it into place, so that rename (the directory's path appearing as a rename
//! target) means a whole new tree is there, and it is loaded at once. Any other change
//! (a file edited in place, a fabric file saved) is loaded once changes have settled for
//! the debounce time (`--reload-debounce-ms`), so that a half-written edit is not
//! loaded (and refused) while it is being written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::clock::now_rfc3339;
use crate::generation::{Generation, LoadError, LoadStats};
use crate::metrics::{METRICS, ReloadResult};
use crate::state::{Refusal, State};

/// Where generations come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A fabric file compiled in-process on every change, with `--env-file` variables,
    /// into the directory given (in the state directory), or in memory if `None`.
    Fabric(PathBuf, Arc<HashMap<String, String>>, Option<PathBuf>),
    /// A directory written by `ztpc build`.
    Artifacts(PathBuf),
}

impl Source {
    pub fn load(&self) -> Result<Generation, LoadError> {
        match self {
            Source::Fabric(f, env, None) => Generation::compile(f, env),
            Source::Fabric(f, env, Some(dir)) => Generation::compile_into(f, env, dir, None).map(|(g, _)| g),
            Source::Artifacts(d) => Generation::load_dir(d),
        }
    }

    /// Load the next generation; a directory's files that `prev` already checked and
    /// that are unchanged on disk are taken over rather than hashed again.
    fn load_after(&self, prev: &Generation) -> Result<(Generation, Option<LoadStats>), LoadError> {
        match self {
            Source::Fabric(f, env, None) => Generation::compile(f, env).map(|g| (g, None)),
            Source::Fabric(f, env, Some(dir)) => Generation::compile_into(f, env, dir, Some(prev)),
            Source::Artifacts(d) => Generation::load_dir_reusing(d, Some(prev)).map(|(g, s)| (g, Some(s))),
        }
    }

    /// The paths to watch. For an artifact directory, also its parent, because
    /// `ztpc build` swaps in a new directory by rename and a watch on the old inode
    /// would never see it.
    fn watches(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let parent = |p: &Path| match p.parent() {
            Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match self {
            Source::Fabric(f, ..) => vec![(parent(f), RecursiveMode::Recursive)],
            Source::Artifacts(d) => {
                vec![(parent(d), RecursiveMode::NonRecursive), (d.clone(), RecursiveMode::Recursive)]
            }
        }
    }
}

/// Try one reload now. Returns true if a new generation was swapped in.
pub fn reload_once(source: &Source, state: &State) -> bool {
    reload_after(source, state, Duration::ZERO)
}

/// [`reload_once`], `waited` after the change that asked for it was seen (logged).
fn reload_after(source: &Source, state: &State, waited: Duration) -> bool {
    let started = Instant::now();
    // How long ago the artifact directory itself last changed (a swap renames it in),
    // from its ctime: with `waited`, where the time before a load went.
    let dir_age = match source {
        Source::Artifacts(d) => std::fs::metadata(d).ok().and_then(|m| {
            use std::os::unix::fs::MetadataExt;
            let at = std::time::UNIX_EPOCH
                + Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().clamp(0, 999_999_999) as u32);
            std::time::SystemTime::now().duration_since(at).ok()
        }),
        Source::Fabric(..) => None,
    };
    let old = state.current();
    let swapped = match source.load_after(&old) {
        Ok((g, stats)) if g.id == old.id => {
            METRICS.reloads[ReloadResult::Unchanged as usize].inc();
            let s = stats.unwrap_or_default();
            tracing::debug!(generation = %g.id, hashed = s.hashed, reused = s.reused, ms = ms(started.elapsed()), "reload: unchanged");
            false
        }
        Ok((g, stats)) => {
            METRICS.reloads[ReloadResult::Accepted as usize].inc();
            let (id, files) = (g.id.clone(), g.file_count());
            state.swap(g);
            let s = stats.unwrap_or_default();
            tracing::info!(
                generation = %id,
                previous = %old.id,
                files,
                ms = ms(started.elapsed()),
                waited_ms = ms(waited),
                dir_changed_ms_ago = dir_age.map(ms),
                manifest_ms = ms(s.manifest),
                files_ms = ms(s.files),
                hashed = s.hashed,
                hashed_kb = s.hashed_bytes / 1024,
                reused = s.reused,
                "reloaded: new generation serving"
            );
            true
        }
        Err(e) => {
            METRICS.reloads[ReloadResult::Refused as usize].inc();
            let reason = e.to_string();
            tracing::warn!(generation = %old.id, reason = %reason, "reload refused; the old generation keeps serving");
            state.refuse(Refusal { at: now_rfc3339(), reason });
            false
        }
    };
    // Whatever the outcome, a load leaves garbage (and a swap, once the last request
    // holding it ends, the old generation) that glibc keeps resident unless asked.
    drop(old);
    crate::memory::release_free_heap();
    swapped
}

/// Milliseconds with a fraction, for log lines.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64 / 1000.0 * 10.0).round() / 10.0
}

/// SIGHUP (systemd's `ExecReload`, `kill -HUP`) asks for a reload now, as a change
/// would: for a fabric whose `(file)` secrets changed outside the watched tree, or a
/// watcher that missed an event on a network filesystem.
fn forward_sighup(tx: tokio::sync::mpsc::UnboundedSender<Signal>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on change only");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading");
            let _ = tx.send(Signal::Asked);
        }
    });
}

/// What the watcher saw, for the reload task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// The artifact directory's path became the target of a rename (`ztpc build`'s
    /// swap): a complete tree is in place, load it now.
    Swapped,
    /// Something else changed: load once changes have settled.
    Changed,
    /// SIGHUP: load now.
    Asked,
}

/// What an event means for a reload, if anything. `dir` is the artifact directory (an
/// absolute path), `None` for a fabric file; events only under `ignore` (the runtime's
/// own state directory) never count.
fn classify(ev: &notify::Event, dir: Option<&Path>, ignore: &[PathBuf]) -> Option<Signal> {
    // Reads (our own reload's included) are access events: they change nothing, and
    // counting them would make every reload trigger the next. (A write also ends in an
    // access event, close-write, but always comes with a modify, create or rename
    // event, which counts.)
    if ev.kind.is_access() {
        return None;
    }
    // The runtime writes its leases and device status into the state directory, which
    // may well sit in the watched tree (the default `./ztp-state`, run from the fabric's
    // directory): each status report would otherwise recompile the fabric.
    if !ev.paths.is_empty() && ev.paths.iter().all(|p| ignore.iter().any(|i| p.starts_with(i))) {
        return None;
    }
    let Some(dir) = dir else { return Some(Signal::Changed) };
    // notify reports a rename within a watched directory as `To` (the new path) and as
    // `Both` (old path, new path).
    let target = match ev.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => ev.paths.first(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.get(1),
        _ => None,
    };
    if target.is_some_and(|p| p == dir) {
        return Some(Signal::Swapped);
    }
    // The parent of an artifact directory is watched only to see the directory swapped
    // by rename; anything else there (a log file, the state directory) must not count,
    // or a refusal written to a log beside it would trigger the next reload forever. An
    // event without paths is the kernel's queue overflowing: anything may have changed.
    if ev.paths.is_empty() || ev.paths.iter().any(|p| p.starts_with(dir)) {
        return Some(Signal::Changed);
    }
    None
}

/// The artifact directory's identity, to see that it is a new inode (swapped).
fn dir_id(d: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(d).ok().map(|m| (m.dev(), m.ino()))
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watch {
    _watcher: Arc<Mutex<notify::RecommendedWatcher>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Start watching `source`. A swap of the artifact directory is loaded at once; other
/// changes once they have settled for `debounce`; each load covers every change seen
/// before it started. Changes under `ignore` (the state directory) are not changes to
/// the source.
pub fn watch(
    source: Source,
    state: Arc<State>,
    debounce: Duration,
    ignore: &[PathBuf],
) -> notify::Result<Watch> {
    Ok(start(source, ignore)?.serve(state, debounce))
}

/// Watches in place whose changes queue up until [`Watching::serve`] acts on them, so
/// that a change made while the first generation loads (or while the listeners start)
/// is not missed.
pub struct Watching {
    source: Source,
    watcher: Arc<Mutex<notify::RecommendedWatcher>>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Signal>,
    watched: Option<(u64, u64)>,
}

/// Put the watches for `source` in place (see [`watch`]); nothing is loaded yet.
pub fn start(source: Source, ignore: &[PathBuf]) -> notify::Result<Watching> {
    // Absolute paths, so that event paths compare with the artifact directory's.
    let source = match source {
        Source::Artifacts(d) => Source::Artifacts(std::path::absolute(&d).unwrap_or(d)),
        Source::Fabric(f, env, dir) => Source::Fabric(std::path::absolute(&f).unwrap_or(f), env, dir),
    };
    let dir: Option<PathBuf> = match &source {
        Source::Artifacts(d) => Some(d.clone()),
        Source::Fabric(..) => None,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Signal>();
    forward_sighup(tx.clone());
    let scope = dir.clone();
    // Event paths are the watched path joined with names: compare both spellings.
    let ignore: Vec<PathBuf> =
        ignore.iter().flat_map(|p| [std::path::absolute(p).ok(), p.canonicalize().ok()]).flatten().collect();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // An error from the watcher (e.g. a watch lost) may hide a change: look again.
        let signal = match res {
            Ok(ev) => classify(&ev, scope.as_deref(), &ignore),
            Err(_) => Some(Signal::Changed),
        };
        if let Some(s) = signal {
            let _ = tx.send(s);
        }
    })?;
    for (p, mode) in source.watches() {
        watcher.watch(&p, mode)?;
    }
    let watched = dir.as_deref().and_then(dir_id);
    Ok(Watching { source, watcher: Arc::new(Mutex::new(watcher)), rx, watched })
}

impl Watching {
    /// Act on changes, those queued since [`start`] included, reloading into `state`.
    pub fn serve(self, state: Arc<State>, debounce: Duration) -> Watch {
        let Watching { source, watcher, mut rx, mut watched } = self;
        let w2 = Arc::clone(&watcher);
        let task = tokio::spawn(async move {
            // When settled changes are due to be loaded.
            let mut due: Option<tokio::time::Instant> = None;
            let mut last_change = Instant::now();
            loop {
                let (signal, settled) = match due {
                    Some(at) => tokio::select! {
                        s = rx.recv() => (s, false),
                        _ = tokio::time::sleep_until(at) => (Some(Signal::Changed), true),
                    },
                    None => (rx.recv().await, false),
                };
                let Some(signal) = signal else { break };
                if signal == Signal::Changed && !settled {
                    last_change = Instant::now();
                    due = Some(tokio::time::Instant::now() + debounce);
                    continue;
                }
                let seen = if settled { last_change } else { Instant::now() };
                // This load covers every change signalled so far: it reads the tree after.
                while rx.try_recv().is_ok() {}
                due = None;
                let was = watched;
                let (s, st) = (source.clone(), Arc::clone(&state));
                let _ = tokio::task::spawn_blocking(move || reload_after(&s, &st, seen.elapsed())).await;
                // A swapped directory is a new inode that nothing watches yet. Watch it
                // after the load, not before or alongside: notify's thread takes a watch
                // request only between batches of events, and ztpc deleting the old tree
                // (still watched until that batch ends) is one long batch, so waiting for
                // it held every swap until ztpc exited; and a recursive watch stats every
                // file of the tree (11,679 for 10,000 devices), CPU that the load needs
                // more (bench/reload).
                let rewatching = match &source {
                    Source::Artifacts(d) if dir_id(d).is_some_and(|id| Some(id) != was) => {
                        let (w, d) = (Arc::clone(&w2), d.clone());
                        Some(tokio::task::spawn_blocking(move || rewatch(&w, &d, was)))
                    }
                    _ => None,
                };
                if let Some(job) = rewatching {
                    watched = job.await.unwrap_or(was);
                    // A change made to the new tree before its watch was in place went
                    // unseen: look once more when things settle (cheap: the files just
                    // checked are taken over, not hashed again).
                    last_change = Instant::now();
                    due = Some(tokio::time::Instant::now() + debounce);
                }
            }
        });
        Watch { _watcher: watcher, task }
    }
}

/// Watch `dir` afresh if it is not the inode watched (`was`); returns the one watched.
fn rewatch(w: &Mutex<notify::RecommendedWatcher>, dir: &Path, was: Option<(u64, u64)>) -> Option<(u64, u64)> {
    let now = dir_id(dir);
    if now.is_none() || now == was {
        return was;
    }
    let Ok(mut w) = w.lock() else { return was };
    // notify drops the old inode's watch itself when it sees the rename; this is for a
    // directory replaced some other way.
    let _ = w.unwatch(dir);
    match w.watch(dir, RecursiveMode::Recursive) {
        Ok(()) => now,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the artifact directory");
            was
        }
    }
}
