//! ztpc: compile one fabric.kdl into validated ZTP artifacts.
//!
//! The passes, each a pure function of the previous one's output:
//! [`syntax::parse`] (KDL → syntax tree with spans), [`validate::validate`] (→ model,
//! every problem collected), [`render::render`] (→ in-memory artifact set), and
//! [`emit::emit`], the only step that writes, atomically.

pub mod cli;
pub mod diag;
pub mod emit;
pub mod explain;
pub mod kdl_fast;
pub mod merge;
pub mod model;
pub mod platform;
pub mod render;
pub mod syntax;
pub mod validate;
pub mod values;

pub use diag::{Code, Diag, Diagnostics, RenderStyle};
pub use render::{Artifact, Artifacts, BuildOptions};
pub use validate::Host;

/// The result of checking or building: the diagnostics, and the model and artifacts
/// when there were no errors.
#[derive(Debug)]
pub struct Outcome {
    pub diagnostics: Diagnostics,
    pub fabric: Option<model::Fabric>,
    pub artifacts: Option<Artifacts>,
}

/// Parse and validate without rendering (`ztpc check`).
pub fn check(text: &str, host: &Host) -> Outcome {
    let mut diagnostics = Diagnostics::default();
    let fabric = syntax::parse(text, &mut diagnostics)
        .and_then(|ast| validate::validate(&ast, host, &mut diagnostics));
    diagnostics.sort();
    Outcome { diagnostics, fabric, artifacts: None }
}

/// Parse, validate and render every artifact in memory (`ztpc build` minus the write).
pub fn build(text: &str, host: &Host, opts: &BuildOptions) -> Result<Outcome, String> {
    let mut out = check(text, host);
    if let Some(f) = &out.fabric {
        out.artifacts = Some(render::render(f, opts)?);
    }
    Ok(out)
}
