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
fn packs_its_relative_relocations_where_glibc_can_load_them() {
    // runtime/build.rs: DT_RELR instead of ~220 kB of RELA entries read at start-up,
    // where the build machine's glibc (2.36+) can load such a binary and
    // ZTP_NO_PACK_RELOCS is unset; the link must have done what the build decided.
    let d = dynamic_section();
    let packed = env!("ZTP_PACKED_RELOCS") == "1";
    assert_eq!(d.contains("(RELR)"), packed, "build.rs decided packed={packed}:\n{d}");
    if std::env::var_os("ZTP_REQUIRE_ORACLES").is_some() {
        // CI runs on Debian 12 (glibc 2.36): the binary measured by bench/footprint.
        assert!(packed, "CI's build is not packed: is its glibc older than 2.36?");
    }
}
