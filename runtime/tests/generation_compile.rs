//! `ztp-runtime fabric.kdl` compiles into the state directory and serves from there: the
//! same generation as an in-memory compile, byte for byte, but with device scripts on
//! disk instead of in the heap; a recompile serves the edit and takes over the rest; a directory
//! that cannot be written falls back to memory; a broken fabric changes nothing.

// Tests may unwrap (clippy.toml allows it in #[test] fns; the helpers here too).
#![allow(clippy::unwrap_used)]

#[path = "files_support.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use support::*;
use ztp_runtime::generation::{Generation, LoadError};

fn env(dir: &Path) -> HashMap<String, String> {
    ztpc::cli::parse_env_file(&std::fs::read_to_string(dir.join("demo.env")).unwrap())
}

/// A dc1 copy in a new temporary directory: the directory, its fabric file and demo.env.
fn setup(seed: u64) -> (tempfile::TempDir, PathBuf, HashMap<String, String>) {
    let tmp = tempfile::tempdir().unwrap();
    let src = dc1_copy(&tmp.path().join("src"), 5_000, 3_000, seed);
    let env = env(&src);
    (tmp, src.join("fabric.kdl"), env)
}

/// Every path in the tree, from its SHA256SUMS (plus the list itself).
fn paths(g: &Generation) -> Vec<String> {
    let sums = String::from_utf8(tree_bytes(g, "SHA256SUMS")).unwrap();
    let mut p: Vec<String> = sums.lines().map(|l| l.split_once("  ").unwrap().1.to_string()).collect();
    p.push("SHA256SUMS".into());
    p
}

#[test]
fn compiled_into_a_directory_it_is_the_in_memory_generation_served_from_disk() {
    let (tmp, fabric, env) = setup(7);
    let dir = tmp.path().join("state/compiled");
    let mem = Generation::compile(&fabric, &env).unwrap();
    let (disk, stats) = Generation::compile_into(&fabric, &env, &dir, None).unwrap();
    assert!(stats.is_some(), "loaded from the directory, not from memory");
    assert!(dir.join("runtime.json").is_file() && dir.join("tftp/ztp.json").is_file());
    assert_eq!(disk.id, mem.id, "the same runtime.json either way");
    let all = paths(&disk);
    assert!(all.len() > 10, "{all:?}");
    for p in &all {
        assert_eq!(tree_bytes(&disk, p), tree_bytes(&mem, p), "{p}");
    }
    assert_eq!(tree_bytes(&disk, IMAGE), tree_bytes(&mem, IMAGE), "local images found from either");
    let device = all.iter().find(|p| p.starts_with("devices/")).unwrap();
    assert!(on_disk(&disk, device), "{device}: a device script stays on disk");
    assert!(!on_disk(&mem, device), "{device}: an in-memory compile holds it in the heap");
    assert!(!on_disk(&disk, "ztp.json"), "shared files are in memory either way");
}

/// A recompile into the same directory serves the edit, and takes the files that did
/// not change over from the generation before (ztpc links them into its new tree, which
/// changes their ctime only) instead of hashing them again. Files are vouched for by
/// their timestamps once those are older than the load that checked them, so the
/// take-over shows from the third generation on.
#[test]
fn a_recompile_serves_the_edit_and_takes_over_the_rest() {
    let (tmp, fabric, env) = setup(8);
    let dir = tmp.path().join("state/compiled");
    let (first, _) = Generation::compile_into(&fabric, &env, &dir, None).unwrap();
    let text = std::fs::read_to_string(&fabric).unwrap();
    // The serial is in spine1's script and in ztp.json, nowhere else.
    let mut prev = first;
    for (i, serial) in ["JPE87654321", "JPE11111111"].into_iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::write(&fabric, text.replace("JPE12345678", serial)).unwrap();
        let (next, stats) = Generation::compile_into(&fabric, &env, &dir, Some(&prev)).unwrap();
        let stats = stats.expect("loaded from the directory");
        assert_ne!(next.id, prev.id);
        assert_eq!(tree_bytes(&next, "devices/leaf1.sh"), tree_bytes(&prev, "devices/leaf1.sh"));
        let script = String::from_utf8(tree_bytes(&next, "devices/spine1.sh")).unwrap();
        assert!(script.contains(serial), "the new serial is served");
        if i == 1 {
            assert!(stats.reused > stats.hashed, "{stats:?}");
            assert!(stats.hashed > 0, "the edited files are hashed: {stats:?}");
        }
        prev = next;
    }
}

#[test]
fn an_unwritable_directory_falls_back_to_memory() {
    let (tmp, fabric, env) = setup(9);
    // Its parent is a file, so it can never be created (even by root).
    std::fs::write(tmp.path().join("state"), b"not a directory").unwrap();
    let (g, stats) =
        Generation::compile_into(&fabric, &env, &tmp.path().join("state/compiled"), None).unwrap();
    assert!(stats.is_none(), "built in memory");
    assert_eq!(g.id, Generation::compile(&fabric, &env).unwrap().id);
}

#[test]
fn a_fabric_with_errors_changes_nothing() {
    let (tmp, fabric, env) = setup(10);
    let dir = tmp.path().join("state/compiled");
    Generation::compile_into(&fabric, &env, &dir, None).unwrap();
    let before = std::fs::read(dir.join("runtime.json")).unwrap();
    let text = std::fs::read_to_string(&fabric).unwrap();
    std::fs::write(&fabric, text.replace("52:54:00:6f:ff:4f", "52:54:00:6f:ff")).unwrap();
    match Generation::compile_into(&fabric, &env, &dir, None) {
        Err(LoadError::Compile(text)) => assert!(text.contains("ztp::value::mac"), "{text}"),
        other => panic!("expected a compile error, got {:?}", other.map(|(g, _)| g.id)),
    }
    assert_eq!(std::fs::read(dir.join("runtime.json")).unwrap(), before);
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}
