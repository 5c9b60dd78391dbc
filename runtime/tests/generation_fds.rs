//! A tree with more files than the open-file limit leaves descriptors for is served with
//! the excess held in memory, not refused. (Its own test binary: it lowers the process's
//! limit, which would starve any test running beside it.)

// Tests may unwrap (clippy.toml allows it in #[test] fns; the helpers here too).
#![allow(clippy::unwrap_used)]

#[path = "files_support.rs"]
mod support;

use support::*;
use ztp_runtime::generation::{Generation, served_descriptors};

/// How many of the generation's files it serves from disk (each holds a descriptor).
fn disk_files(g: &Generation, out: &std::path::Path) -> u64 {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runtime.json")).unwrap()).unwrap();
    m["files"].as_array().unwrap().iter().filter(|f| on_disk(g, f["path"].as_str().unwrap())).count() as u64
}

#[test]
fn beyond_the_open_file_limit_files_are_held_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dc1_copy(&tmp.path().join("src"), 5_000, 3_000, 3);
    let out = tmp.path().join("out");
    let env = ztpc::cli::parse_env_file(&std::fs::read_to_string(src.join("demo.env")).unwrap());
    let (built, _) = Generation::compile_into(&src.join("fabric.kdl"), &env, &out, None).unwrap();
    let device = "devices/spine1.sh";
    let want = std::fs::read(out.join("tftp").join(device)).unwrap();
    assert!(on_disk(&built, device));

    // The load's budget counts the descriptors served files hold as they open and close
    // (an estimate checked against /proc only once it runs out).
    assert_eq!(served_descriptors(), disk_files(&built, &out));
    let (g, s) = Generation::load_dir_reusing(&out, None).unwrap();
    assert_eq!(s.short_of_fds, 0, "{s:?}");
    assert!(on_disk(&g, device));
    assert_eq!(served_descriptors(), disk_files(&built, &out) + disk_files(&g, &out));
    drop(built);
    assert_eq!(served_descriptors(), disk_files(&g, &out));

    // A limit that leaves nothing beyond the reserve (1,024) for sockets and transfers.
    use rustix::process::{Resource, Rlimit, setrlimit};
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let limit = Some(open + 1024);
    setrlimit(Resource::Nofile, Rlimit { current: limit, maximum: limit }).unwrap();
    let (h, s) = Generation::load_dir_reusing(&out, None).unwrap();
    assert!(s.short_of_fds > 0, "{s:?}");
    assert!(!on_disk(&h, device), "held in memory");
    assert_eq!(tree_bytes(&h, device), want);
    assert_eq!(h.id, g.id);
    drop((g, h));
    assert_eq!(served_descriptors(), 0, "every served file's descriptor is closed");
}
