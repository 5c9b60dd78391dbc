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

/// Why [`build_to`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The output directory could not be prepared, written or swapped in (exit code 2).
    #[error(transparent)]
    Emit(#[from] emit::EmitError),
    /// Rendering failed after validation, e.g. a custom-config file vanished (exit 2).
    #[error("{0}")]
    Render(String),
}

/// `ztpc build`'s write: render every artifact of a validated `fabric` straight into a
/// new output directory that then replaces `out` atomically (nothing changes on error).
/// Returns how many files the build has and what was written.
pub fn write(
    fabric: &model::Fabric,
    opts: &BuildOptions,
    out: &std::path::Path,
) -> Result<(usize, emit::Emitted), BuildError> {
    let staging = emit::Staging::new(out)?;
    let files = render::render_into(fabric, opts, &staging).map_err(BuildError::Render)?;
    Ok((files, staging.commit()?))
}

/// Parse, validate and render every artifact in memory (`ztpc build` minus the write).
pub fn build(text: &str, host: &Host, opts: &BuildOptions) -> Result<Outcome, String> {
    let mut out = check(text, host);
    if let Some(f) = &out.fabric {
        out.artifacts = Some(render::render(f, opts)?);
    }
    Ok(out)
}
