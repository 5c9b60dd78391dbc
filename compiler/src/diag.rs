//! Diagnostics: every problem found in a fabric file, with a stable code and spans.
//!
//! Passes never stop at the first problem; they push into [`Diagnostics`] and carry on,
//! so a user sees everything wrong with a fabric in one run.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity, SourceSpan,
};

/// Stable diagnostic codes. The string form (`ztp::...`) is part of the CLI contract:
/// scripts and docs may match on it, so a code is never renamed once shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    KdlSyntax,
    UnknownNode,
    UnknownProperty,
    WrongType,
    WrongArity,
    MissingNode,
    DuplicateNode,
    UnexpectedChildren,
    BadIpv4,
    BadCidr,
    BadMac,
    BadHostname,
    BadSha256,
    BadUrl,
    BadValue,
    UnknownPlatform,
    DuplicateDeviceName,
    DuplicateMac,
    DuplicateSerial,
    DuplicateAddress,
    DuplicateLocation,
    NoIdentity,
    AddressOutsideSubnets,
    AddressInPool,
    AddressReserved,
    PoolOutsideSubnet,
    PoolOverlap,
    PoolReversed,
    SubnetOverlap,
    MissingFile,
    EnvUnset,
    EmptySecret,
    LiteralSecret,
    ImageChecksumMismatch,
    SerialNotInDhcp,
    NoChecksum,
}

impl Code {
    /// The stable `ztp::...` name shown to users.
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            KdlSyntax => "ztp::kdl::syntax",
            UnknownNode => "ztp::schema::unknown-node",
            UnknownProperty => "ztp::schema::unknown-property",
            WrongType => "ztp::schema::wrong-type",
            WrongArity => "ztp::schema::wrong-arity",
            MissingNode => "ztp::schema::missing-node",
            DuplicateNode => "ztp::schema::duplicate-node",
            UnexpectedChildren => "ztp::schema::unexpected-children",
            BadIpv4 => "ztp::value::ipv4",
            BadCidr => "ztp::value::cidr",
            BadMac => "ztp::value::mac",
            BadHostname => "ztp::value::hostname",
            BadSha256 => "ztp::value::sha256",
            BadUrl => "ztp::value::url",
            BadValue => "ztp::value::invalid",
            UnknownPlatform => "ztp::platform::unknown",
            DuplicateDeviceName => "ztp::device::duplicate-name",
            DuplicateMac => "ztp::device::duplicate-mac",
            DuplicateSerial => "ztp::device::duplicate-serial",
            DuplicateAddress => "ztp::device::duplicate-address",
            DuplicateLocation => "ztp::device::duplicate-location",
            NoIdentity => "ztp::device::no-identity",
            AddressOutsideSubnets => "ztp::address::outside-subnets",
            AddressInPool => "ztp::address::in-pool",
            AddressReserved => "ztp::address::reserved",
            PoolOutsideSubnet => "ztp::pool::outside-subnet",
            PoolOverlap => "ztp::pool::overlap",
            PoolReversed => "ztp::pool::reversed",
            SubnetOverlap => "ztp::subnet::overlap",
            MissingFile => "ztp::file::missing",
            EnvUnset => "ztp::secret::env-unset",
            EmptySecret => "ztp::secret::empty",
            LiteralSecret => "ztp::secret::literal",
            ImageChecksumMismatch => "ztp::image::sha256-mismatch",
            SerialNotInDhcp => "ztp::device::serial-not-in-dhcp",
            NoChecksum => "ztp::image::no-checksum",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in the fabric file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The primary span and its label text.
    pub span: SourceSpan,
    pub label: String,
    /// Secondary places that matter ("first used by `leaf1` here").
    pub secondary: Vec<(SourceSpan, String)>,
    pub help: Option<String>,
}

impl Diag {
    pub fn error(code: Code, span: SourceSpan, message: impl Into<String>) -> Self {
        Diag {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: "here".into(),
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, span: SourceSpan, message: impl Into<String>) -> Self {
        Diag { severity: Severity::Warning, ..Diag::error(code, span, message) }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn also(mut self, span: SourceSpan, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The problems a compile found, in the order they were found (which follows the file).
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diag>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diag) {
        self.items.push(d);
    }
    pub fn items(&self) -> &[Diag] {
        &self.items
    }
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diag::is_error)
    }
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }
    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }
    /// Sort by position so the report reads top to bottom whatever pass found what.
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| (d.span.offset(), d.code));
    }
    /// Turn every warning into an error (`--deny-warnings`).
    pub fn deny_warnings(&mut self) {
        for d in &mut self.items {
            d.severity = Severity::Error;
        }
    }
}

/// A [`Diag`] bound to the file it points into, ready for miette to render.
struct Located<'a> {
    diag: &'a Diag,
    source: &'a NamedSource<Arc<String>>,
}

impl fmt::Debug for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diag.fmt(f)
    }
}
impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}
impl std::error::Error for Located<'_> {}

impl Diagnostic for Located<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.as_str()))
    }
    fn severity(&self) -> Option<Severity> {
        Some(self.diag.severity)
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(Some(self.diag.label.clone()), self.diag.span);
        let rest = self.diag.secondary.iter().map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), *s));
        Some(Box::new(std::iter::once(primary).chain(rest)))
    }
}

/// How diagnostics are drawn: colour for terminals, plain and fixed-width for goldens.
#[derive(Debug, Clone, Copy)]
pub struct RenderStyle {
    pub color: bool,
    pub width: usize,
}

impl RenderStyle {
    /// The style golden files are written in: no colour, 100 columns.
    pub const PLAIN: RenderStyle = RenderStyle { color: false, width: 100 };
}

/// Render every diagnostic against `source` (named `name`), followed by a summary line.
pub fn render(diags: &Diagnostics, name: &str, source: &str, style: RenderStyle) -> String {
    let named = NamedSource::new(name, Arc::new(source.to_string()));
    let theme = if style.color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(style.width);
    let mut out = String::new();
    for d in diags.items() {
        let located = Located { diag: d, source: &named };
        // Rendering into a String cannot fail; a failure here would be a miette bug.
        let _ = handler.render_report(&mut out, &located);
        out.push('\n');
    }
    let (e, w) = (diags.error_count(), diags.warning_count());
    out.push_str(&format!("{name}: {e} error{}, {w} warning{}\n", plural(e), plural(w)));
    out
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
