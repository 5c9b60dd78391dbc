//! Pass 4, the only I/O: write the artifact set to a directory, atomically.
//!
//! Everything is written into a fresh directory beside the target, then exchanged with
//! it in one rename (see [`swap_in`]), so a reader (or the runtime's watcher) sees the
//! old tree or the new one, never a mix and never no tree, and a failed build leaves the
//! target as it was.
//!
//! A rebuild reuses what did not change: a file of the previous output whose bytes and
//! mode equal the new artifact's is hard-linked into the new tree instead of written
//! again. On a disk, writing ten thousand device scripts costs seconds of kernel time
//! while linking them costs a fraction of one, and a typical edit changes a few devices.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use crate::render::{Artifact, Artifacts, MANIFEST, Sink};

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("refusing to replace {0}: it is not empty and holds no {MANIFEST}, so it is not a ztpc output")]
    NotOurs(PathBuf),
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Up to this many written files are synced one by one; more, and one syncfs is cheaper.
const FSYNC_EACH_MAX: usize = 32;

/// Create `path` (which must not exist) holding `a`.
fn write_new(path: &Path, a: &Artifact) -> Result<(), EmitError> {
    // Create with the final mode so a secret is never readable, not even briefly.
    let mut f = fs::OpenOptions::new();
    f.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, a.mode);
    let mut file = f.open(path).map_err(io(path))?;
    file.write_all(&a.bytes).map_err(io(path))?;
    // The umask may have narrowed the mode at creation; then set it exactly. (One system
    // call saved per file otherwise: a large build writes ten thousand.)
    if a.mode & umask() != 0 {
        file.set_permissions(fs::Permissions::from_mode(a.mode)).map_err(io(path))?;
    }
    Ok(())
}

/// The process's umask, read once from /proc (reading it with umask(2) would set it, for
/// every thread at once); all bits set when it cannot be read, so every mode is set.
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:")).map(|v| v.trim().to_string()))
            .and_then(|v| u32::from_str_radix(&v, 8).ok())
            .unwrap_or(0o7777)
    })
}

/// Hard-link `old` (a file of the previous output) to `new` when it already holds exactly
/// `a`; false when it does not exist, differs in bytes or mode, or cannot be linked (the
/// caller then writes `new` afresh).
fn reuse(old: &Path, new: &Path, a: &Artifact) -> bool {
    let Ok(meta) = fs::symlink_metadata(old) else { return false };
    // The length and mode first: most changed files differ there, without a read.
    if !meta.is_file() || meta.len() != a.bytes.len() as u64 || meta.permissions().mode() & 0o7777 != a.mode {
        return false;
    }
    // Then the bytes themselves, not a recorded checksum: a file edited by hand in the
    // output must be replaced, not kept.
    match fs::read(old) {
        Ok(bytes) if bytes == a.bytes => fs::hard_link(old, new).is_ok(),
        _ => false,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmitError + '_ {
    move |source| EmitError::Io { path: path.to_path_buf(), source }
}

/// What [`emit`] did: how many files it wrote and how many it kept from the previous
/// output unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emitted {
    pub written: usize,
    pub unchanged: usize,
}

/// Write `artifacts` as the new contents of `out`.
pub fn emit(artifacts: &Artifacts, out: &Path) -> Result<Emitted, EmitError> {
    let staging = Staging::new(out)?;
    let files: Vec<(&String, &Artifact)> = artifacts.iter().collect();
    files.par_iter().try_for_each(|(rel, a)| staging.write(rel, a))?;
    staging.commit()
}

/// A new output directory being filled beside `out`; [`Staging::commit`] swaps it in,
/// and dropping it uncommitted removes it, so `out` changes all at once or not at all.
pub struct Staging {
    out: PathBuf,
    parent: PathBuf,
    name: String,
    dir: tempfile::TempDir,
    /// Whether `out` holds a previous build whose unchanged files can be linked.
    previous: bool,
    /// Directories already made in the staging tree.
    dirs: Mutex<BTreeSet<PathBuf>>,
    /// Files written afresh (not linked), to be synced before the swap.
    written: Mutex<Vec<PathBuf>>,
    unchanged: AtomicUsize,
}

