//! A generation: everything loaded from one artifact directory (or one in-memory compile
//! of a fabric), immutable and shared behind an `Arc`. Each request and each transfer
//! holds the generation it started with until it ends, so a reload never changes the
//! bytes of a transfer in flight.
//!
//! Memory: a loaded directory's files are checked against their sha256 once, then the
//! shared top-level files (ztp.json, the platform scripts: what every device fetches)
//! stay in memory up to [`MEMORY_BUDGET`], and every other file (a device's own
//! script, fetched about once) is kept as an open descriptor and read on request. The
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

use bytes::Bytes;
use sha2::{Digest, Sha256};
use ztpc::render::manifest::{Manifest, SCHEMA};
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
}

/// Bytes of the served tree kept in memory, at most (top-level files first).
pub const MEMORY_BUDGET: u64 = 1 << 20;

/// A file of the served tree: checked against its sha256 at load.
#[derive(Debug, Clone)]
pub struct TreeFile {
    data: Data,
    pub sha256: String,
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
        TreeFile { data: Data::Memory(bytes), sha256 }
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

#[derive(Debug)]
pub struct Generation {
    /// Short hash of runtime.json: names this generation in logs and the status API.
    pub id: String,
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
        use std::os::unix::fs::MetadataExt;
        let ino = |d: &Path| std::fs::metadata(d).map(|m| (m.dev(), m.ino())).ok();
        let mut attempt = 0;
        loop {
            let before = ino(dir);
            let result = Self::load_dir_once(dir);
            attempt += 1;
            if result.is_ok() || attempt >= 4 || ino(dir) == before {
                return result;
            }
        }
    }

    fn load_dir_once(dir: &Path) -> Result<Generation, LoadError> {
        raise_fd_limit();
        let mpath = dir.join(MANIFEST);
        let raw = std::fs::read(&mpath).map_err(|e| LoadError::Read(mpath.clone(), e))?;
        let manifest = parse_manifest(&raw)?;
        let root = dir.join(&manifest.tftp_root);
        let mut files = HashMap::with_capacity(manifest.files.len());
        // Top-level files first (every device fetches them), smallest first, until the
        // memory budget is spent.
        let mut order: Vec<_> = manifest.files.iter().collect();
        order.sort_by_key(|f| (f.path.contains('/'), f.size));
        let mut budget = MEMORY_BUDGET;
        // One buffer for every file: reading each into a fresh Vec and freeing it
        // leaves the allocator's heap grown to the largest file for nothing.
        let mut buf = Vec::new();
        for f in order {
            let p = root.join(&f.path);
            let mut file = match File::open(&p) {
                Ok(h) => h,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(LoadError::MissingFile(f.path.clone()));
                }
                Err(e) => return Err(LoadError::Read(p, e)),
            };
            buf.clear();
            file.read_to_end(&mut buf).map_err(|e| LoadError::Read(p.clone(), e))?;
            if sha256_hex(&buf) != f.sha256 {
                return Err(LoadError::Checksum(f.path.clone()));
            }
            let size = buf.len() as u64;
            let data = if size <= budget {
                budget -= size;
                Data::Memory(Bytes::copy_from_slice(&buf))
            } else {
                Data::Disk(Arc::new(file), size)
            };
            files.insert(f.path.clone(), TreeFile { data, sha256: f.sha256.clone() });
        }
        drop(buf);
        let images = images(&manifest, dir)?;
        Ok(Generation { id: sha256_hex(&raw)[..16].to_string(), manifest, files, images })
    }

    /// A generation from an in-memory build; local images are found from `base`, the
    /// directory that the build's `fabric_dir_from_out` was relative to.
    pub fn from_artifacts(art: &Artifacts, base: &Path) -> Result<Generation, LoadError> {
        let raw = &art.get(MANIFEST).ok_or_else(|| LoadError::MissingFile(MANIFEST.into()))?.bytes;
        let manifest = parse_manifest(raw)?;
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

    /// Compile a fabric file in-process (`ztp-runtime fabric.kdl`), reading `(env)`
    /// secrets from the process environment, then from `env_file` (`--env-file`).
    pub fn compile(fabric: &Path, env_file: &HashMap<String, String>) -> Result<Generation, LoadError> {
        let text = std::fs::read_to_string(fabric).map_err(|e| LoadError::Read(fabric.to_path_buf(), e))?;
        let base = match fabric.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let env = |k: &str| std::env::var(k).ok().or_else(|| env_file.get(k).cloned());
        let host = ztpc::Host { base_dir: base.clone(), env: &env };
        let opts = ztpc::BuildOptions { fabric_dir_from_out: ".".into() };
        let out = ztpc::build(&text, &host, &opts).map_err(LoadError::Compile)?;
        match out.artifacts {
            Some(art) if !out.diagnostics.has_errors() => Generation::from_artifacts(&art, &base),
            _ => {
                let name = fabric.display().to_string();
                let style = ztpc::RenderStyle { color: false, width: 100 };
                Err(LoadError::Compile(ztpc::diag::render(&out.diagnostics, &name, &text, style)))
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

    pub fn file_count(&self) -> usize {
        self.files.len()
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
    // Read the schema number first so a newer layout gets a clear message, not a
    // field-by-field parse error.
    let v: serde_json::Value = serde_json::from_slice(raw).map_err(LoadError::Manifest)?;
    let schema = v.get("schema").and_then(|s| s.as_u64()).unwrap_or(0) as u32;
    if schema != SCHEMA {
        return Err(LoadError::Schema(schema));
    }
    serde_json::from_value(v).map_err(LoadError::Manifest)
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
