//! Checking a loaded tree's files against runtime.json: each file is read and hashed,
//! or taken over from the generation before when it is provably the same file (and, for
//! one held in memory, unchanged; one served from disk is checked again at each request). Which files are the same is found by reading each directory once (inode
//! numbers); files to hash are opened by name in their directory (opened once per
//! thread), not by a path walked from `/`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustix::fs::{AtFlags, Mode, OFlags};
use ztpc::render::manifest::FileInfo;

use super::fds::Fds;
use super::{Data, LoadError, PathSet, Paths, TreeFile, sha256_hex};

/// Which file, and which version of it, a tree file was checked through: a later load
/// that finds the same key at the same path (with the same sha256 listed) takes the
/// checked data instead of reading and hashing the file again. A write to a file
/// changes its mtime and a replacement changes the inode, so an equal key means an
/// unchanged file, with one exception that [`FileKey::settled`] rules out: timestamps
/// come from a coarse clock (one scheduler tick), so a write in the same tick as the last
/// one before the check leaves them equal ("racy" entries, as git calls them).
///
/// The ctime is left out on purpose: `ztpc build` and `ztp-runtime FABRIC` carry an
/// unchanged file into the new tree by hard link, which changes its ctime and nothing
/// else, and with the ctime in the key no file survived a rebuild (every reload hashed
/// the whole tree, and held a second descriptor per file). What that gives up is a
/// write that keeps the size and sets the mtime back by hand. A file kept on disk is
/// read on request, so the same key is compared again before each request
/// ([`super::TreeFile::vouched`]): a write made after a load is caught there too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// How far before a load a file's last change must be for its key to be trusted: well
/// over a scheduler tick (1-10 ms), the coarseness of file timestamps.
pub(super) const RACY_MARGIN: Duration = Duration::from_millis(50);

impl FileKey {
    fn of(md: &std::fs::Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        FileKey { dev: md.dev(), ino: md.ino(), size: md.size(), mtime: (md.mtime(), md.mtime_nsec()) }
    }

    pub(super) fn of_stat(st: &rustix::fs::Stat) -> FileKey {
        // The field types differ between architectures (hence the casts); the values
        // are those of `std::fs::Metadata`, which reads the same struct.
        #[allow(clippy::unnecessary_cast)]
        FileKey {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }

    /// Whether the file's last write (its mtime, also if set ahead) is before
    /// `horizon`, so that any later write must change the key.
    pub(super) fn settled(&self, horizon: SystemTime) -> bool {
        let (s, ns) = self.mtime;
        u64::try_from(s)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, ns.clamp(0, 999_999_999) as u32))
            .is_some_and(|t| t < horizon)
    }
}

/// The tree's directories, each opened once (per thread, as `O_PATH`): a file to hash is
/// then opened by its name in its directory, not by walking its whole path again.
pub(super) struct Dirs<'r> {
    root: &'r Path,
    /// Directories opened so far, by path relative to `root` ("" is `root`): a tree has
    /// a handful, so a list beats a map.
    open: Vec<(String, OwnedFd)>,
}

impl<'r> Dirs<'r> {
    pub(super) fn new(root: &'r Path) -> Dirs<'r> {
        Dirs { root, open: Vec::new() }
    }

    /// The directory holding `rel` (a path relative to the root), and `rel`'s name in it.
    fn locate<'p>(&mut self, rel: &'p str) -> io::Result<(BorrowedFd<'_>, &'p str)> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let at = match self.open.iter().position(|(p, _)| p == parent) {
            Some(i) => i,
            None => {
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let fd = rustix::fs::open(self.root.join(parent), flags, Mode::empty())?;
                self.open.push((parent.to_string(), fd));
                self.open.len() - 1
            }
        };
        Ok((self.open[at].1.as_fd(), name))
    }

    /// Open for reading without updating the access time: on ext4 an atime update is a
    /// journalled inode write, per file, on every reload. Only the file's owner (or
    /// root) may ask for that; anyone else gets a plain open.
    fn open(&mut self, rel: &str) -> io::Result<File> {
        let (dir, name) = self.locate(rel)?;
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
            Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty())?,
            r => r?,
        };
        Ok(File::from(fd))
    }
}

/// Paths of `prev`'s files that are still, under `root`, the very files it checked. Needs
/// no manifest, so a load runs it while runtime.json is parsed.
///
/// Each directory is read once (`getdents`, which gives every name's inode number)
/// instead of a path lookup per file: a name that still names the inode a file was
/// checked through, on the same device, is that file. What readdir cannot see: a file
/// bind-mounted over a name in the tree (the name shows the covered inode); nothing in
/// an artifact tree is mounted.
///
/// A file served from disk is taken over on that alone. The descriptor the generation
/// holds pins its inode (the number cannot be reused), and whether the file was written
/// in place since its check is asked where it matters, at every request for it
/// ([`super::TreeFile::vouched`], one `fstat`), which also catches a write made between
/// reloads. Asking here as well cost an `fstat` per file on every reload: 10,839 of about
/// 1 µs each for 10,000 devices, a fifth of the reload's CPU (bench/reload under wrk:
/// p99 113 ms with them, 94 and 101 ms in two runs without). A file held in memory has no descriptor pinning
/// its inode, so its name is stat'ed for the rest of its key; a tree has a handful.
pub(super) fn unchanged<'g>(prev: &'g Paths<TreeFile>, root: &Path) -> PathSet<'g> {
    let dirs: PathSet = prev.keys().map(|p| p.rsplit_once('/').map_or("", |(d, _)| d)).collect();
    let mut named = Vec::with_capacity(prev.len());
    let mut opened = Vec::new();
    for dir in dirs {
        // A directory that cannot be read proves nothing: its files are hashed again.
        if let Ok(fd) = still_named(prev, root, dir, opened.len(), &mut named) {
            opened.push(fd);
        }
    }
    named
        .iter()
        .filter(|n| match &n.file.data {
            Data::Disk(..) => true,
            Data::Memory(_) => {
                let name = n.path.rsplit_once('/').map_or(n.path, |(_, name)| name);
                rustix::fs::statat(&opened[n.dir], name, AtFlags::empty())
                    .is_ok_and(|st| FileKey::of_stat(&st) == n.key)
            }
        })
        .map(|n| n.path)
        .collect()
}