impl Staging {
    /// Check that `out` is absent, empty or a previous ztpc output, and make the staging
    /// directory beside it.
    pub fn new(out: &Path) -> Result<Staging, EmitError> {
        let mut previous = false;
        if out.exists() {
            if !out.is_dir() {
                return Err(EmitError::NotADirectory(out.to_path_buf()));
            }
            let empty = fs::read_dir(out).map_err(io(out))?.next().is_none();
            if !empty && !out.join(MANIFEST).is_file() {
                return Err(EmitError::NotOurs(out.to_path_buf()));
            }
            previous = !empty;
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.ztpc-new-"))
            .tempdir_in(&parent)
            .map_err(io(&parent))?;
        let dirs = Mutex::new(BTreeSet::from([dir.path().to_path_buf()]));
        Ok(Staging {
            out: out.to_path_buf(),
            parent,
            name,
            dir,
            previous,
            dirs,
            written: Mutex::default(),
            unchanged: AtomicUsize::new(0),
        })
    }

    /// Put `a` at `rel` in the new tree: linked from the previous output when that
    /// already holds exactly it, written afresh otherwise.
    pub fn write(&self, rel: &str, a: &Artifact) -> Result<(), EmitError> {
        let new = self.dir.path().join(rel);
        if let Some(parent) = new.parent() {
            let mut dirs = lock(&self.dirs);
            if !dirs.contains(parent) {
                fs::create_dir_all(parent).map_err(io(parent))?;
                dirs.extend(
                    parent.ancestors().take_while(|d| d.starts_with(self.dir.path())).map(Path::to_path_buf),
                );
            }
        }
        if self.previous && reuse(&self.out.join(rel), &new, a) {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        write_new(&new, a)?;
        lock(&self.written).push(new);
        Ok(())
    }

    /// Make the new tree durable and swap it in for `out`.
    pub fn commit(self) -> Result<Emitted, EmitError> {
        let written = self.written.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dirs = self.dirs.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (out, parent, name) = (self.out, self.parent, self.name);
        // Nothing is swapped in before it is on disk, so a crash leaves the old tree or the
        // complete new one. A reused file's data is already there (the build that wrote it
        // synced it); its new name is directory metadata.
        if written.len() <= FSYNC_EACH_MAX {
            // A rebuild after a small edit: sync just what changed and the directories,
            // without waiting for every other writer's dirty pages on the filesystem.
            for path in written.iter().chain(&dirs) {
                fs::File::open(path).and_then(|f| f.sync_all()).map_err(io(path))?;
            }
        } else {
            // One syncfs for the whole tree instead of an fsync per file: with thousands of
            // device scripts, per-file fsyncs dominated the build.
            let dirfd = fs::File::open(self.dir.path()).map_err(io(self.dir.path()))?;
            rustix::fs::syncfs(&dirfd)
                .map_err(|e| EmitError::Io { path: self.dir.path().to_path_buf(), source: e.into() })?;
        }
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(io(self.dir.path()))?;
        let staged = self.dir.keep();
        let result = swap_in(&staged, &out, &parent, &name);
        if result.is_err() {
            let _ = fs::remove_dir_all(&staged);
        }
        if let Ok(Some(old)) = &result {
            remove_politely(old).map_err(io(old))?;
        }
        let unchanged = self.unchanged.into_inner();
        result.map(|_| Emitted { written: written.len(), unchanged })
    }
}

/// Put the tree at `staged` in place at `out` (in `parent`, named `name`), durably.
/// Returns where the tree it replaced now is, if there was one.
///
/// One `renameat2(RENAME_EXCHANGE)`: at every instant `out` names a complete tree, the
/// old one or the new one (a server reading it, dhcpd or nginx say, never finds the path
/// missing), and the old tree ends up at the staging name. Where the filesystem cannot
/// exchange (EINVAL: some network and FUSE filesystems; ENOSYS: a kernel before 3.15),
/// two renames instead: the old tree away, the new one in, with a moment between them
/// in which `out` does not exist.
fn swap_in(staged: &Path, out: &Path, parent: &Path, name: &str) -> Result<Option<PathBuf>, EmitError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    let old = if !out.exists() {
        fs::rename(staged, out).map_err(io(out))?;
        None
    } else {
        match renameat_with(CWD, staged, CWD, out, RenameFlags::EXCHANGE) {
            Ok(()) => Some(staged.to_path_buf()),
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                let old = parent.join(format!(".{name}.ztpc-old-{}", std::process::id()));
                fs::rename(out, &old).map_err(io(out))?;
                if let Err(e) = fs::rename(staged, out) {
                    // Put the old tree back rather than leave no tree at all.
                    let _ = fs::rename(&old, out);
                    return Err(io(out)(e));
                }
                Some(old)
            }
            Err(e) => return Err(EmitError::Io { path: out.to_path_buf(), source: e.into() }),
        }
    };
    // Make the renames themselves durable.
    fs::File::open(parent).and_then(|d| d.sync_all()).map_err(io(parent))?;
    Ok(old)
}

