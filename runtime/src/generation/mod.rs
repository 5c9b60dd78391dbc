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
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

mod check;
mod fds;

use check::{Body, Checked, Checker, Dirs, FileKey, RACY_MARGIN};
use fds::{Fds, raise_fd_limit};
pub use fds::{ServedFile, served as served_descriptors};
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
    Disk(Arc<ServedFile>, u64),
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

    /// Whether the file is provably still the one checked at load, by one `fstat` of its
    /// descriptor (cheap enough for an async thread): held in memory, or on disk with
    /// the size and mtime it was checked with (or last rechecked with, see
    /// [`TreeFile::still_matches`]). `false` for a file written in place since (the
    /// descriptor pins the inode, so the write shows in the same file), and for one
    /// whose timestamps were too recent at its check to vouch for it: before serving
    /// either, [`TreeFile::still_matches`] hashes it again.
    pub fn vouched(&self) -> bool {
        let Data::Disk(f, _) = &self.data else { return true };
        let Ok(st) = rustix::fs::fstat(&**f) else { return false };
        let now = FileKey::of_stat(&st);
        self.key == Some(now) || f.rechecked.get() == Some(&now)
    }

    /// Whether the bytes behind the descriptor still have the checked size and sha256
    /// (runtime.json's). Reads the whole file: call it where blocking is allowed. When
    /// they do, and the file's timestamps can vouch for what was read (settled, and the
    /// same before and after the read), later requests take [`TreeFile::vouched`]'s word
    /// for it instead of hashing it again.
    pub fn still_matches(&self) -> io::Result<bool> {
        let Data::Disk(f, size) = &self.data else { return Ok(true) };
        let horizon = SystemTime::now() - RACY_MARGIN;
        let before = FileKey::of_stat(&rustix::fs::fstat(&**f)?);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0u64;
        // Up to one byte past the checked size, to see a file that grew.
        while at <= *size {
            let n = f.read_at(&mut buf, at)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            at += n as u64;
        }
        let same = at == *size && hex(&h.finalize()) == self.sha256;
        if same && before.settled(horizon) && FileKey::of_stat(&rustix::fs::fstat(&**f)?) == before {
            // Set once: a file rechecked again later (written again, then put back) is
            // hashed at each request, as before this.
            let _ = f.rechecked.set(before);
        }
        Ok(same)
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
    files: Paths<TreeFile>,
    images: HashMap<String, ImageFile>,
    /// sha256 of runtime.json's `devices` text: a reload that finds it unchanged takes
    /// the parsed list over (2.6 MB of JSON for 10,000 devices, most edits leave alone).
    devices_sha: Option<[u8; 32]>,
}

pub type Shared = Arc<Generation>;

