//! examples/lab built for a test (included with `#[path]`; as its own test target it
//! holds no tests): through the compiler library, as `ztpc build` writes it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Build examples/lab, its fabric text changed by `edit`, into `out`.
pub fn build_lab(out: &Path, edit: impl Fn(String) -> String) {
    let dir = root().join("examples/lab");
    let text = edit(std::fs::read_to_string(dir.join("fabric.kdl")).unwrap());
    let host = ztpc::Host { base_dir: dir.clone(), env: &|_| None };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: dir.display().to_string() };
    let o = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!o.diagnostics.has_errors());
    ztpc::emit::emit(&o.artifacts.unwrap(), out).unwrap();
}

/// examples/lab moved onto 127.0.0.0/24 (server 127.0.0.5, devices at their lab host
/// numbers), so that a test on loopback can be each device.
pub fn on_loopback(text: String) -> String {
    text.replace("10.99.0.", "127.0.0.")
}
