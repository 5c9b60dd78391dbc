//! Hot reload: a watcher (notify, debounced) only signals; one task loads and checks the
//! new generation off the request paths, then swaps it in, or refuses it and keeps the
//! old one serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::new_debouncer;

use crate::clock::now_rfc3339;
use crate::generation::{Generation, LoadError};
use crate::metrics::{METRICS, ReloadResult};
use crate::state::{Refusal, State};

/// Where generations come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A fabric file compiled in-process on every change, with `--env-file` variables.
    Fabric(PathBuf, Arc<HashMap<String, String>>),
    /// A directory written by `ztpc build`.
    Artifacts(PathBuf),
}

impl Source {
    pub fn load(&self) -> Result<Generation, LoadError> {
        match self {
            Source::Fabric(f, env) => Generation::compile(f, env),
            Source::Artifacts(d) => Generation::load_dir(d),
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
            Source::Fabric(f, _) => vec![(parent(f), RecursiveMode::Recursive)],
            Source::Artifacts(d) => {
                vec![(parent(d), RecursiveMode::NonRecursive), (d.clone(), RecursiveMode::Recursive)]
            }
        }
    }
}

/// Try one reload now. Returns true if a new generation was swapped in.
pub fn reload_once(source: &Source, state: &State) -> bool {
    let started = Instant::now();
    let old = state.current();
    match source.load() {
        Ok(g) if g.id == old.id => {
            METRICS.reloads[ReloadResult::Unchanged as usize].inc();
            false
        }
        Ok(g) => {
            METRICS.reloads[ReloadResult::Accepted as usize].inc();
            let (id, files) = (g.id.clone(), g.file_count());
            state.swap(g);
            tracing::info!(
                generation = %id,
                previous = %old.id,
                files,
                ms = started.elapsed().as_millis() as u64,
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
    }
}

/// SIGHUP (systemd's `ExecReload`, `kill -HUP`) asks for a reload now, as a change
/// would: for a fabric whose `(file)` secrets changed outside the watched tree, or a
/// watcher that missed an event on a network filesystem.
fn forward_sighup(tx: tokio::sync::mpsc::Sender<()>) {
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
            let _ = tx.try_send(());
        }
    });
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watch {
    _debouncer: Arc<Mutex<Box<dyn std::any::Any + Send>>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Start watching `source`; each debounced burst of changes triggers one reload attempt.
pub fn watch(source: Source, state: Arc<State>, debounce: Duration) -> notify::Result<Watch> {
    // Absolute paths, so that event paths compare with the artifact directory's.
    let source = match source {
        Source::Artifacts(d) => Source::Artifacts(std::path::absolute(&d).unwrap_or(d)),
        Source::Fabric(f, env) => Source::Fabric(std::path::absolute(&f).unwrap_or(f), env),
    };
    // The parent of an artifact directory is watched only to see the directory swapped
    // by rename; anything else there (a log file, the state directory) must not count,
    // or a refusal written to a log beside it would trigger the next reload forever.
    let scope: Option<PathBuf> = match &source {
        Source::Artifacts(d) => Some(d.clone()),
        Source::Fabric(..) => None,
    };
    let relevant = move |p: &Path| scope.as_ref().is_none_or(|d| p.starts_with(d));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    forward_sighup(tx.clone());
    let mut debouncer =
        new_debouncer(debounce, None, move |res: notify_debouncer_full::DebounceEventResult| {
            // Reads (our own reload's included) are access events: they change nothing,
            // and counting them would make every reload trigger the next. (A write also
            // ends in an access event, close-write, but always comes with a modify,
            // create or rename event, which counts.)
            let counts = |e: &notify_debouncer_full::DebouncedEvent| {
                !e.kind.is_access() && e.paths.iter().any(|p| relevant(p))
            };
            if res.is_ok_and(|evs| evs.iter().any(counts)) {
                // A full channel already holds a pending reload; one is enough.
                let _ = tx.try_send(());
            }
        })?;
    for (p, mode) in source.watches() {
        debouncer.watch(&p, mode)?;
    }
    let debouncer = Arc::new(Mutex::new(debouncer));
    let d2 = debouncer.clone();
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            let (s, st) = (source.clone(), state.clone());
            let swapped = tokio::task::spawn_blocking(move || reload_once(&s, &st)).await.unwrap_or(false);
            if let (true, Source::Artifacts(dir)) = (swapped, &source)
                && let Ok(mut d) = d2.lock()
            {
                // The directory is a new inode after a rename swap: watch it afresh.
                let _ = d.unwatch(dir);
                if let Err(e) = d.watch(dir, RecursiveMode::Recursive) {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot re-watch the artifact directory");
                }
            }
        }
    });
    let keep: Box<dyn std::any::Any + Send> = Box::new(debouncer);
    Ok(Watch { _debouncer: Arc::new(Mutex::new(keep)), task })
}