/// The tree's files by path. foldhash rather than the standard library's SipHash: a
/// 10,000-device reload hashes each of 11,676 paths several times (the directory pass,
/// the takeover, the new table), and SipHash was a few percent of it (perf). The keys
/// come from runtime.json, not from requests, so SipHash's resistance to chosen
/// collisions buys nothing here; the seed is still random per process.
pub(super) type Paths<V> = HashMap<String, V, foldhash::fast::RandomState>;
/// A set of paths, hashed as [`Paths`].
pub(super) type PathSet<'a> = std::collections::HashSet<&'a str, foldhash::fast::RandomState>;

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|x| format!("{x:02x}")).collect()
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
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let mut stats = LoadStats::default();
        let mpath = dir.join(MANIFEST);
        // For a large manifest (5 MB of JSON for 10,000 devices), finding which of the
        // files the generation before checked are still the same files (it needs no
        // manifest) runs while runtime.json is read and parsed, and the parse itself is
        // split. Not for a small one: each thread's stack and heap stay resident after it
        // exits, about 100 kB, which a small fabric's footprint notices (bench/footprint)
        // and its load, a few milliseconds, does not need.
        let prev_root = prev.map(|g| (g, dir.join(&g.manifest.tftp_root)));
        let big = std::fs::metadata(&mpath).is_ok_and(|m| m.len() > PARALLEL_MANIFEST_MIN);
        let fds = Fds::spare();
        let read = || {
            let raw = std::fs::read(&mpath).map_err(|e| LoadError::Read(mpath.clone(), e))?;
            if !big {
                return Ok((parse_manifest(&raw, prev, false)?, sha256_hex(&raw)[..16].to_string()));
            }
            // The generation's id (a hash of 5 MB for 10,000 devices) beside the parse.
            std::thread::scope(|s| {
                let id = s.spawn(|| sha256_hex(&raw)[..16].to_string());
                let m = parse_manifest(&raw, prev, true)?;
                Ok((m, id.join().map_err(|_| LoadError::Panicked)?))
            })
        };
        let (parsed, same) = match &prev_root {
            Some((g, root)) if big => std::thread::scope(|s| {
                let same = s.spawn(move || check::unchanged(&g.files, root));
                (read(), same.join().map_err(|_| ()))
            }),
            Some((g, root)) => (read(), Ok(check::unchanged(&g.files, root))),
            None => (read(), Err(())),
        };
        let ((mut manifest, devices_sha), id) = parsed?;
        // Found under the tree root the generation before had; a directory pass that panicked
        // proves nothing unchanged, so everything is hashed again.
        let same = match same {
            Ok(same) if prev.is_some_and(|g| g.manifest.tftp_root == manifest.tftp_root) => same,
            _ => Default::default(),
        };
        stats.manifest = started.elapsed();
        let root = dir.join(&manifest.tftp_root);
        // The file list moves into the lookup table (its strings are not kept twice).
        let mut files = Paths::with_capacity_and_hasher(manifest.files.len(), Default::default());
        // Top-level files (every device fetches them) in memory, smallest first, until
        // the memory budget is spent; the rest on disk.
        let (mut list, nested): (Vec<FileInfo>, Vec<FileInfo>) =
            std::mem::take(&mut manifest.files).into_iter().partition(|f| !f.path.contains('/'));
        list.sort_by_key(|f| f.size);
        let old = |f: &FileInfo| {
            prev.and_then(|g| g.files.get(&f.path))
                .filter(|o| o.sha256 == f.sha256 && same.contains(f.path.as_str()))
        };
        let checker =
            |budget| Checker { dirs: Dirs::new(&root), budget, buf: Vec::new(), horizon, fds: &fds };
        let mut checked = Vec::with_capacity(list.len() + nested.len());
        let mut top = checker(MEMORY_BUDGET);
        for f in &list {
            let shared = !NOT_FETCHED.contains(&f.path.as_str());
            checked.push(top.check(f, old(f), shared)?);
        }
        drop(top);
        // The rest (a device's own script each) all go to disk, so their order does not
        // matter: check them on a few threads. A swap is served once every file is
        // checked, and this is most of that time.
        // Results go to slots allocated here, and a descriptor is wrapped (allocated) only
        // back on this thread: a worker allocates next to nothing, so the heaps the
        // allocator gives its threads stay small (the runtime's idle RSS, bench/footprint).
        let mut slots: Vec<Option<Result<Checked, LoadError>>> = Vec::with_capacity(nested.len());
        slots.resize_with(nested.len(), || None);
        let run = |part: &[FileInfo], out: &mut [Option<Result<Checked, LoadError>>]| {
            let mut c = checker(0);
            for (f, slot) in part.iter().zip(out) {
                let r = c.check(f, old(f), false);
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
                Body::Opened(file, size) => Data::Disk(Arc::new(ServedFile::new(file)), size),
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
        Ok((Generation { id, manifest, files, images, devices_sha }, stats))
    }

    /// A generation from an in-memory build; local images are found from `base`, the
    /// directory that the build's `fabric_dir_from_out` was relative to.
    pub fn from_artifacts(art: &Artifacts, base: &Path) -> Result<Generation, LoadError> {
        let raw = &art.get(MANIFEST).ok_or_else(|| LoadError::MissingFile(MANIFEST.into()))?.bytes;
        let (mut manifest, devices_sha) = parse_manifest(raw, None, false)?;
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
        Ok(Generation { id: sha256_hex(raw)[..16].to_string(), manifest, files, images, devices_sha })
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

/// Above this size of runtime.json (about 2,000 devices), its parse and the directory pass run
/// on threads of their own.
const PARALLEL_MANIFEST_MIN: u64 = 1 << 20;

/// Below this many files (per thread), checking in parallel is not worth a thread.
const PARALLEL_MIN: usize = 128;

/// One file of the tree, checked.
/// runtime.json, and the sha256 of its devices list (`None` if it was parsed whole).
/// A large one (`parallel`) is parsed in parts, and `prev`'s devices are taken over if
/// that list is unchanged.
fn parse_manifest(
    raw: &[u8],
    prev: Option<&Generation>,
    parallel: bool,
) -> Result<(Manifest, Option<[u8; 32]>), LoadError> {
    // Straight into the types (a `serde_json::Value` first cost as much again in time, and
    // its freed nodes stayed in the heap). Only when that fails is the schema number read
    // on its own, so that a newer layout gets a clear message rather than a field-by-field
    // parse error.
    #[derive(serde::Deserialize)]
    struct Schema {
        schema: Option<serde_json::Value>,
    }
    let schema = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_u64()).map_or(0, |n| n as u32);
    // A small manifest in one pass. A large one in parts; a part that fails is parsed
    // again in the whole file, for an error whose line and column are the file's.
    let whole = || serde_json::from_slice::<Manifest>(raw).map(|m| (m, None));
    let parsed = if parallel {
        parse_in_parts(raw, prev).map(|(m, sha)| (m, Some(sha))).or_else(|_| whole())
    } else {
        whole()
    };
    match parsed {
        Ok((m, sha)) if m.schema == SCHEMA => Ok((m, sha)),
        Ok((m, _)) => Err(LoadError::Schema(m.schema)),
        Err(e) => match serde_json::from_slice::<Schema>(raw) {
            Ok(s) if schema(&s.schema) != SCHEMA => Err(LoadError::Schema(schema(&s.schema))),
            _ => Err(LoadError::Manifest(e)),
        },
    }
}

/// runtime.json with its two long lists, devices and files, parsed on two threads: for a
/// large fabric they are nearly all of it (5 MB for 10,000 devices), and a reload waits
/// for the parse. Devices whose text is unchanged from `prev`'s are taken over. (Both
/// lists are parsed from bytes, as in the one-pass parse: the same code, not a second
/// copy of it for `&str` input, whose pages a small fabric's footprint would count.)
fn parse_in_parts(raw: &[u8], prev: Option<&Generation>) -> serde_json::Result<(Manifest, [u8; 32])> {
    use serde_json::value::RawValue;
    use ztpc::render::manifest::{DeviceInfo, ManifestOf};
    let m: ManifestOf<&RawValue, &RawValue> = serde_json::from_slice(raw)?;
    let devices = || {
        let text = m.devices.get().as_bytes();
        let sha: [u8; 32] = Sha256::digest(text).into();
        match prev.filter(|g| g.devices_sha == Some(sha)) {
            Some(g) => Ok((Arc::clone(&g.manifest.devices), sha)),
            None => serde_json::from_slice::<Vec<DeviceInfo>>(text).map(|d| (Arc::new(d), sha)),
        }
    };
    let (devices, files) = std::thread::scope(|s| {
        let d = s.spawn(devices);
        let f = serde_json::from_slice::<Vec<FileInfo>>(m.files.get().as_bytes());
        (d.join().map_err(|_| serde::de::Error::custom("parsing the devices panicked")), f)
    });
    let (devices, sha) = devices??;
    Ok((m.with_lists(devices, files?), sha))
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
