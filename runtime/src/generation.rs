//! A generation: everything loaded from one artifact directory (or one in-memory compile
//! of a fabric), immutable and shared behind an `Arc`. Each request and each transfer
//! holds the generation it started with until it ends, so a reload never changes the
//! bytes of a transfer in flight.
//!
//! Memory: a loaded directory's files are checked against their sha256 once, then the
//! shared top-level files (ztp.json, the platform scripts: what every device fetches;
//! not SHA256SUMS) stay in memory up to [`MEMORY_BUDGET`], and every other file (a device's own
//! script, fetched about once, and anything in a subdirectory) is kept as an open
//! descriptor and read on request (from the page cache, in practice). The
//! descriptor pins the checked file: `ztpc build` swaps a new directory in and deletes
//! the old one, and an old generation still serving reads the old bytes through it.
//! For a 1,000-device fabric this keeps ~14 MB of scripts out of the process (see
//! bench/footprint).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use ztpc::render::manifest::{FileInfo, Manifest, SCHEMA};
use ztpc::render::{Artifacts, MANIFEST, TFTP_DIR};

/// Why a directory (or a compile) cannot become the serving generation.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{MANIFEST} is not valid: {0}")]
    Manifest(serde_json::Error),
    #[error("{MANIFEST} has schema {0}; this runtime reads schema {SCHEMA} (rebuild with a matching ztpc)")]
    Schema(u32),
    #[error("{0} is listed in {MANIFEST} but missing")]
    MissingFile(String),
    #[error("{0} does not match its sha256 in {MANIFEST} (half-written or edited by hand?)")]
    Checksum(String),
    #[error("image {0} is listed but missing or of the wrong size at {1}")]
    Image(String, PathBuf),
    #[error("the fabric does not compile: {0}")]
    Compile(String),
    #[error("checking the tree's files failed unexpectedly (a bug): see the log")]
    Panicked,
}

/// Bytes of the served tree kept in memory, at most: top-level files only, smallest
/// first. (Device scripts once filled what the shared files left of it, about 0.8 MB
/// for 1,000 devices, each to be fetched about once: see bench/footprint.)
pub const MEMORY_BUDGET: u64 = 1 << 20;

/// Top-level files that no device's script fetches, served from disk like a device
/// script: the checksum list is for people and tools, and it grows with the fabric
/// (100 kB for 1,000 devices).
const NOT_FETCHED: &[&str] = &["SHA256SUMS"];

/// A file of the served tree: checked against its sha256 at load.
#[derive(Debug, Clone)]
pub struct TreeFile {
    data: Data,
    pub sha256: String,
    /// The file as it was when checked, if its timestamps can vouch for it later.
    key: Option<FileKey>,
}

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
/// write that sets the mtime back by hand; a file kept on disk is read on request, so
/// such an edit made after a load was served in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// How far before a load a file's last change must be for its key to be trusted: well
/// over a scheduler tick (1-10 ms), the coarseness of file timestamps.
const RACY_MARGIN: Duration = Duration::from_millis(50);

impl FileKey {
    fn of(md: &std::fs::Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        FileKey { dev: md.dev(), ino: md.ino(), size: md.size(), mtime: (md.mtime(), md.mtime_nsec()) }
    }

    /// Whether the file's last write (its mtime, also if set ahead) is before
    /// `horizon`, so that any later write must change the key.
    fn settled(&self, horizon: SystemTime) -> bool {
        let (s, ns) = self.mtime;
        u64::try_from(s)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, ns.clamp(0, 999_999_999) as u32))
            .is_some_and(|t| t < horizon)
    }
}

/// What one load did: where its time went and how many files it hashed or took over
/// from the generation before (the reload log line).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadStats {
    /// Reading and parsing runtime.json.
    pub manifest: Duration,
    /// Opening, reading and hashing the tree's files (or taking them over).
    pub files: Duration,
    pub total: Duration,
    pub hashed: usize,
    pub hashed_bytes: u64,
    pub reused: usize,
    /// Files that would have been kept on disk but are held in memory, because the
    /// open-file limit had no descriptor to spare for them.
    pub short_of_fds: usize,
}

