//! Link options for the runtime's binaries.

fn main() {
    // Pack the position-independent binary's relative relocations (DT_RELR, glibc 2.36+,
    // binutils 2.38+): 9,000-odd 24-byte entries become a few kB of bitmaps, so the
    // dynamic loader reads a few kB at start-up instead of ~200 kB of the binary, which
    // stayed resident (bench/footprint measures idle RSS). The loader does the same
    // relocations either way.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
