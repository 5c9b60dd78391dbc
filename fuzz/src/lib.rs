//! Shared set-up for the fuzz targets: real generations compiled in memory from the
//! examples (no disk writes), with every `(env)` secret set to a fixed test value.

use std::path::{Path, PathBuf};

use ztp_runtime::generation::Generation;

/// The repository root (fuzz/ is one level below it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The value every `(env)` secret gets while fuzzing.
pub const SECRET: &str = "fuzz-secret-value";

/// Compile `text` as if it were a fabric file in `base`, entirely in memory.
pub fn build(text: &str, base: &Path) -> Result<ztpc::Outcome, String> {
    let env = |_: &str| Some(SECRET.to_string());
    let host = ztpc::Host { base_dir: base.to_path_buf(), env: &env };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: ".".into() };
    ztpc::build(text, &host, &opts)
}

/// The generation of `examples/NAME/fabric.kdl`, compiled in memory.
pub fn generation(name: &str) -> Generation {
    let dir = repo().join("examples").join(name);
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).expect("example fabric readable");
    let out = build(&text, &dir).expect("example renders");
    let art = out.artifacts.expect("example compiles without errors");
    Generation::from_artifacts(&art, &dir).expect("example generation loads")
}