/// Delete a swapped-out tree at the lowest CPU priority. The new tree is in place, and a
/// runtime watching it is loading it right now: deleting the old one (a system call per
/// file, 11,679 for 10,000 devices) only frees space, so it yields the CPU to anything
/// else (bench/reload measured the runtime's reload slowed by it). On Linux a nice value
/// belongs to a thread, so the deletion gets a thread of its own: the caller (the
/// runtime's reload, in `ztp-runtime FABRIC`) keeps its priority.
fn remove_politely(old: &Path) -> std::io::Result<()> {
    let remove = || {
        // Not allowed (a seccomp filter, say): deleting at normal priority is still right.
        let _ = rustix::process::setpriority_process(None, 19);
        fs::remove_dir_all(old)
    };
    std::thread::scope(|s| {
        match std::thread::Builder::new().name("ztpc-cleanup".into()).spawn_scoped(s, remove) {
            Ok(t) => {
                t.join().unwrap_or_else(|_| Err(std::io::Error::other("deleting the old tree panicked")))
            }
            Err(_) => fs::remove_dir_all(old),
        }
    })
}

/// Rendering hands each file straight to the staging directory, so a large build never
/// holds all of its output in memory.
impl Sink for Staging {
    fn put(&self, path: &str, artifact: Artifact) -> Result<(), String> {
        self.write(path, &artifact).map_err(|e| e.to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Artifact {
        Artifact { bytes: text.as_bytes().to_vec(), mode: 0o644 }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_abandoned_staging_changes_nothing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let first = Artifacts::from([(MANIFEST.to_string(), file("{}")), ("tftp/a".to_string(), file("a"))]);
        emit(&first, &out).expect("first build");
        // A build that fails half-way (rendering stops after some files went to disk).
        let staging = Staging::new(&out).expect("staging");
        staging.put("tftp/devices/x.sh", file("x")).expect("put");
        staging.put(MANIFEST, file("{\"new\":1}")).expect("put");
        drop(staging);
        assert_eq!(listing(tmp.path()), ["out"], "a staging directory was left behind");
        assert_eq!(fs::read(out.join(MANIFEST)).expect("read"), b"{}");
        assert!(!out.join("tftp/devices").exists());
    }

    #[test]
    fn a_committed_staging_replaces_the_tree_and_counts_reuse() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let first = Artifacts::from([(MANIFEST.to_string(), file("{}")), ("tftp/a".to_string(), file("a"))]);
        assert_eq!(emit(&first, &out).expect("first"), Emitted { written: 2, unchanged: 0 });
        let staging = Staging::new(&out).expect("staging");
        staging.put(MANIFEST, file("{}")).expect("put");
        staging.put("tftp/devices/x.sh", file("x")).expect("put");
        assert_eq!(staging.commit().expect("commit"), Emitted { written: 1, unchanged: 1 });
        assert_eq!(listing(tmp.path()), ["out"]);
        assert_eq!(listing(&out.join("tftp")), ["devices"], "tftp/a is not part of the new build");
        assert_eq!(fs::read(out.join("tftp/devices/x.sh")).expect("read"), b"x");
    }

    /// The old tree is deleted at the lowest priority, by a thread of its own: the
    /// caller (the runtime's reload, for `ztp-runtime FABRIC`) keeps its own priority.
    #[test]
    fn replacing_a_tree_leaves_the_callers_priority_alone() {
        use rustix::process::getpriority_process;
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let tree = |n: usize| -> Artifacts {
            (0..n)
                .map(|i| (format!("tftp/devices/d{i}.sh"), file(&format!("{i}"))))
                .chain([(MANIFEST.to_string(), file("{}"))])
                .collect()
        };
        emit(&tree(50), &out).expect("first");
        let before = getpriority_process(None).expect("getpriority");
        emit(&tree(40), &out).expect("second");
        assert_eq!(getpriority_process(None).expect("getpriority"), before);
        assert_eq!(listing(tmp.path()), ["out"], "the old tree is gone");
        assert_eq!(listing(&out.join("tftp/devices")).len(), 40);
    }

    /// A reader never finds the output missing while builds replace it: the new tree is
    /// exchanged with the old one in a single rename.
    #[test]
    fn the_output_path_names_a_tree_at_every_instant() {
        use std::sync::atomic::AtomicBool;
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let tree = |i: usize| Artifacts::from([(MANIFEST.to_string(), file(&format!("{{\"build\":{i}}}")))]);
        emit(&tree(0), &out).expect("first");
        let done = AtomicBool::new(false);
        let (missing, looks) = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let (mut missing, mut looks) = (0u64, 0u64);
                while !done.load(Ordering::Relaxed) {
                    looks += 1;
                    if fs::symlink_metadata(out.join(MANIFEST)).is_err() {
                        missing += 1;
                    }
                }
                (missing, looks)
            });
            for i in 1..=300 {
                emit(&tree(i), &out).expect("rebuild");
            }
            done.store(true, Ordering::Relaxed);
            watcher.join().expect("watcher")
        });
        assert!(looks > 1_000, "the watcher hardly ran ({looks} looks)");
        assert_eq!(missing, 0, "{MANIFEST} was missing {missing} times in {looks} looks");
        assert_eq!(fs::read(out.join(MANIFEST)).expect("read"), b"{\"build\":300}");
        assert_eq!(listing(tmp.path()), ["out"], "an old tree was left behind");
    }
}
