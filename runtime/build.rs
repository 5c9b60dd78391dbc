//! Link options for the runtime's binaries.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ZTP_NO_PACK_RELOCS");
    let packed = pack_relocs();
    if packed {
        // Pack the position-independent binary's relative relocations (DT_RELR): 9,000-odd
        // 24-byte entries become a few kB of bitmaps, so the dynamic loader reads a few kB
        // at start-up instead of ~220 kB of the binary, which stayed resident
        // (bench/footprint measures idle RSS). The loader does the same relocations.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // For tests/binary_linking.rs: what this build decided.
    println!("cargo:rustc-env=ZTP_PACKED_RELOCS={}", u8::from(packed));
}

/// Whether to link with packed relocations. A binary so linked needs glibc 2.36 or later
/// to run (its loader must know DT_RELR; the binary says so with the version
/// GLIBC_ABI_DT_RELR), so only where the build machine has that glibc itself, building
/// for itself, and not when `ZTP_NO_PACK_RELOCS` is set: a binary built on Debian 12 to
/// be copied to RHEL 9 (glibc 2.34) or Ubuntu 22.04 (2.35) is built with it set.
fn pack_relocs() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("HOST") != var("TARGET")
        || std::env::var_os("ZTP_NO_PACK_RELOCS").is_some()
    {
        return false;
    }
    // "glibc 2.36"
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = text.trim().trim_start_matches("glibc ").split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    out.status.success() && (major, minor) >= (2, 36)
}