/// Where a tree file's bytes are.
#[derive(Debug, Clone)]
pub enum Data {
    Memory(Bytes),
    /// An open descriptor of the checked file, and its size.
    Disk(Arc<File>, u64),
}

impl TreeFile {
    fn memory(bytes: Bytes, sha256: String) -> TreeFile {
        TreeFile { data: Data::Memory(bytes), sha256, key: None }
    }

    pub fn len(&self) -> u64 {
        match &self.data {
            Data::Memory(b) => b.len() as u64,
            Data::Disk(_, n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Bytes `a..b` (within the file). A read from disk blocks: call it where that is
    /// allowed (a blocking thread, or for small files a page-cache read).
    pub fn read_range(&self, a: u64, b: u64) -> io::Result<Bytes> {
        match &self.data {
            Data::Memory(m) => Ok(m.slice(a as usize..b as usize)),
            Data::Disk(f, _) => {
                let mut buf = vec![0u8; (b - a) as usize];
                f.read_exact_at(&mut buf, a)?;
                Ok(Bytes::from(buf))
            }
        }
    }

    /// All the bytes (see [`TreeFile::read_range`]).
    pub fn read_all(&self) -> io::Result<Bytes> {
        self.read_range(0, self.len())
    }
}

/// A local image, served from where it is on disk.
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: Option<String>,
}

/// What a TFTP or HTTP path resolves to.
#[derive(Debug, Clone)]
pub enum Served {
    Tree(TreeFile),
    Image(ImageFile),
}

/// [`Served`], borrowed from the generation ([`Generation::lookup`]).
#[derive(Debug, Clone, Copy)]
pub enum ServedRef<'a> {
    Tree(&'a TreeFile),
    Image(&'a ImageFile),
}

#[derive(Debug)]
pub struct Generation {
    /// Short hash of runtime.json: names this generation in logs and the status API.
    pub id: String,
    /// runtime.json, less its `files` list: that moved into the lookup table (served by
    /// [`Generation::get`]), so that its strings are not kept twice.
    pub manifest: Manifest,
    files: HashMap<String, TreeFile>,
    images: HashMap<String, ImageFile>,
}

pub type Shared = Arc<Generation>;

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

impl Generation {
    /// Load and check an artifact directory written by `ztpc build`. Every file listed
    /// in runtime.json must be present with its checksum; anything else is not served.
    ///
    /// `ztpc build` swaps a whole new directory in by rename. A load that straddles the
    /// swap reads the old manifest and some new files, and fails its checksums; when the
    /// directory is a different inode afterwards, that failure says nothing about the
    /// new tree, so the load is retried on it (a few times) instead of being refused.
    pub fn load_dir(dir: &Path) -> Result<Generation, LoadError> {
        Self::load_dir_reusing(dir, None).map(|(g, _)| g)
    }

    /// [`Generation::load_dir`], taking from `prev` (the generation serving now) every
    /// file it already checked that is provably the same file, unchanged, at the same
    /// path with the same sha256 in the new manifest, instead of reading and hashing it
    /// again (see [`FileKey`]). Returns what the load did, for the reload log.
    pub fn load_dir_reusing(
        dir: &Path,
        prev: Option<&Generation>,
    ) -> Result<(Generation, LoadStats), LoadError> {
        use std::os::unix::fs::MetadataExt;
        let ino = |d: &Path| std::fs::metadata(d).map(|m| (m.dev(), m.ino())).ok();
        let mut attempt = 0;
        loop {
            let before = ino(dir);
            let result = Self::load_dir_once(dir, prev);
            attempt += 1;
            if result.is_ok() || attempt >= 4 || ino(dir) == before {
                return result;
            }
        }
    }

    fn load_dir_once(dir: &Path, prev: Option<&Generation>) -> Result<(Generation, LoadStats), LoadError> {
        raise_fd_limit();
        let started = Instant::now();
        // Files changed at or after this instant (less the clock's coarseness) cannot be
        // told apart from later changes by their timestamps: see `FileKey::settled`.
        let horizon = SystemTime::now() - RACY_MARGIN;
        let mut stats = LoadStats::default();
        let mpath = dir.join(MANIFEST);
        let raw = std::fs::read(&mpath).map_err(|e| LoadError::Read(mpath.clone(), e))?;
        let mut manifest = parse_manifest(&raw)?;
        let id = sha256_hex(&raw)[..16].to_string();
        drop(raw);
        stats.manifest = started.elapsed();
        let root = dir.join(&manifest.tftp_root);
        // The file list moves into the lookup table (its strings are not kept twice).
        let mut list = std::mem::take(&mut manifest.files);
        let mut files = HashMap::with_capacity(list.len());
        // Top-level files (every device fetches them) in memory, smallest first, until
        // the memory budget is spent; the rest on disk.
        list.sort_by_key(|f| (f.path.contains('/'), f.size));
        let nested = list.split_off(list.partition_point(|f| !f.path.contains('/')));
        let old = |f: &FileInfo| prev.and_then(|g| g.files.get(&f.path)).filter(|o| o.sha256 == f.sha256);
        let mut budget = MEMORY_BUDGET;
        // One buffer for every file: reading each into a fresh Vec and freeing it
        // leaves the allocator's heap grown to the largest file for nothing.
        let mut buf = Vec::new();
        let mut checked = Vec::with_capacity(list.len() + nested.len());
        let fds = Fds::spare();
        for f in &list {
            let shared = !NOT_FETCHED.contains(&f.path.as_str());
            checked.push(check_file(&root, f, old(f), shared, &mut budget, &mut buf, horizon, &fds)?);
        }
        drop(buf);
        // The rest (a device's own script each) all go to disk, so their order does not
        // matter: check them on a few threads. A swap is served once every file is
        // checked, and this is most of that time.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        // Results go to slots allocated here, and a descriptor is wrapped (allocated) only
        // back on this thread: a worker allocates next to nothing, so the heaps the
        // allocator gives its threads stay small (the runtime's idle RSS, bench/footprint).
        let mut slots: Vec<Option<Result<Checked, LoadError>>> = Vec::with_capacity(nested.len());
        slots.resize_with(nested.len(), || None);
        let run = |part: &[FileInfo], out: &mut [Option<Result<Checked, LoadError>>]| {
            let (mut buf, mut no_budget) = (Vec::new(), 0);
            for (f, slot) in part.iter().zip(out) {
                let r = check_file(&root, f, old(f), false, &mut no_budget, &mut buf, horizon, &fds);
                let failed = r.is_err();
                *slot = Some(r);
                if failed {
                    break;
                }
            }
        };
        if threads == 1 || nested.len() <= PARALLEL_MIN {
            run(&nested, &mut slots);
        } else {
            let per = nested.len().div_ceil(threads).max(PARALLEL_MIN);
            std::thread::scope(|s| {
                for (part, out) in nested.chunks(per).zip(slots.chunks_mut(per)) {
                    s.spawn(|| run(part, out));
                }
            });
        }
        for slot in slots {
            // An empty slot follows a failure in the same part (or a worker's panic).
            checked.push(slot.unwrap_or(Err(LoadError::Panicked))?);
        }
        for (f, c) in list.into_iter().chain(nested).zip(checked) {
            match c.hashed {
                Some(n) => {
                    stats.hashed += 1;
                    stats.hashed_bytes += n;
                }
                None => stats.reused += 1,
            }
            let data = match c.body {
                Body::Ready(d) => d,
                Body::Opened(file, size) => Data::Disk(Arc::new(file), size),
            };
            files.insert(f.path, TreeFile { data, sha256: f.sha256, key: c.key });
        }
        stats.short_of_fds = fds.short.into_inner();
        if stats.short_of_fds > 0 {
            tracing::warn!(
                files = stats.short_of_fds,
                "the open-file limit left no descriptor for these files: held in memory instead; raise it (LimitNOFILE)"
            );
        }
        stats.files = started.elapsed() - stats.manifest;
        let images = images(&manifest, dir)?;
        stats.total = started.elapsed();
        Ok((Generation { id, manifest, files, images }, stats))
    }

    /// A generation from an in-memory build; local images are found from `base`, the
    /// directory that the build's `fabric_dir_from_out` was relative to.
    pub fn from_artifacts(art: &Artifacts, base: &Path) -> Result<Generation, LoadError> {
        let raw = &art.get(MANIFEST).ok_or_else(|| LoadError::MissingFile(MANIFEST.into()))?.bytes;
        let mut manifest = parse_manifest(raw)?;
        // As in a loaded directory, the file list lives in the lookup table only.
        manifest.files = Vec::new();
        let prefix = format!("{TFTP_DIR}/");
        let files = art
            .iter()
            .filter_map(|(p, a)| {
                let rel = p.strip_prefix(&prefix)?;
                Some((rel.to_string(), TreeFile::memory(Bytes::from(a.bytes.clone()), sha256_hex(&a.bytes))))
            })
            .collect();
        let images = images(&manifest, base)?;
        Ok(Generation { id: sha256_hex(raw)[..16].to_string(), manifest, files, images })
    }

    /// Compile a fabric file in-process, in memory, reading `(env)` secrets from the
    /// process environment, then from `env_file` (`--env-file`).
    pub fn compile(fabric: &Path, env_file: &HashMap<String, String>) -> Result<Generation, LoadError> {
        let input = Input::read(fabric, env_file)?;
        let f = input.check()?;
        let art = ztpc::render::render(&f, &input.opts).map_err(LoadError::Compile)?;
        Generation::from_artifacts(&art, &input.base)
    }

    /// `ztp-runtime fabric.kdl`: compile the fabric into `dir` as `ztpc build` would
    /// (atomically, linking what did not change), then load `dir` like an artifact
    /// directory, taking over `prev`'s unchanged files. So a fabric served directly
    /// costs no more memory than its built tree (device scripts stay on disk, not in
    /// the heap), and what is served can be read in `dir`. When `dir` cannot be written
    /// (a full or read-only state directory), the generation is built in memory instead.
    pub fn compile_into(
        fabric: &Path,
        env_file: &HashMap<String, String>,
        dir: &Path,
        prev: Option<&Generation>,
    ) -> Result<(Generation, Option<LoadStats>), LoadError> {
        let input = Input::read(fabric, env_file)?;
        let f = input.check()?;
        // ztpc stages the new tree beside `dir`, so its parent must exist (if it cannot
        // be made, the write below fails and the fallback applies).
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        match ztpc::write(&f, &input.opts, dir) {
            Ok(_) => Self::load_dir_reusing(dir, prev).map(|(g, s)| (g, Some(s))),
            Err(ztpc::BuildError::Render(e)) => Err(LoadError::Compile(e)),
            Err(ztpc::BuildError::Emit(e)) => {
                tracing::warn!(error = %e, "cannot write the compiled fabric; serving it from memory");
                let art = ztpc::render::render(&f, &input.opts).map_err(LoadError::Compile)?;
                Generation::from_artifacts(&art, &input.base).map(|g| (g, None))
            }
        }
    }

    /// Resolve a path that has already passed [`crate::paths::clean`].
    pub fn get(&self, clean: &str) -> Option<Served> {
        if let Some(f) = self.files.get(clean) {
            return Some(Served::Tree(f.clone()));
        }
        self.images.get(clean).map(|i| Served::Image(i.clone()))
    }

    /// [`Generation::get`] without copying the entry (its sha256 and path strings): for
    /// a caller that holds the generation for as long as it uses the answer, as the
    /// HTTP server does for every request.
    pub fn lookup(&self, clean: &str) -> Option<ServedRef<'_>> {
        if let Some(f) = self.files.get(clean) {
            return Some(ServedRef::Tree(f));
        }
        self.images.get(clean).map(ServedRef::Image)
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// A fabric file read for compiling, with what resolving it needs.
struct Input {
    path: PathBuf,
    text: String,
    base: PathBuf,
    env: HashMap<String, String>,
    opts: ztpc::BuildOptions,
}

impl Input {
    fn read(fabric: &Path, env_file: &HashMap<String, String>) -> Result<Input, LoadError> {
        let text = std::fs::read_to_string(fabric).map_err(|e| LoadError::Read(fabric.to_path_buf(), e))?;
        let base = match fabric.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Local images and the controller's ca-cert are named from the fabric's
        // directory by absolute path, so the generation finds them wherever it was
        // compiled to, and is the same generation (same runtime.json) either way.
        let abs = std::path::absolute(&base).unwrap_or_else(|_| base.clone());
        let opts = ztpc::BuildOptions { fabric_dir_from_out: abs.display().to_string() };
        Ok(Input { path: fabric.to_path_buf(), text, base, env: env_file.clone(), opts })
    }

    /// Parse and validate; the rendered diagnostics when the fabric has errors.
    fn check(&self) -> Result<ztpc::model::Fabric, LoadError> {
        let env = |k: &str| std::env::var(k).ok().or_else(|| self.env.get(k).cloned());
        let host = ztpc::Host { base_dir: self.base.clone(), env: &env };
        let out = ztpc::check(&self.text, &host);
        match out.fabric {
            Some(f) if !out.diagnostics.has_errors() => Ok(f),
            _ => {
                let name = self.path.display().to_string();
                let style = ztpc::RenderStyle { color: false, width: 100 };
                Err(LoadError::Compile(ztpc::diag::render(&out.diagnostics, &name, &self.text, style)))
            }
        }
    }
}

/// Below this many files (per thread), checking in parallel is not worth a thread.
const PARALLEL_MIN: usize = 128;

/// One file of the tree, checked.
struct Checked {
    body: Body,
    key: Option<FileKey>,
    /// Bytes read and hashed; `None` if taken over from the generation before.
    hashed: Option<u64>,
}

/// A checked file's bytes, or its descriptor still to be wrapped for sharing.
enum Body {
    Ready(Data),
    Opened(File, u64),
}

/// Check the file listed as `f` (under `root`): take it over from `old` if it is
/// unchanged, or read it, compare its sha256 with the manifest's, and keep its bytes
/// (`shared` and within `budget`) or its descriptor.
#[allow(clippy::too_many_arguments)] // one call site per thread kind; a struct would only rename them
fn check_file(
    root: &Path,
    f: &FileInfo,
    old: Option<&TreeFile>,
    shared: bool,
    budget: &mut u64,
    buf: &mut Vec<u8>,
    horizon: SystemTime,
    fds: &Fds,
) -> Result<Checked, LoadError> {
    let p = root.join(&f.path);
    if let Some(old) = old
        && let Some(data) = reuse(old, &p, shared, budget)
    {
        return Ok(Checked { body: Body::Ready(data), key: old.key, hashed: None });
    }
    let file = match open_noatime(&p) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::MissingFile(f.path.clone())),
        Err(e) => return Err(LoadError::Read(p, e)),
    };
    let md = file.metadata().map_err(|e| LoadError::Read(p.clone(), e))?;
    if md.len() != f.size {
        return Err(LoadError::Checksum(f.path.clone()));
    }
    // Up to one byte more than listed, to see a file that grew: its sha256 cannot match.
    buf.clear();
    buf.reserve(f.size as usize + 1);
    (&file).take(f.size + 1).read_to_end(buf).map_err(|e| LoadError::Read(p.clone(), e))?;
    if sha256_hex(buf) != f.sha256 {
        return Err(LoadError::Checksum(f.path.clone()));
    }
    let size = buf.len() as u64;
    let body = if shared && size <= *budget {
        *budget -= size;
        Body::Ready(Data::Memory(Bytes::copy_from_slice(buf)))
    } else if fds.take() {
        Body::Opened(file, size)
    } else {
        Body::Ready(Data::Memory(Bytes::copy_from_slice(buf)))
    };
    // The key describes the file as read only if its size says nothing was appended
    // between the fstat and the read.
    let key = Some(FileKey::of(&md)).filter(|k| k.size == size && k.settled(horizon));
    Ok(Checked { body, key, hashed: Some(size) })
}

/// Open for reading without updating the access time: on ext4 an atime update is a
/// journalled inode write, per file, on every reload. Only the file's owner (or root)
/// may ask for that; anyone else gets a plain open.
fn open_noatime(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match File::options().read(true).custom_flags(noatime).open(p) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => File::open(p),
        r => r,
    }
}

/// `old`'s data for the file now at `p`, if `p` is still the very file `old` was checked
/// through and unchanged since (an equal [`FileKey`]), and the memory budget places it
/// where it was (memory or disk); `None` means: read and hash it.
fn reuse(old: &TreeFile, p: &Path, shared: bool, budget: &mut u64) -> Option<Data> {
    let want = old.key?;
    let md = std::fs::metadata(p).ok()?;
    if FileKey::of(&md) != want {
        return None;
    }
    match &old.data {
        Data::Memory(b) if shared && want.size <= *budget => {
            *budget -= want.size;
            Some(Data::Memory(b.clone()))
        }
        Data::Disk(f, n) if !shared || want.size > *budget => Some(Data::Disk(Arc::clone(f), *n)),
        _ => None,
    }
}

/// Descriptors a load may keep open for the files it serves from disk.
struct Fds {
    spare: AtomicI64,
    /// Files held in memory because none was left.
    short: AtomicUsize,
}

/// Descriptors left for sockets, TFTP transfers, images opened per request and SQLite,
/// whatever the tree takes: at least this many, or an eighth of the limit.
const FD_RESERVE: u64 = 1024;

impl Fds {
    /// What the open-file limit leaves after the descriptors open now (the serving
    /// generation's among them) and the reserve. Without /proc, no limit is assumed.
    fn spare() -> Fds {
        use rustix::process::{Resource, getrlimit};
        let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64);
        let spare = match open {
            Ok(open) => limit.saturating_sub(open).saturating_sub(FD_RESERVE.max(limit / 8)),
            Err(_) => u64::MAX,
        };
        Fds { spare: AtomicI64::new(i64::try_from(spare).unwrap_or(i64::MAX)), short: AtomicUsize::new(0) }
    }

