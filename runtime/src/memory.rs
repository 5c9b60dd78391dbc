//! Giving freed heap back to the kernel after a generation is loaded or replaced.
//!
//! A load allocates the new generation and, in between, its garbage (the manifest's
//! text, parse buffers) in one malloc arena. glibc returns only the free space at the
//! top of an arena by itself, so the garbage left below the generation's data stays
//! resident: about 0.4 MB for a 1,000-device fabric (bench/footprint), on every reload.
//! `malloc_trim` releases free pages anywhere in every arena.
#![allow(unsafe_code)] // the one exception to the workspace's deny: a call into glibc

/// Return the free pages of every malloc arena to the kernel. Cheap (it walks glibc's
/// free lists, a few hundred microseconds) and safe to call from any thread; a no-op
/// where the C library is not glibc.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes no pointer, touches only glibc's own arenas under
        // their locks, and is documented as callable at any time (malloc_trim(3)).
        unsafe {
            malloc_trim(0);
        }
    }
}
