//! What a loaded generation keeps on the heap, counted by a counting allocator: for a
//! 1,000-device fabric, under the budget that keeps the runtime's idle RSS within the
//! 10 MB target of bench/footprint, and all of it given back when the generation drops.
#![allow(unsafe_code)] // the counting allocator below wraps the system allocator's calls
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};

use ztp_runtime::generation::Generation;

/// The system allocator, counting the bytes live at any moment.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY (all three): each call is passed through unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Heap a loaded 1,000-device generation may keep (measured: about 800 kB, of which
/// 190 kB the platform scripts and ztp.json, 300 kB the file table, 190 kB the devices).
const BUDGET: isize = 1_000_000;

#[test]
fn a_loaded_generation_keeps_its_data_and_nothing_else() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
    let made = Command::new("python3").arg(root.join("bench/gen-fabric")).arg("1000").arg(&src).output();
    if !made.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("ZTP_REQUIRE_ORACLES").is_none(), "python3 bench/gen-fabric failed");
        eprintln!("SKIPPED: python3 is needed to generate the 1,000-device fabric");
        return;
    }
    let text = std::fs::read_to_string(src.join("fabric.kdl")).unwrap();
    let env = |_: &str| None;
    let host = ztpc::Host { base_dir: src.clone(), env: &env };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: src.display().to_string() };
    let o = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!o.diagnostics.has_errors());
    ztpc::emit::emit(&o.artifacts.unwrap(), &out).unwrap();

    let before = LIVE.load(Ordering::SeqCst);
    let g = Generation::load_dir(&out).unwrap();
    let kept = LIVE.load(Ordering::SeqCst) - before;
    assert_eq!(g.manifest.devices.len(), 1000);
    assert!(kept < BUDGET, "a 1,000-device generation keeps {kept} bytes of heap (budget {BUDGET})");
    drop(g);
    // Not exactly 0: the counter sees every thread of the test process, and a load's
    // worker threads free their own small bookkeeping (168 bytes seen) as they exit.
    let left = LIVE.load(Ordering::SeqCst) - before;
    assert!(left < 16 * 1024, "dropping the generation left {left} of its {kept} bytes allocated");
}
