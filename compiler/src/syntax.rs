//! Pass 1: KDL text → a typed syntax tree that keeps every span.
//!
//! This pass knows the shape of the language (which nodes, properties, argument counts
//! and value types exist where) and nothing of its meaning: addresses are still strings
//! here. Unknown names are reported with the nearest known one.

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

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
    let doc = match crate::kdl_fast::parse(text).map_or_else(|| KdlDocument::parse_v2(text), Ok) {
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
    let mut w = Walker { diags };
    let mut fabric: Option<FabricAst> = None;
    for node in doc.nodes() {
        let name = node.name().value();
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

struct Walker<'d> {
    diags: &'d mut Diagnostics,
}

fn name_span(node: &KdlNode) -> SourceSpan {
    node.name().span()
}

fn is_arg(e: &KdlEntry) -> bool {
    e.name().is_none()
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

impl Walker<'_> {
    fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    fn unknown_node(&mut self, node: &KdlNode, known: &[&str], place: &str) {
        let name = node.name().value();
        let mut d =
            Diag::error(Code::UnknownNode, name_span(node), format!("unknown node `{name}` in {place}"))
                .label("not known here");
        d = match nearest(name, known) {
            Some(k) => d.help(format!("did you mean `{k}`?")),
            None => d.help(format!("known here: {}", known.join(", "))),
        };
        self.push(d);
    }

    fn duplicate(&mut self, node: &KdlNode, first: SourceSpan) {
        let name = node.name().value();
        self.push(
            Diag::error(Code::DuplicateNode, name_span(node), format!("`{name}` is given twice"))
                .label("second one")
                .also(first, "first one here")
                .help(format!("keep one `{name}`")),
        );
    }

    /// Check the node's properties against `allowed`; report unknown ones.
    fn props(&mut self, node: &KdlNode, allowed: &[&str]) {
        let mut seen: Vec<(&str, SourceSpan)> = Vec::new();
        for e in node.entries() {
            let Some(id) = e.name() else { continue };
            let key = id.value();
            if !allowed.contains(&key) {
                let mut d = Diag::error(
                    Code::UnknownProperty,
                    e.span(),
                    format!("unknown property `{key}` on `{}`", node.name().value()),
                )
                .label("not known here");
                d = match nearest(key, allowed) {
                    Some(k) => d.help(format!("did you mean `{k}`?")),
                    None if allowed.is_empty() => {
                        d.help(format!("`{}` takes no properties", node.name().value()))
                    }
                    None => d.help(format!("known properties: {}", allowed.join(", "))),
                };
                self.push(d);
            } else if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                self.push(
                    Diag::error(Code::DuplicateNode, e.span(), format!("property `{key}` is given twice"))
                        .label("second one")
                        .also(*first, "first one here"),
                );
            } else {
                seen.push((key, e.span()));
            }
        }
    }

    fn prop<'a>(&self, node: &'a KdlNode, key: &str) -> Option<&'a KdlEntry> {
        node.entries().iter().find(|e| e.name().is_some_and(|n| n.value() == key))
    }

    /// Positional arguments, with an arity check: between `min` and `max` (None = any).
    fn args<'a>(
        &mut self,
        node: &'a KdlNode,
        min: usize,
        max: Option<usize>,
        what: &str,
    ) -> Vec<&'a KdlEntry> {
        let args: Vec<&KdlEntry> = node.entries().iter().filter(|e| is_arg(e)).collect();
        let name = node.name().value();
        if args.len() < min {
            let want = match max {
                Some(m) if m == min => format!("{min}"),
                _ => format!("at least {min}"),
            };
            self.push(
                Diag::error(
                    Code::WrongArity,
                    name_span(node),
                    format!(
                        "`{name}` needs {want} argument{} ({what}), found {}",
                        crate::diag::plural(min),
                        args.len()
                    ),
                )
                .label("missing argument"),
            );
        } else if let Some(m) = max.filter(|m| args.len() > *m) {
            for extra in &args[m..] {
                self.push(
                    Diag::error(
                        Code::WrongArity,
                        extra.span(),
                        format!(
                            "`{name}` takes {m} argument{} ({what}), found {}",
                            crate::diag::plural(m),
                            args.len()
                        ),
                    )
                    .label("extra argument"),
                );
            }
        }
        args
    }

    fn leaf(&mut self, node: &KdlNode) {
        if let Some(ch) = node.children() {
            self.push(
                Diag::error(
                    Code::UnexpectedChildren,
                    ch.span(),
                    format!("`{}` takes no children block", node.name().value()),
                )
                .label("unexpected block"),
            );
        }
    }

    fn no_annotation(&mut self, e: &KdlEntry) -> bool {
        if let Some(ty) = e.ty() {
            self.push(
                Diag::error(
                    Code::WrongType,
                    e.span(),
                    format!("type annotation `({})` is not allowed here", ty.value()),
                )
                .label("unexpected annotation")
                .help("only secrets take `(env)` or `(file)`"),
            );
            return false;
        }
        true
    }

    fn string(&mut self, e: &KdlEntry, what: &str) -> Option<S<String>> {
        if !self.no_annotation(e) {
            return None;
        }
        match e.value() {
            KdlValue::String(s) => Some(S { v: s.clone(), span: e.span() }),
            other => {
                self.type_error(e, what, "a string", other);
                None
            }
        }
    }

    fn int(&mut self, e: &KdlEntry, what: &str) -> Option<S<i128>> {
        if !self.no_annotation(e) {
            return None;
        }
        match e.value() {
            KdlValue::Integer(i) => Some(S { v: *i, span: e.span() }),
            other => {
                self.type_error(e, what, "an integer", other);
                None
            }
        }
    }

    fn boolean(&mut self, e: &KdlEntry, what: &str) -> Option<S<bool>> {
        if !self.no_annotation(e) {
            return None;
        }
        match e.value() {
            KdlValue::Bool(b) => Some(S { v: *b, span: e.span() }),
            other => {
                let mut d = type_diag(e, what, "a boolean", other);
                if let KdlValue::String(s) = other
                    && (s == "true" || s == "false")
                {
                    d = d.help(format!("KDL 2 booleans are written `#{s}`"));
                }
                self.push(d);
                None
            }
        }
    }

    fn type_error(&mut self, e: &KdlEntry, what: &str, want: &str, got: &KdlValue) {
        self.push(type_diag(e, what, want, got));
    }

    fn secret(&mut self, e: &KdlEntry, what: &str) -> Option<SecretAst> {
        let KdlValue::String(s) = e.value() else {
            self.type_error(e, what, "a string, `(env)\"VAR\"` or `(file)\"path\"`", e.value());
            return None;
        };
        let src = match e.ty().map(|t| t.value()) {
            None => SecretSrc::Literal(s.clone()),
            Some("env") => SecretSrc::Env(s.clone()),
            Some("file") => SecretSrc::File(s.clone()),
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

    fn strings(&mut self, node: &KdlNode, min: usize, what: &str) -> Vec<S<String>> {
        self.props(node, &[]);
        self.leaf(node);
        let args = self.args(node, min, None, what);
        args.into_iter().filter_map(|e| self.string(e, what)).collect()
    }

    fn one_string(&mut self, node: &KdlNode, what: &str) -> Option<S<String>> {
        self.props(node, &[]);
        self.leaf(node);
        let args = self.args(node, 1, Some(1), what);
        args.first().and_then(|e| self.string(e, what))
    }

    /// Children of `node` that are in `known`; unknown ones are reported.
    fn children<'a>(&mut self, node: &'a KdlNode, known: &[&str]) -> Vec<&'a KdlNode> {
        let place = format!("`{}`", node.name().value());
        let mut out = Vec::new();
        if let Some(doc) = node.children() {
            for child in doc.nodes() {
                if known.contains(&child.name().value()) {
                    out.push(child);
                } else {
                    self.unknown_node(child, known, &place);
                }
            }
        }
        out
    }

    /// Store `value` in a once-only slot, reporting a duplicate node otherwise.
    fn once<T>(
        &mut self,
        slot: &mut Option<T>,
        first: &mut Option<SourceSpan>,
        node: &KdlNode,
        value: Option<T>,
    ) {
        if let Some(f) = *first {
            self.duplicate(node, f);
            return;
        }
        *first = Some(name_span(node));
        *slot = value;
    }

    fn fabric(&mut self, node: &KdlNode) -> FabricAst {
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
        let mut known: Vec<&str> = FABRIC_CHILDREN.to_vec();
        known.sort_unstable();
        for child in self.children(node, FABRIC_CHILDREN) {
            match child.name().value() {
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
                    let v = self.settings(child, &[]).0;
                    self.once(&mut f.defaults, &mut firsts[3], child, Some(v));
                }
                kind @ ("platform" | "model") => {
                    self.props(child, &[]);
                    let args = self.args(child, 1, Some(1), "its name");
                    let name = args.first().and_then(|e| self.string(e, "name"));
                    let settings = self.settings(child, &[]).0;
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

    fn missing(&mut self, parent: &KdlNode, what: &str, help: &str) {
        self.push(
            Diag::error(
                Code::MissingNode,
                name_span(parent),
                format!("`{}` has no `{what}`", parent.name().value()),
            )
            .label(format!("`{what}` missing in here"))
            .help(help.to_string()),
        );
    }

    fn ztp_server(&mut self, node: &KdlNode) -> ZtpServerAst {
        self.props(node, &["http-port"]);
        self.leaf(node);
        let args = self.args(node, 1, Some(1), "the server's IPv4 address");
        let address = args.first().and_then(|e| self.string(e, "address"));
        let http_port = self.prop(node, "http-port").and_then(|e| self.int(e, "http-port"));
        ZtpServerAst { address, http_port, span: node.span() }
    }

    fn controller(&mut self, node: &KdlNode) -> ControllerAst {
        self.props(node, &[]);
        let args = self.args(node, 1, Some(1), "the controller's URL");
        let url = args.first().and_then(|e| self.string(e, "URL"));
        let mut c = ControllerAst { url, user: None, password: None, ca_cert: None, span: node.span() };
        let mut firsts: [Option<SourceSpan>; 3] = [None; 3];
        for child in self.children(node, &["user", "password", "ca-cert"]) {
            match child.name().value() {
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
    fn dhcp_option(
        &mut self,
        child: &KdlNode,
        o: &mut DhcpOptsAst,
        firsts: &mut [Option<SourceSpan>; 4],
    ) -> bool {
        match child.name().value() {
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

    fn dhcp(&mut self, node: &KdlNode) -> DhcpAst {
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
        let known: Vec<&str> =
            DHCP_OPTIONS.iter().copied().chain(["lease-time", "interfaces", "subnet"]).collect();
        for child in self.children(node, &known) {
            if self.dhcp_option(child, &mut d.options, &mut opt_firsts) {
                continue;
            }
            match child.name().value() {
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

    fn subnet(&mut self, node: &KdlNode) -> SubnetAst {
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
        let known: Vec<&str> = DHCP_OPTIONS.iter().copied().chain(["router", "pool"]).collect();
        for child in self.children(node, &known) {
            if self.dhcp_option(child, &mut s.options, &mut opt_firsts) {
                continue;
            }
            match child.name().value() {
                "router" => {
                    let v = self.one_string(child, "the router's IPv4 address");
                    self.once(&mut s.router, &mut router_first, child, v);
                }
                "pool" => {
                    self.props(child, &[]);
                    self.leaf(child);
                    let args = self.args(child, 2, Some(2), "first and last address");
                    if args.len() == 2 {
                        let first = self.string(args[0], "first address");
                        let last = self.string(args[1], "last address");
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

    /// Settings children of `node`, plus any node-specific children in `extra`
    /// (returned for the caller to handle).
    fn settings<'a>(&mut self, node: &'a KdlNode, extra: &[&str]) -> (SettingsAst, Vec<&'a KdlNode>) {
        let mut st = SettingsAst::default();
        let mut rest = Vec::new();
        let known: Vec<&str> = SETTINGS.iter().chain(extra.iter()).copied().collect();
        let mut firsts: [Option<SourceSpan>; 7] = [None; 7];
        for child in self.children(node, &known) {
            match child.name().value() {
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
                _ => rest.push(child),
            }
        }
        (st, rest)
    }

    fn device(&mut self, node: &KdlNode) -> DeviceAst {
        self.props(node, &["platform"]);
        let args = self.args(node, 1, Some(1), "the device's host name");
        let name = args.first().and_then(|e| self.string(e, "device name"));
        let platform = self.prop(node, "platform").and_then(|e| self.string(e, "platform"));
        if self.prop(node, "platform").is_none() {
            self.push(
                Diag::error(Code::MissingNode, name_span(node), "device has no `platform=`")
                    .label("platform missing")
                    .help("add `platform=\"junos\"` (or junos-evo, eos, nxos, sonic, cumulus)"),
            );
        }
        let (settings, rest) = self.settings(node, &["mac", "serial", "address", "model", "location"]);
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
        for child in rest {
            match child.name().value() {
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
                                name_span(child),
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

fn type_diag(e: &KdlEntry, what: &str, want: &str, got: &KdlValue) -> Diag {
    let got = match got {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
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
