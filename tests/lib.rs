//! Shared helpers for the workspace integration tests: where things are, how an example
//! is built in-process, and how oracle tools are found (or their absence reported).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ztpc::{Artifacts, BuildOptions, Host, Outcome};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The valid examples: every directory of `examples/` holding a `fabric.kdl`.
pub fn examples() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("fabric.kdl").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Variables for `(env)` secrets: only the example's own `demo.env`, never the process
/// environment, so goldens do not depend on who runs the tests.
pub fn example_env(name: &str) -> HashMap<String, String> {
    let path = root().join("examples").join(name).join("demo.env");
    std::fs::read_to_string(path).map(|t| ztpc::cli::parse_env_file(&t)).unwrap_or_default()
}

/// Build `examples/<name>` in memory as if writing to `golden/<name>`.
pub fn build_example(name: &str) -> Outcome {
    let dir = root().join("examples").join(name);
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).expect("fabric.kdl");
    let env = example_env(name);
    let lookup = |k: &str| env.get(k).cloned();
    let host = Host { base_dir: dir, env: &lookup };
    let opts = BuildOptions { fabric_dir_from_out: format!("../../examples/{name}") };
    ztpc::build(&text, &host, &opts).expect("render")
}

pub fn artifacts(name: &str) -> Artifacts {
    let out = build_example(name);
    assert!(
        !out.diagnostics.has_errors(),
        "example {name} has errors:\n{}",
        ztpc::diag::render(&out.diagnostics, name, "", ztpc::RenderStyle::PLAIN)
    );
    out.artifacts.expect("artifacts")
}

/// Every file under `dir`, relative path → (bytes, executable?).
pub fn read_tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
                let exec = e.metadata().map(|m| m.permissions().mode() & 0o100 != 0).unwrap_or(false);
                out.insert(rel, (std::fs::read(&p).expect("read"), exec));
            }
        }
    }
    out
}

/// Find an oracle tool. When it is missing: with `ZTP_REQUIRE_ORACLES=1` (CI) the test
/// fails; otherwise it says plainly that this check was skipped.
pub fn oracle(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("oracle `{tool}` not found and ZTP_REQUIRE_ORACLES=1");
        }
        eprintln!("SKIPPED: oracle `{tool}` not installed; this check did not run");
    }
    found
}
