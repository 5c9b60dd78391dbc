//! A tree with more files than the open-file limit leaves descriptors for is served with
//! the excess held in memory, not refused. (Its own test binary: it lowers the process's
//! limit, which would starve any test running beside it.)

// Tests may unwrap (clippy.toml allows it in #[test] fns; the helpers here too).
#![allow(clippy::unwrap_used)]

#[path = "files_support.rs"]
mod support;

use support::*;
use ztp_runtime::generation::Generation;

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

    let (g, s) = Generation::load_dir_reusing(&out, None).unwrap();
    assert_eq!(s.short_of_fds, 0, "{s:?}");
    assert!(on_disk(&g, device));

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
}
