//! The ztp-runtime binary as linked: what the dynamic loader must map and relocate at
//! start-up is part of its idle footprint (bench/footprint), so the two savings made
//! for it are checked here rather than trusted to stay.

// Tests may unwrap (clippy.toml allows it in #[test] fns).
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// `readelf -d` of the binary: its dynamic section.
fn dynamic_section() -> String {
    let out = Command::new("readelf").arg("-dW").arg(env!("CARGO_BIN_EXE_ztp-runtime")).output().unwrap();
    assert!(out.status.success(), "readelf: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn does_not_load_libm() {
    // Loading libm.so.6 alone costs ~0.5 MiB resident (runtime/src/libm_free.rs). A new
    // dependency calling exp, log, sin ... would bring it back: give it the libm crate's
    // function in libm_free.rs too, or leave it out.
    let d = dynamic_section();
    assert!(d.contains("Shared library: [libc.so.6]"), "{d}");
    assert!(!d.contains("libm.so"), "ztp-runtime needs libm again:\n{d}");
}

#[test]
fn packs_its_relative_relocations() {
    // runtime/build.rs: DT_RELR instead of ~200 kB of RELA entries read at start-up.
    let d = dynamic_section();
    assert!(d.contains("(RELR)"), "no DT_RELR in ztp-runtime:\n{d}");
}
