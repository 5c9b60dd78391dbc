//! The whole compiler: fabric text in, diagnostics (rendered as `ztpc check` prints
//! them) or every artifact out, in memory. Relative paths resolve in examples/dc1, so
//! the fuzzer can reach the certs, images and scripts there.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let base = ztp_fuzz::repo().join("examples").join("dc1");
    match ztp_fuzz::build(text, &base) {
        Ok(out) => {
            let style = ztpc::RenderStyle { color: false, width: 100 };
            let _ = ztpc::diag::render(&out.diagnostics, "fabric.kdl", text, style);
            if let Some(art) = &out.artifacts {
                // What the runtime would do with this build.
                let _ = ztp_runtime::generation::Generation::from_artifacts(art, &base);
            }
        }
        Err(_render_error) => {}
    }
});
