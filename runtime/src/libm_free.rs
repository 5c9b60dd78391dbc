//! `pow` for the C symbol table, so that ztp-runtime does not load libm.so at all.
//!
//! The binary's only calls into libm were `pow` (tokio's multi-threaded scheduler
//! smooths its task poll times with `f64::powf`; minijinja's `**` on floats) and `log`
//! (SQLite's full-text search, which `.cargo/config.toml` leaves out of the build).
//! Loading libm.so.6 costs about 0.5 MiB of resident pages however little of it is
//! called: the dynamic loader runs every one of its ifunc resolvers at start-up, and
//! each fault maps 64 kB of it (bench/footprint measures idle RSS, and libm was more
//! than a twentieth of it). With `pow` defined here the linker resolves both calls to
//! this function and `--as-needed` drops libm from the binary's needed libraries.
//!
//! The function is the `libm` crate's (the Rust port of musl's, maintained by the
//! rust-lang project): within 1 ulp of the exact result, like glibc's, for every input.
#![allow(unsafe_code)] // a C ABI symbol: the one thing this file exists for

/// C's `double pow(double, double)`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    use super::pow;

    // Known results, not `f64::powf`: in a binary that links this file, `powf` is this
    // very function.
    #[test]
    fn gives_cs_pow_results() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(0.5, 3.0), 0.125);
        assert_eq!(pow(-8.0, 3.0), -512.0);
        assert_eq!(pow(2.0, -2.0), 0.25);
        assert_eq!(pow(2.0, 0.5), std::f64::consts::SQRT_2);
        assert_eq!(pow(0.0, 0.0), 1.0);
        assert_eq!(pow(1.0, f64::NAN), 1.0);
        assert!(pow(-1.0, 0.5).is_nan());
        assert_eq!(pow(10.0, 400.0), f64::INFINITY);
        // tokio's use: a decay factor 0 < a < 1 raised to a count of polls.
        let a = pow(0.1, 1.0 / 16.0);
        assert!((a - 0.865_964_323_360_065_3).abs() < 1e-15, "{a}");
    }
}