/// A file of the generation before whose path still names the inode it was checked
/// through (its size and mtime still to be compared).
struct Named<'g> {
    path: &'g str,
    file: &'g TreeFile,
    key: FileKey,
    /// Index of its directory's descriptor.
    dir: usize,
}

/// Adds to `named` the files of `prev` in `dir` (relative to `root`) whose name there
/// still has the inode number and device they were checked with, as the directory
/// numbered `index`; returns the directory's descriptor. On an error it adds nothing.
fn still_named<'g>(
    prev: &'g Paths<TreeFile>,
    root: &Path,
    dir: &str,
    index: usize,
    named: &mut Vec<Named<'g>>,
) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        root.join(dir),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    #[allow(clippy::unnecessary_cast)] // the field's type differs between architectures
    let dev = rustix::fs::fstat(&fd)?.st_dev as u64;
    // Each entry's path, relative to the root, built in one buffer.
    let mut path = String::from(dir);
    if !dir.is_empty() {
        path.push('/');
    }
    let prefix = path.len();
    let at = named.len();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                named.truncate(at);
                return Err(e.into());
            }
        };
        let Ok(name) = entry.file_name().to_str() else { continue };
        path.truncate(prefix);
        path.push_str(name);
        let Some((path, file)) = prev.get_key_value(path.as_str()) else { continue };
        if let Some(key) = file.key.filter(|k| k.ino == entry.ino() && k.dev == dev) {
            named.push(Named { path, file, key, dir: index });
        }
    }
    Ok(fd)
}

pub(super) struct Checked {
    pub(super) body: Body,
    pub(super) key: Option<FileKey>,
    /// Bytes read and hashed; `None` if taken over from the generation before.
    pub(super) hashed: Option<u64>,
}

/// A checked file's bytes, or its descriptor still to be wrapped for sharing.
pub(super) enum Body {
    Ready(Data),
    Opened(File, u64),
}

/// What checking one file needs besides the file: the same for every file of a thread.
pub(super) struct Checker<'a> {
    pub(super) dirs: Dirs<'a>,
    /// Bytes left for files held in memory.
    pub(super) budget: u64,
    /// One buffer for every file: reading each into a fresh Vec and freeing it leaves
    /// the allocator's heap grown to the largest file for nothing.
    pub(super) buf: Vec<u8>,
    pub(super) horizon: SystemTime,
    pub(super) fds: &'a Fds,
}

impl Checker<'_> {
    /// Check the file listed as `f`: take it over from `unchanged` (the generation
    /// before's entry, known to be the same file on disk and listed with the same sha256)
    /// if the memory budget places it where it was, or read it, compare its sha256 with
    /// the manifest's, and keep its bytes (`shared` and within budget) or its descriptor.
    pub(super) fn check(
        &mut self,
        f: &FileInfo,
        unchanged: Option<&TreeFile>,
        shared: bool,
    ) -> Result<Checked, LoadError> {
        if let Some(old) = unchanged
            && let Some(data) = self.place(old, shared)
        {
            return Ok(Checked { body: Body::Ready(data), key: old.key, hashed: None });
        }
        let path = || self.dirs.root.join(&f.path);
        let file = match self.dirs.open(&f.path) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LoadError::MissingFile(f.path.clone()));
            }
            Err(e) => return Err(LoadError::Read(path(), e)),
        };
        let md = file.metadata().map_err(|e| LoadError::Read(path(), e))?;
        if md.len() != f.size {
            return Err(LoadError::Checksum(f.path.clone()));
        }
        // Up to one byte more than listed, to see a file that grew: its sha256 cannot match.
        let buf = &mut self.buf;
        buf.clear();
        buf.reserve(f.size as usize + 1);
        (&file).take(f.size + 1).read_to_end(buf).map_err(|e| LoadError::Read(path(), e))?;
        if sha256_hex(buf) != f.sha256 {
            return Err(LoadError::Checksum(f.path.clone()));
        }
        let size = buf.len() as u64;
        let body = if shared && size <= self.budget {
            self.budget -= size;
            Body::Ready(Data::Memory(Bytes::copy_from_slice(buf)))
        } else if self.fds.take() {
            Body::Opened(file, size)
        } else {
            Body::Ready(Data::Memory(Bytes::copy_from_slice(buf)))
        };
        // The key describes the file as read only if its size says nothing was appended
        // between the fstat and the read.
        let key = Some(FileKey::of(&md)).filter(|k| k.size == size && k.settled(self.horizon));
        Ok(Checked { body, key, hashed: Some(size) })
    }

    /// `old`'s data for an unchanged file, if the memory budget places it where it was
    /// (memory or disk); `None` means: read and hash it.
    fn place(&mut self, old: &TreeFile, shared: bool) -> Option<Data> {
        let size = old.key?.size;
        match &old.data {
            Data::Memory(b) if shared && size <= self.budget => {
                self.budget -= size;
                Some(Data::Memory(b.clone()))
            }
            Data::Disk(f, n) if !shared || size > self.budget => {
                Some(Data::Disk(std::sync::Arc::clone(f), *n))
            }
            _ => None,
        }
    }
}
