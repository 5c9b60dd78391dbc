//! Pass 4, the only I/O: write the artifact set to a directory, atomically.
//!
//! Everything is written into a fresh directory beside the target, then swapped in with
//! renames, so a reader (or the runtime's watcher) sees the old tree or the new one,
//! never a mix, and a failed build leaves the target as it was.
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

use rayon::prelude::*;

use crate::render::{Artifact, Artifacts, MANIFEST};

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
    // The umask may have narrowed the mode at creation; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(a.mode)).map_err(io(path))
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
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.ztpc-new-"))
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    // Directories first (few), then the files on every core: with thousands of device
    // scripts the build is mostly file creation and copying into the page cache.
    let dirs: BTreeSet<PathBuf> =
        artifacts.keys().filter_map(|rel| staging.path().join(rel).parent().map(Path::to_path_buf)).collect();
    for dir in &dirs {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let files: Vec<(&String, &Artifact)> = artifacts.iter().collect();
    let outcome: Vec<Option<PathBuf>> = files
        .par_iter()
        .map(|(rel, a)| {
            let new = staging.path().join(rel);
            if previous && reuse(&out.join(rel), &new, a) {
                return Ok(None);
            }
            write_new(&new, a).map(|()| Some(new))
        })
        .collect::<Result<_, EmitError>>()?;
    let written: Vec<PathBuf> = outcome.into_iter().flatten().collect();
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
        let dirfd = fs::File::open(staging.path()).map_err(io(staging.path()))?;
        rustix::fs::syncfs(&dirfd)
            .map_err(|e| EmitError::Io { path: staging.path().to_path_buf(), source: e.into() })?;
    }
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).map_err(io(staging.path()))?;
    let staged = staging.keep();
    let swap = || -> Result<(), EmitError> {
        if out.exists() {
            let old = parent.join(format!(".{name}.ztpc-old-{}", std::process::id()));
            fs::rename(out, &old).map_err(io(out))?;
            fs::rename(&staged, out).map_err(io(out))?;
            fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            fs::rename(&staged, out).map_err(io(out))?;
        }
        Ok(())
    };
    let result = swap().and_then(|()| {
        // Make the renames themselves durable.
        fs::File::open(&parent).and_then(|d| d.sync_all()).map_err(io(&parent))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    result.map(|()| Emitted { written: written.len(), unchanged: files.len() - written.len() })
}
