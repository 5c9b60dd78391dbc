//! Pass 3: model → in-memory artifact set (path → bytes + mode). No I/O but reading the
//! custom-config files the fabric names.

pub mod dhcpd;
pub mod identity;
pub mod kea;
pub mod manifest;
pub mod scripts;
pub mod sink;
pub mod ztp_json;

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::{Fabric, LocalFile, Resource};
use crate::platform::{BootOption, Platform};
pub use sink::{Index, MemorySink, Served, Sink};

/// Owner read/write only: files that hold secrets (ztp.json, device scripts, runtime.json).
pub const MODE_SECRET: u32 = 0o600;
pub const MODE_FILE: u32 = 0o644;
pub const MODE_SCRIPT: u32 = 0o755;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Every file a build writes, keyed by its path relative to the output directory.
pub type Artifacts = BTreeMap<String, Artifact>;

/// Paths in the output directory (the contract with the runtime; see ARCHITECTURE.md).
pub const DHCPD_CONF: &str = "dhcpd.conf";
pub const KEA_CONF: &str = "kea-dhcp4.json";
pub const MANIFEST: &str = "runtime.json";
pub const TFTP_DIR: &str = "tftp";
pub const ZTP_JSON: &str = "ztp.json";
pub const SUMS: &str = "SHA256SUMS";

/// What the build needs to know about where its output goes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The fabric file's directory as seen from the output directory, so that the
    /// runtime can serve local images from where they are without absolute paths.
    pub fabric_dir_from_out: String,
}

/// Render every artifact for a validated fabric, in memory.
pub fn render(fabric: &Fabric, opts: &BuildOptions) -> Result<Artifacts, String> {
    let sink = MemorySink::default();
    render_into(fabric, opts, &sink)?;
    Ok(sink.into_artifacts())
}

/// The served tree as it is rendered: each file is hashed by the thread that made it,
/// while its bytes are still in that CPU's cache, then handed to the sink.
struct Tree<'a> {
    sink: &'a dyn Sink,
    index: Mutex<Index>,
}

impl Tree<'_> {
    /// Serve `artifact` at `rel` (relative to the tree).
    fn put(&self, rel: String, artifact: Artifact) -> Result<(), String> {
        let served = Served {
            sha256: sha256_hex(&artifact.bytes),
            size: artifact.bytes.len() as u64,
            mode: artifact.mode,
        };
        self.sink.put(&format!("{TFTP_DIR}/{rel}"), artifact)?;
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(rel, served);
        Ok(())
    }
}

/// Render every artifact for a validated fabric into `sink`, each as soon as it exists;
/// returns how many files were rendered.
pub fn render_into(fabric: &Fabric, opts: &BuildOptions, sink: &dyn Sink) -> Result<usize, String> {
    let tree = Tree { sink, index: Mutex::default() };
    tree.put(ZTP_JSON.into(), Artifact { bytes: ztp_json::render(fabric).into_bytes(), mode: MODE_SECRET })?;
    scripts::render(fabric, &|rel, a| tree.put(rel, a))?;
    for file in custom_files(fabric) {
        let bytes =
            std::fs::read(&file.path).map_err(|e| format!("reading custom-config {}: {e}", file.rel))?;
        tree.put(custom_path(&file.rel), Artifact { bytes, mode: MODE_SCRIPT })?;
    }
    // The listing covers every served file but itself; runtime.json covers it too.
    let index = tree.index.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    let listing: String = index.iter().map(|(path, s)| format!("{}  {path}\n", s.sha256)).collect();
    let tree = Tree { sink, index: Mutex::new(index) };
    tree.put(SUMS.into(), Artifact { bytes: listing.into_bytes(), mode: MODE_FILE })?;
    let index = tree.index.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());

    sink.put(DHCPD_CONF, Artifact { bytes: dhcpd::render(fabric).into_bytes(), mode: MODE_FILE })?;
    sink.put(KEA_CONF, Artifact { bytes: kea::render(fabric).into_bytes(), mode: MODE_FILE })?;
    let manifest = manifest::render(fabric, &index, opts);
    sink.put(MANIFEST, Artifact { bytes: manifest.into_bytes(), mode: MODE_SECRET })?;
    Ok(index.len() + 3)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::validate::hex(&Sha256::digest(bytes))
}

/// Every local custom-config file named anywhere in the fabric, once each, sorted.
fn custom_files(fabric: &Fabric) -> Vec<LocalFile> {
    let blocks = std::iter::once(&fabric.defaults)
        .chain(fabric.platforms.values())
        .chain(fabric.models.values())
        .chain(fabric.devices.iter().map(|d| &d.settings));
    let mut files: BTreeMap<String, LocalFile> = BTreeMap::new();
    for s in blocks {
        if let Some(Resource::Local(f)) = &s.custom_config {
            files.entry(f.rel.clone()).or_insert_with(|| f.clone());
        }
    }
    files.into_values().collect()
}

/// A fabric-relative path made safe to serve under a prefix: `.` dropped, `..` renamed,
/// so `../x` can never climb out of the tree.
fn served_rel(rel: &str) -> String {
    rel.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| if c == ".." { "_up" } else { c })
        .collect::<Vec<_>>()
        .join("/")
}

/// Where a local custom-config file is served, relative to the TFTP root.
pub fn custom_path(rel: &str) -> String {
    format!("custom/{}", served_rel(rel))
}

/// The URL path (no leading slash) where the runtime serves a local image.
pub fn image_path(rel: &str) -> String {
    let rel = served_rel(rel);
    if rel.starts_with("images/") { rel } else { format!("images/{rel}") }
}

/// A custom-config or image as a device fetches it: a URL, or a path in the tree.
pub fn resource_ref(fabric: &Fabric, r: &Resource, image: bool) -> String {
    match r {
        Resource::Url(u) => u.clone(),
        Resource::Local(f) if image => format!("{}/{}", fabric.server.base_url(), image_path(&f.rel)),
        Resource::Local(f) => custom_path(&f.rel),
    }
}

/// The value of a platform's boot option for a script at `path` in the tree.
pub fn boot_value(fabric: &Fabric, platform: Platform, path: &str) -> String {
    match platform.boot_option() {
        BootOption::JuniperConfigFile | BootOption::BootfileName => path.to_string(),
        BootOption::ProvisionUrl => format!("{}/{path}", fabric.server.base_url()),
    }
}

/// Quote a string for dhcpd.conf; bytes dhcpd cannot take in quotes go as hex.
pub fn isc_data(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        format!("\"{s}\"")
    } else {
        colon_hex(s.as_bytes())
    }
}

pub fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A string literal for a Kea expression: hex, so no quoting problem can arise.
pub fn kea_data(bytes: &[u8]) -> String {
    format!("0x{}", crate::validate::hex(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_paths_never_climb() {
        assert_eq!(custom_path("../x/./y.sh"), "custom/_up/x/y.sh");
        assert_eq!(image_path("images/a.bin"), "images/a.bin");
        assert_eq!(image_path("../a.bin"), "images/_up/a.bin");
        assert_eq!(custom_path("/abs/z.sh"), "custom/abs/z.sh");
    }

    #[test]
    fn isc_quoting() {
        assert_eq!(isc_data("ge-0/0/1"), "\"ge-0/0/1\"");
        assert_eq!(isc_data("a\"b"), "61:22:62");
    }
}
