//! Pass 1: KDL text → a typed syntax tree that keeps every span.
//!
//! This pass knows the shape of the language (which nodes, properties, argument counts
//! and value types exist where) and nothing of its meaning: addresses are still strings
//! here. Unknown names are reported with the nearest known one.

use std::marker::PhantomData;

use kdl::KdlDocument;
use miette::SourceSpan;

use crate::kdl_fast::{EntryView, NodeView, ValueRef};

use crate::diag::{Code, Diag, Diagnostics};

/// A value with the place in the fabric file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S<T> {
    pub v: T,
    pub span: SourceSpan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSrc {
    Literal(String),
    Env(String),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAst {
    pub src: SecretSrc,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct FabricAst {
    pub name: Option<S<String>>,
    pub span: SourceSpan,
    pub ztp_server: Option<ZtpServerAst>,
    pub controller: Option<ControllerAst>,
    pub dhcp: Option<DhcpAst>,
    pub defaults: Option<SettingsAst>,
    pub platforms: Vec<(S<String>, SettingsAst)>,
    pub models: Vec<(S<String>, SettingsAst)>,
    pub devices: Vec<DeviceAst>,
}

#[derive(Debug, Clone)]
pub struct ZtpServerAst {
    pub address: Option<S<String>>,
    pub http_port: Option<S<i128>>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct ControllerAst {
    pub url: Option<S<String>>,
    pub user: Option<S<String>>,
    pub password: Option<SecretAst>,
    pub ca_cert: Option<S<String>>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone, Default)]
pub struct DhcpOptsAst {
    pub domain_name: Option<S<String>>,
    pub domain_search: Option<Vec<S<String>>>,
    pub dns: Option<Vec<S<String>>>,
    pub ntp: Option<Vec<S<String>>>,
}

#[derive(Debug, Clone)]
pub struct DhcpAst {
    pub span: SourceSpan,
    pub options: DhcpOptsAst,
    pub lease_time: Option<S<i128>>,
    pub max_lease_time: Option<S<i128>>,
    pub interfaces: Option<Vec<S<String>>>,
    pub subnets: Vec<SubnetAst>,
}

#[derive(Debug, Clone)]
pub struct SubnetAst {
    pub cidr: Option<S<String>>,
    pub router: Option<S<String>>,
    pub pools: Vec<PoolAst>,
    pub options: DhcpOptsAst,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct PoolAst {
    pub first: S<String>,
    pub last: S<String>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone, Default)]
pub struct SettingsAst {
    pub root_password: Option<SecretAst>,
    pub device_user: Option<S<String>>,
    pub device_user_password: Option<SecretAst>,
    pub agent: Option<AgentAst>,
    pub custom_config: Option<S<String>>,
    pub versions: Option<Vec<S<String>>>,
    pub image: Option<ImageAst>,
    pub dual_routing_engine: Option<S<bool>>,
}

#[derive(Debug, Clone)]
pub struct AgentAst {
    pub agent_type: Option<S<String>>,
    pub install_requirements: Option<S<bool>>,
    pub job_on_create: Option<S<String>>,
    pub operation_mode: Option<S<String>>,
}

#[derive(Debug, Clone)]
pub struct ImageAst {
    pub source: S<String>,
    pub sha256: Option<S<String>>,
}

#[derive(Debug, Clone)]
pub struct LocationAst {
    pub remote_id: Option<S<String>>,
    pub circuit_id: Option<S<String>>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct DeviceAst {
    pub name: Option<S<String>>,
    pub platform: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub serial: Option<S<String>>,
    pub address: Option<S<String>>,
    pub model: Option<S<String>>,
    pub location: Option<LocationAst>,
    pub settings: SettingsAst,
    pub span: SourceSpan,
}

const FABRIC_CHILDREN: &[&str] =
    &["ztp-server", "controller", "dhcp", "defaults", "platform", "model", "device"];
const SETTINGS: &[&str] =
    &["root-password", "device-user", "agent", "custom-config", "versions", "image", "dual-routing-engine"];
const DHCP_OPTIONS: &[&str] = &["domain-name", "domain-search", "dns", "ntp"];

/// Parse KDL text into the syntax tree, pushing every problem into `diags`.
pub fn parse(text: &str, diags: &mut Diagnostics) -> Option<FabricAst> {
    if let Some(doc) = crate::kdl_fast::parse(text) {
        return walk(doc.nodes(), diags);
    }
    let doc = match KdlDocument::parse_v2(text) {
        Ok(doc) => doc,
        Err(e) => {
            for d in e.diagnostics {
                let msg = d.message.unwrap_or_else(|| "invalid KDL".into());
                let mut diag = Diag::error(Code::KdlSyntax, d.span, format!("KDL syntax: {msg}"))
                    .label(d.label.unwrap_or_else(|| "here".into()));
                if let Some(h) = d.help {
                    diag = diag.help(h);
                }
                diags.push(diag);
            }
            return None;
        }
    };
    walk(doc.nodes().iter(), diags)
}

/// Walk the top-level nodes of either tree (the fast path's, or kdl's).
fn walk<'t, N: NodeView<'t>>(nodes: impl Iterator<Item = N>, diags: &mut Diagnostics) -> Option<FabricAst> {
    let mut w = Walker { diags, tree: PhantomData };
    let mut fabric: Option<FabricAst> = None;
    for node in nodes {
        let name = node.name();
        if name != "fabric" {
            w.unknown_node(node, &["fabric"], "the top level");
            continue;
        }
        if let Some(first) = &fabric {
            w.duplicate(node, first.span);
            continue;
        }
        fabric = Some(w.fabric(node));
    }
    if fabric.is_none() && !w.diags.has_errors() {
        w.diags.push(
            Diag::error(Code::MissingNode, SourceSpan::from(0..0), "no `fabric` node")
                .help("a fabric file holds exactly one `fabric \"NAME\" { ... }` node"),
        );
    }
    fabric
}

/// Reads nodes of type `N` (see [`NodeView`]).
struct Walker<'d, 't, N> {
    diags: &'d mut Diagnostics,
    tree: PhantomData<fn(&'t ()) -> N>,
}

fn is_arg<'t>(e: &impl EntryView<'t>) -> bool {
    e.name().is_none()
}

/// The positional arguments of a node: found again on each use rather than collected,
/// to allocate nothing.
#[derive(Clone, Copy)]
struct Args<N> {
    node: N,
    len: usize,
}

impl<'t, N: NodeView<'t>> Args<N> {
    fn iter(self) -> impl Iterator<Item = N::Entry> {
        self.node.entries().filter(is_arg)
    }

    fn first(self) -> Option<N::Entry> {
        self.iter().next()
    }
}

/// The children of `node` that are in `known` or `extra` (the others are reported by
/// `Walker::unknown_children`), in order.
fn known_children<'t, N: NodeView<'t>>(node: N, known: &[&str], extra: &[&str]) -> impl Iterator<Item = N> {
    node.children().into_iter().flat_map(|(nodes, _)| nodes).filter(move |c| {
        let name = c.name();
        known.contains(&name) || extra.contains(&name)
    })
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
pub(crate) fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

impl<'t, N: NodeView<'t>> Walker<'_, 't, N> {
    fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    fn unknown_node(&mut self, node: N, known: &[&str], place: &str) {
        let name = node.name();
        let mut d =
            Diag::error(Code::UnknownNode, node.name_span(), format!("unknown node `{name}` in {place}"))
                .label("not known here");
        d = match nearest(name, known) {
            Some(k) => d.help(format!("did you mean `{k}`?")),
            None => d.help(format!("known here: {}", known.join(", "))),
        };
        self.push(d);
    }

    fn duplicate(&mut self, node: N, first: SourceSpan) {
        let name = node.name();
        self.push(
            Diag::error(Code::DuplicateNode, node.name_span(), format!("`{name}` is given twice"))
                .label("second one")
                .also(first, "first one here")
                .help(format!("keep one `{name}`")),
        );
    }

    /// Check the node's properties against `allowed`; report unknown ones.
    fn props(&mut self, node: N, allowed: &[&str]) {
        for (i, e) in node.entries().enumerate() {
            let Some((key, _)) = e.name() else { continue };
            if !allowed.contains(&key) {
                let mut d = Diag::error(
                    Code::UnknownProperty,
                    e.span(),
                    format!("unknown property `{key}` on `{}`", node.name()),
                )
                .label("not known here");
                d = match nearest(key, allowed) {
                    Some(k) => d.help(format!("did you mean `{k}`?")),
                    None if allowed.is_empty() => d.help(format!("`{}` takes no properties", node.name())),
                    None => d.help(format!("known properties: {}", allowed.join(", "))),
                };
                self.push(d);
            } else if let Some(first) =
                node.entries().take(i).find(|f| f.name().is_some_and(|(k, _)| k == key))
            {
                // The first entry with this (allowed) key; looked up again rather than
                // remembered, to allocate nothing.
                self.push(
                    Diag::error(Code::DuplicateNode, e.span(), format!("property `{key}` is given twice"))
                        .label("second one")
                        .also(first.span(), "first one here"),
                );
            }
        }
    }

    fn prop(&self, node: N, key: &str) -> Option<N::Entry> {
        node.entries().find(|e| e.name().is_some_and(|(n, _)| n == key))
    }

    /// Positional arguments, with an arity check: between `min` and `max` (None = any).
    fn args(&mut self, node: N, min: usize, max: Option<usize>, what: &str) -> Args<N> {
        let args = Args { node, len: node.entries().filter(is_arg).count() };
        let name = node.name();
        if args.len < min {
            let want = match max {
                Some(m) if m == min => format!("{min}"),
                _ => format!("at least {min}"),
            };
            self.push(
                Diag::error(
                    Code::WrongArity,
                    node.name_span(),
                    format!(
                        "`{name}` needs {want} argument{} ({what}), found {}",
                        crate::diag::plural(min),
                        args.len
                    ),
                )
                .label("missing argument"),
            );
        } else if let Some(m) = max.filter(|m| args.len > *m) {
            for extra in args.iter().skip(m) {
                self.push(
                    Diag::error(
                        Code::WrongArity,
                        extra.span(),
                        format!(
                            "`{name}` takes {m} argument{} ({what}), found {}",
                            crate::diag::plural(m),
                            args.len
                        ),
                    )
                    .label("extra argument"),
                );
            }
        }
        args
    }

    fn leaf(&mut self, node: N) {
        if let Some((_, span)) = node.children() {
            self.push(
                Diag::error(
                    Code::UnexpectedChildren,
                    span,
                    format!("`{}` takes no children block", node.name()),
                )
                .label("unexpected block"),
            );
        }
    }

    fn no_annotation(&mut self, e: N::Entry) -> bool {
        if let Some((ty, _)) = e.ty() {
            self.push(
                Diag::error(
                    Code::WrongType,
                    e.span(),
                    format!("type annotation `({ty})` is not allowed here"),
                )
                .label("unexpected annotation")
                .help("only secrets take `(env)` or `(file)`"),
            );
            return false;
        }
        true
    }

    fn string(&mut self, e: N::Entry, what: &str) -> Option<S<String>> {
        if !self.no_annotation(e) {
            return None;
        }
        match e.value() {
            ValueRef::String(s) => Some(S { v: s.to_owned(), span: e.span() }),
            other => {
                self.type_error(e, what, "a string", other);
                None
            }
        }
    }

    fn int(&mut self, e: N::Entry, what: &str) -> Option<S<i128>> {
        if !self.no_annotation(e) {
            return None;
        }
        match e.value() {
            ValueRef::Integer(i) => Some(S { v: i, span: e.span() }),
            other => {
                self.type_error(e, what, "an integer", other);
                None
            }
        }
    }

    fn boolean(&mut self, e: N::Entry, what: &str) -> Option<S<bool>> {
        if !self.no_annotation(e) {
            return None;
        }
        match e.value() {
            ValueRef::Bool(b) => Some(S { v: b, span: e.span() }),
            other => {
                let mut d = type_diag(e, what, "a boolean", other);
                if let ValueRef::String(s) = other
                    && (s == "true" || s == "false")
                {
                    d = d.help(format!("KDL 2 booleans are written `#{s}`"));
                }
                self.push(d);
                None
            }
        }
    }

    fn type_error(&mut self, e: N::Entry, what: &str, want: &str, got: ValueRef<'_>) {
        self.push(type_diag(e, what, want, got));
    }

    fn secret(&mut self, e: N::Entry, what: &str) -> Option<SecretAst> {
        let ValueRef::String(s) = e.value() else {
            self.type_error(e, what, "a string, `(env)\"VAR\"` or `(file)\"path\"`", e.value());
            return None;
        };
        let src = match e.ty().map(|(t, _)| t) {
            None => SecretSrc::Literal(s.to_owned()),
            Some("env") => SecretSrc::Env(s.to_owned()),
            Some("file") => SecretSrc::File(s.to_owned()),
            Some(other) => {
                self.push(
                    Diag::error(Code::WrongType, e.span(), format!("unknown secret source `({other})`"))
                        .label("not `(env)` or `(file)`")
                        .help("write `(env)\"VAR\"` to read an environment variable or `(file)\"path\"` to read a file"),
                );
                return None;
            }
        };
        Some(SecretAst { src, span: e.span() })
    }

    fn strings(&mut self, node: N, min: usize, what: &str) -> Vec<S<String>> {
        self.props(node, &[]);
        self.leaf(node);
        let args = self.args(node, min, None, what);
        args.iter().filter_map(|e| self.string(e, what)).collect()
    }

    fn one_string(&mut self, node: N, what: &str) -> Option<S<String>> {
        self.props(node, &[]);
        self.leaf(node);
        let args = self.args(node, 1, Some(1), what);
        args.first().and_then(|e| self.string(e, what))
    }

    /// Report the children of `node` that are neither in `known` nor in `extra`; then
    /// iterate the others with [`known_children`].
    fn unknown_children(&mut self, node: N, known: &[&str], extra: &[&str]) {
        let Some((nodes, _)) = node.children() else { return };
        for child in nodes {
            let name = child.name();
            if !known.contains(&name) && !extra.contains(&name) {
                let all: Vec<&str> = known.iter().chain(extra).copied().collect();
                self.unknown_node(child, &all, &format!("`{}`", node.name()));
            }
        }
    }

    /// Store `value` in a once-only slot, reporting a duplicate node otherwise.
    fn once<T>(&mut self, slot: &mut Option<T>, first: &mut Option<SourceSpan>, node: N, value: Option<T>) {
        if let Some(f) = *first {
            self.duplicate(node, f);
            return;
        }
        *first = Some(node.name_span());
        *slot = value;
    }

    fn fabric(&mut self, node: N) -> FabricAst {
        self.props(node, &[]);
        let args = self.args(node, 1, Some(1), "the fabric's name");
        let mut f = FabricAst {
            name: args.first().and_then(|e| self.string(e, "fabric name")),
            span: node.span(),
            ztp_server: None,
            controller: None,
            dhcp: None,
            defaults: None,
            platforms: Vec::new(),
            models: Vec::new(),
            devices: Vec::new(),
        };
        let mut firsts: [Option<SourceSpan>; 4] = [None; 4];
        let mut platform_firsts: Vec<(String, SourceSpan)> = Vec::new();
        let mut model_firsts: Vec<(String, SourceSpan)> = Vec::new();
        self.unknown_children(node, FABRIC_CHILDREN, &[]);
        let devices = known_children(node, &["device"], &[]).count();
        f.devices.reserve_exact(devices);
        for child in known_children(node, FABRIC_CHILDREN, &[]) {
            match child.name() {
                "ztp-server" => {
                    let v = self.ztp_server(child);
                    self.once(&mut f.ztp_server, &mut firsts[0], child, Some(v));
                }
                "controller" => {
                    let v = self.controller(child);
                    self.once(&mut f.controller, &mut firsts[1], child, Some(v));
                }
                "dhcp" => {
                    let v = self.dhcp(child);
                    self.once(&mut f.dhcp, &mut firsts[2], child, Some(v));
                }
                "defaults" => {
                    self.props(child, &[]);
                    self.args(child, 0, Some(0), "none");
                    let v = self.settings(child, &[]);
                    self.once(&mut f.defaults, &mut firsts[3], child, Some(v));
                }
                kind @ ("platform" | "model") => {
                    self.props(child, &[]);
                    let args = self.args(child, 1, Some(1), "its name");
                    let name = args.first().and_then(|e| self.string(e, "name"));
                    let settings = self.settings(child, &[]);
                    let Some(name) = name else { continue };
                    let (list, firsts) = if kind == "platform" {
                        (&mut f.platforms, &mut platform_firsts)
                    } else {
                        (&mut f.models, &mut model_firsts)
                    };
                    if let Some((_, first)) = firsts.iter().find(|(n, _)| *n == name.v) {
                        let first = *first;
                        self.push(
                            Diag::error(
                                Code::DuplicateNode,
                                name.span,
                                format!("{kind} `{}` is given twice", name.v),
                            )
                            .label("second one")
                            .also(first, "first one here")
                            .help(format!("merge the two `{kind}` blocks")),
                        );
                        continue;
                    }
                    firsts.push((name.v.clone(), name.span));
                    list.push((name, settings));
                }
                "device" => {
                    let d = self.device(child);
                    f.devices.push(d);
                }
                _ => {}
            }
        }
        if f.ztp_server.is_none() {
            self.missing(
                node,
                "ztp-server",
                "add `ztp-server \"ADDR\"`: the address devices use to reach this server",
            );
        }
        if f.dhcp.is_none() {
            self.missing(node, "dhcp", "add a `dhcp { subnet \"CIDR\" { ... } }` block");
        }
        f
    }

    fn missing(&mut self, parent: N, what: &str, help: &str) {
        self.push(
            Diag::error(
                Code::MissingNode,
                parent.name_span(),
                format!("`{}` has no `{what}`", parent.name()),
            )
            .label(format!("`{what}` missing in here"))
            .help(help.to_string()),
        );
    }

    fn ztp_server(&mut self, node: N) -> ZtpServerAst {
        self.props(node, &["http-port"]);
        self.leaf(node);
        let args = self.args(node, 1, Some(1), "the server's IPv4 address");
        let address = args.first().and_then(|e| self.string(e, "address"));
        let http_port = self.prop(node, "http-port").and_then(|e| self.int(e, "http-port"));
        ZtpServerAst { address, http_port, span: node.span() }
    }

    fn controller(&mut self, node: N) -> ControllerAst {
        self.props(node, &[]);
        let args = self.args(node, 1, Some(1), "the controller's URL");
        let url = args.first().and_then(|e| self.string(e, "URL"));
        let mut c = ControllerAst { url, user: None, password: None, ca_cert: None, span: node.span() };
        let mut firsts: [Option<SourceSpan>; 3] = [None; 3];
        let known = ["user", "password", "ca-cert"];
        self.unknown_children(node, &known, &[]);
        for child in known_children(node, &known, &[]) {
            match child.name() {
                "user" => {
                    let v = self.one_string(child, "user name");
                    self.once(&mut c.user, &mut firsts[0], child, v);
                }
                "password" => {
                    self.props(child, &[]);
                    self.leaf(child);
                    let args = self.args(child, 1, Some(1), "a secret");
                    let v = args.first().and_then(|e| self.secret(e, "password"));
                    self.once(&mut c.password, &mut firsts[1], child, v);
                }
                "ca-cert" => {
                    let v = self.one_string(child, "path to a PEM file");
                    self.once(&mut c.ca_cert, &mut firsts[2], child, v);
                }
                _ => {}
            }
        }
        if c.user.is_none() {
            self.missing(node, "user", "add `user \"NAME\"`: a controller user with the device_ztp role");
        }
        if c.password.is_none() {
            self.missing(node, "password", "add `password (env)\"VAR\"`");
        }
        c
    }

    /// The four option nodes shared by `dhcp` and `subnet`; returns true if `child` was one.
    fn dhcp_option(&mut self, child: N, o: &mut DhcpOptsAst, firsts: &mut [Option<SourceSpan>; 4]) -> bool {
        match child.name() {
            "domain-name" => {
                let v = self.one_string(child, "a domain name");
                self.once(&mut o.domain_name, &mut firsts[0], child, v);
            }
            "domain-search" => {
                let v = self.strings(child, 1, "domain names");
                self.once(&mut o.domain_search, &mut firsts[1], child, Some(v));
            }
            "dns" => {
                let v = self.strings(child, 1, "IPv4 addresses");
                self.once(&mut o.dns, &mut firsts[2], child, Some(v));
            }
            "ntp" => {
                let v = self.strings(child, 1, "IPv4 addresses");
                self.once(&mut o.ntp, &mut firsts[3], child, Some(v));
            }
            _ => return false,
        }
        true
    }

    fn dhcp(&mut self, node: N) -> DhcpAst {
        self.props(node, &[]);
        self.args(node, 0, Some(0), "none");
        let mut d = DhcpAst {
            span: node.span(),
            options: DhcpOptsAst::default(),
            lease_time: None,
            max_lease_time: None,
            interfaces: None,
            subnets: Vec::new(),
        };
        let mut opt_firsts = [None; 4];
        let mut firsts: [Option<SourceSpan>; 2] = [None; 2];
        let extra = ["lease-time", "interfaces", "subnet"];
        self.unknown_children(node, DHCP_OPTIONS, &extra);
        for child in known_children(node, DHCP_OPTIONS, &extra) {
            if self.dhcp_option(child, &mut d.options, &mut opt_firsts) {
                continue;
            }
            match child.name() {
                "lease-time" => {
                    self.props(child, &["max"]);
                    self.leaf(child);
                    let args = self.args(child, 1, Some(1), "seconds");
                    let v = args.first().and_then(|e| self.int(e, "lease time"));
                    let max = self.prop(child, "max").and_then(|e| self.int(e, "max lease time"));
                    if firsts[0].is_none() {
                        d.max_lease_time = max;
                    }
                    self.once(&mut d.lease_time, &mut firsts[0], child, v);
                }
                "interfaces" => {
                    let v = self.strings(child, 1, "interface names");
                    self.once(&mut d.interfaces, &mut firsts[1], child, Some(v));
                }
                "subnet" => {
                    let s = self.subnet(child);
                    d.subnets.push(s);
                }
                _ => {}
            }
        }
        if d.subnets.is_empty() {
            self.missing(
                node,
                "subnet",
                "add `subnet \"CIDR\" { router \"ADDR\"; pool \"FIRST\" \"LAST\" }`",
            );
        }
        d
    }

    fn subnet(&mut self, node: N) -> SubnetAst {
        self.props(node, &[]);
        let args = self.args(node, 1, Some(1), "the subnet in CIDR form");
        let cidr = args.first().and_then(|e| self.string(e, "CIDR"));
        let mut s = SubnetAst {
            cidr,
            router: None,
            pools: Vec::new(),
            options: DhcpOptsAst::default(),
            span: node.span(),
        };
        let mut opt_firsts = [None; 4];
        let mut router_first = None;
        let extra = ["router", "pool"];
        self.unknown_children(node, DHCP_OPTIONS, &extra);
        for child in known_children(node, DHCP_OPTIONS, &extra) {
            if self.dhcp_option(child, &mut s.options, &mut opt_firsts) {
                continue;
            }
            match child.name() {
                "router" => {
                    let v = self.one_string(child, "the router's IPv4 address");
                    self.once(&mut s.router, &mut router_first, child, v);
                }
                "pool" => {
                    self.props(child, &[]);
                    self.leaf(child);
                    let args = self.args(child, 2, Some(2), "first and last address");
                    let mut it = args.iter();
                    if let (2, Some(first), Some(last)) = (args.len, it.next(), it.next()) {
                        let first = self.string(first, "first address");
                        let last = self.string(last, "last address");
                        if let (Some(first), Some(last)) = (first, last) {
                            s.pools.push(PoolAst { first, last, span: child.span() });
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// Settings children of `node`; node-specific children in `extra` are left for the
    /// caller to handle (with [`known_children`]), any other child is reported.
    fn settings(&mut self, node: N, extra: &[&str]) -> SettingsAst {
        let mut st = SettingsAst::default();
        self.unknown_children(node, SETTINGS, extra);
        let mut firsts: [Option<SourceSpan>; 7] = [None; 7];
        for child in known_children(node, SETTINGS, &[]) {
            match child.name() {
                "root-password" => {
                    self.props(child, &[]);
                    self.leaf(child);
                    let args = self.args(child, 1, Some(1), "a secret");
                    let v = args.first().and_then(|e| self.secret(e, "root password"));
                    self.once(&mut st.root_password, &mut firsts[0], child, v);
                }
                "device-user" => {
                    self.props(child, &["password"]);
                    self.leaf(child);
                    let args = self.args(child, 1, Some(1), "the user name");
                    let name = args.first().and_then(|e| self.string(e, "user name"));
                    let pw = self.prop(child, "password").and_then(|e| self.secret(e, "password"));
                    if firsts[1].is_none() {
                        st.device_user_password = pw;
                    }
                    self.once(&mut st.device_user, &mut firsts[1], child, name);
                }
                "agent" => {
                    self.props(child, &["install-requirements", "job-on-create", "operation-mode"]);
                    self.leaf(child);
                    let args = self.args(child, 0, Some(1), "onbox or offbox");
                    let agent_type = args.first().and_then(|e| self.string(e, "agent type"));
                    let a = AgentAst {
                        agent_type,
                        install_requirements: self
                            .prop(child, "install-requirements")
                            .and_then(|e| self.boolean(e, "install-requirements")),
                        job_on_create: self
                            .prop(child, "job-on-create")
                            .and_then(|e| self.string(e, "job-on-create")),
                        operation_mode: self
                            .prop(child, "operation-mode")
                            .and_then(|e| self.string(e, "operation-mode")),
                    };
                    self.once(&mut st.agent, &mut firsts[2], child, Some(a));
                }
                "custom-config" => {
                    let v = self.one_string(child, "a path or URL");
                    self.once(&mut st.custom_config, &mut firsts[3], child, v);
                }
                "versions" => {
                    let v = self.strings(child, 0, "NOS versions");
                    self.once(&mut st.versions, &mut firsts[4], child, Some(v));
                }
                "image" => {
                    self.props(child, &["sha256"]);
                    self.leaf(child);
                    let args = self.args(child, 1, Some(1), "a path or URL");
                    let source = args.first().and_then(|e| self.string(e, "image path or URL"));
                    let sha256 = self.prop(child, "sha256").and_then(|e| self.string(e, "sha256"));
                    let v = source.map(|source| ImageAst { source, sha256 });
                    self.once(&mut st.image, &mut firsts[5], child, v);
                }
                "dual-routing-engine" => {
                    self.props(child, &[]);
                    self.leaf(child);
                    let args = self.args(child, 1, Some(1), "#true or #false");
                    let v = args.first().and_then(|e| self.boolean(e, "dual-routing-engine"));
                    self.once(&mut st.dual_routing_engine, &mut firsts[6], child, v);
                }
                _ => {}
            }
        }
        st
    }

    fn device(&mut self, node: N) -> DeviceAst {
        self.props(node, &["platform"]);
        let args = self.args(node, 1, Some(1), "the device's host name");
        let name = args.first().and_then(|e| self.string(e, "device name"));
        let platform = self.prop(node, "platform").and_then(|e| self.string(e, "platform"));
        if self.prop(node, "platform").is_none() {
            self.push(
                Diag::error(Code::MissingNode, node.name_span(), "device has no `platform=`")
                    .label("platform missing")
                    .help("add `platform=\"junos\"` (or junos-evo, eos, nxos, sonic, cumulus)"),
            );
        }
        let extra = ["mac", "serial", "address", "model", "location"];
        let settings = self.settings(node, &extra);
        let mut d = DeviceAst {
            name,
            platform,
            mac: None,
            serial: None,
            address: None,
            model: None,
            location: None,
            settings,
            span: node.span(),
        };
        let mut firsts: [Option<SourceSpan>; 5] = [None; 5];
        for child in known_children(node, &extra, &[]) {
            match child.name() {
                "mac" => {
                    let v = self.one_string(child, "a MAC address");
                    self.once(&mut d.mac, &mut firsts[0], child, v);
                }
                "serial" => {
                    let v = self.one_string(child, "a serial number");
                    self.once(&mut d.serial, &mut firsts[1], child, v);
                }
                "address" => {
                    let v = self.one_string(child, "an IPv4 address");
                    self.once(&mut d.address, &mut firsts[2], child, v);
                }
                "model" => {
                    let v = self.one_string(child, "a hardware model");
                    self.once(&mut d.model, &mut firsts[3], child, v);
                }
                "location" => {
                    self.props(child, &["remote-id", "circuit-id"]);
                    self.leaf(child);
                    self.args(child, 0, Some(0), "none; use remote-id= and circuit-id=");
                    let remote_id = self.prop(child, "remote-id").and_then(|e| self.string(e, "remote-id"));
                    let circuit_id =
                        self.prop(child, "circuit-id").and_then(|e| self.string(e, "circuit-id"));
                    if self.prop(child, "circuit-id").is_none() {
                        self.push(
                            Diag::error(
                                Code::MissingNode,
                                child.name_span(),
                                "`location` has no `circuit-id=`",
                            )
                            .label("circuit-id missing")
                            .help("add `circuit-id=\"PORT\"`: the relay port the device is cabled to"),
                        );
                    }
                    let v = LocationAst { remote_id, circuit_id, span: child.span() };
                    self.once(&mut d.location, &mut firsts[4], child, Some(v));
                }
                _ => {}
            }
        }
        d
    }
}

fn type_diag<'t>(e: impl EntryView<'t>, what: &str, want: &str, got: ValueRef<'_>) -> Diag {
    let got = match got {
        ValueRef::String(_) => "a string",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Float(_) => "a number",
        ValueRef::Bool(_) => "a boolean",
        ValueRef::Null => "#null",
    };
    Diag::error(Code::WrongType, e.span(), format!("{what} must be {want}, found {got}"))
        .label(format!("expected {want}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<Code> {
        let mut d = Diagnostics::default();
        parse(text, &mut d);
        d.items().iter().map(|d| d.code).collect()
    }

    #[test]
    fn nearest_finds_typos() {
        assert_eq!(nearest("subnett", &["subnet", "pool"]), Some("subnet"));
        assert_eq!(nearest("http-prot", &["http-port"]), Some("http-port"));
        assert_eq!(nearest("zzzzzz", &["subnet"]), None);
    }

    #[test]
    fn minimal_fabric_parses_clean() {
        let text =
            r#"fabric "x" { ztp-server "10.0.0.2"; dhcp { subnet "10.0.0.0/24" { router "10.0.0.1" } } }"#;
        assert_eq!(codes(text), vec![]);
    }

    #[test]
    fn reports_every_shape_problem_at_once() {
        let text = r#"fabric "x" {
            ztp-server "10.0.0.2" http-prot=80
            dhcp { lease-time "long"; subnett "10.0.0.0/24"; subnet "10.0.0.0/24" { pool "10.0.0.9" } }
            device "a" platform="eos" { dual-routing-engine "true" }
        }"#;
        let c = codes(text);
        for want in [Code::UnknownProperty, Code::WrongType, Code::UnknownNode, Code::WrongArity] {
            assert!(c.contains(&want), "{want:?} missing from {c:?}");
        }
    }

    #[test]
    fn secrets_take_env_and_file() {
        let text = r#"fabric "x" { ztp-server "10.0.0.2"; dhcp { subnet "10.0.0.0/24" }
            defaults { root-password (env)"A"; device-user "u" password=(file)"p" }
            platform "eos" { root-password (vault)"x" } }"#;
        let mut d = Diagnostics::default();
        let f = parse(text, &mut d).unwrap();
        let defaults = f.defaults.unwrap();
        assert_eq!(defaults.root_password.unwrap().src, SecretSrc::Env("A".into()));
        assert_eq!(defaults.device_user_password.unwrap().src, SecretSrc::File("p".into()));
        assert_eq!(d.items().len(), 1);
        assert_eq!(d.items()[0].code, Code::WrongType);
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert_eq!(codes("fabric \"x"), vec![Code::KdlSyntax]);
    }
}
