//! Pass 4, the only I/O: write the artifact set to a directory, atomically.
//!
//! Everything is written into a fresh directory beside the target, then swapped in with
//! renames, so a reader (or the runtime's watcher) sees the old tree or the new one,
//! never a mix, and a failed build leaves the target as it was.

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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmitError + '_ {
    move |source| EmitError::Io { path: path.to_path_buf(), source }
}

/// Write `artifacts` as the new contents of `out`.
pub fn emit(artifacts: &Artifacts, out: &Path) -> Result<(), EmitError> {
    if out.exists() {
        if !out.is_dir() {
            return Err(EmitError::NotADirectory(out.to_path_buf()));
        }
        let empty = fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty && !out.join(MANIFEST).is_file() {
            return Err(EmitError::NotOurs(out.to_path_buf()));
        }
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
    files.par_iter().try_for_each(|(rel, a)| write_new(&staging.path().join(rel), a))?;
    // One syncfs for the whole tree instead of an fsync per file: with thousands of
    // device scripts, per-file fsyncs dominated the build. Nothing is swapped in before
    // it is on disk, so a crash leaves the old tree or the complete new one.
    let dirfd = fs::File::open(staging.path()).map_err(io(staging.path()))?;
    rustix::fs::syncfs(&dirfd)
        .map_err(|e| EmitError::Io { path: staging.path().to_path_buf(), source: e.into() })?;
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
    result
}