    /// Take a descriptor; false (and counted) when none is left: the file is then held
    /// in memory, so that a tree larger than the limit allows is served, not refused.
    fn take(&self) -> bool {
        if self.spare.fetch_sub(1, Ordering::Relaxed) > 0 {
            return true;
        }
        self.short.fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// Tree files served from disk hold a descriptor each (two generations' worth during
/// a reload: 2,400 for 1,000 devices), over the usual soft limit of 1,024; raise the
/// soft limit to the hard one, once. If that fails, a load that runs out of
/// descriptors is refused with a clear error and the old generation keeps serving.
fn raise_fd_limit() {
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

fn parse_manifest(raw: &[u8]) -> Result<Manifest, LoadError> {
    // One pass straight into the types (a `serde_json::Value` first cost as much again in
    // time, and its freed nodes stayed in the heap). Only when that fails is the schema
    // number read on its own, so that a newer layout gets a clear message rather than a
    // field-by-field parse error.
    #[derive(serde::Deserialize)]
    struct Schema {
        schema: Option<serde_json::Value>,
    }
    let schema = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_u64()).map_or(0, |n| n as u32);
    match serde_json::from_slice::<Manifest>(raw) {
        Ok(m) if m.schema == SCHEMA => Ok(m),
        Ok(m) => Err(LoadError::Schema(m.schema)),
        Err(e) => match serde_json::from_slice::<Schema>(raw) {
            Ok(s) if schema(&s.schema) != SCHEMA => Err(LoadError::Schema(schema(&s.schema))),
            _ => Err(LoadError::Manifest(e)),
        },
    }
}

/// Images are checked for presence and size only: hashing gigabytes on every reload
/// would blow the reload budget, and ztpc hashed them at build time.
fn images(m: &Manifest, base: &Path) -> Result<HashMap<String, ImageFile>, LoadError> {
    let mut out = HashMap::new();
    for i in &m.images {
        let path = base.join(&i.source);
        let size = std::fs::metadata(&path).ok().filter(|md| md.is_file()).map(|md| md.len());
        match (size, i.size) {
            (Some(have), Some(want)) if have == want => {}
            (Some(_), None) => {}
            _ => return Err(LoadError::Image(i.path.clone(), path)),
        }
        out.insert(i.path.clone(), ImageFile { path, size: size.unwrap_or(0), sha256: i.sha256.clone() });
    }
    Ok(out)
}
