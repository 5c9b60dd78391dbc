//! Pass 2: syntax tree → validated model, collecting every problem.
//!
//! Local checks (is this an address?) and cross checks (is this address inside a subnet,
//! used twice, inside a pool?) both live here, because both need the spans that the
//! model drops. Files and environment variables are read through [`Host`] so tests can
//! control them.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use miette::SourceSpan;
use sha2::{Digest, Sha256};

use crate::diag::{Code, Diag, Diagnostics};
use crate::model::*;
use crate::platform::Platform;
use crate::syntax::*;
use crate::values::{self, Mac};

/// What validation may read from the machine: files beside the fabric, and variables.
pub struct Host<'a> {
    /// The fabric file's directory; relative paths in the fabric start here.
    pub base_dir: PathBuf,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

const AGENT_TYPES: &[&str] = &["onbox", "offbox"];
const JOBS: &[&str] = &["install", "check", "none", "upgrade", "uninstall", "revertToPristine"];
const MODES: &[&str] = &["full_control", "telemetry_only", "unmanaged"];

pub fn validate(ast: &FabricAst, host: &Host, diags: &mut Diagnostics) -> Option<Fabric> {
    let mut v = Validator { host, diags, image_sums: HashMap::new() };
    let fabric = v.fabric(ast);
    if v.diags.has_errors() { None } else { fabric }
}

struct Validator<'a, 'h> {
    host: &'a Host<'h>,
    diags: &'a mut Diagnostics,
    /// Local image checksums already computed (images can be gigabytes; read each once).
    image_sums: HashMap<PathBuf, (String, u64)>,
}

impl Validator<'_, '_> {
    fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    fn ipv4(&mut self, s: &S<String>) -> Option<Ipv4Addr> {
        values::parse_ipv4(&s.v)
            .map_err(|e| self.push(Diag::error(Code::BadIpv4, s.span, e).label("not an IPv4 address")))
            .ok()
    }

    fn ipv4s(&mut self, list: &Option<Vec<S<String>>>) -> Option<Vec<Ipv4Addr>> {
        list.as_ref().map(|l| l.iter().filter_map(|s| self.ipv4(s)).collect())
    }

    fn hostnames(&mut self, list: &Option<Vec<S<String>>>) -> Option<Vec<String>> {
        list.as_ref().map(|l| l.iter().filter_map(|s| self.hostname(s).map(|_| s.v.clone())).collect())
    }

    fn hostname(&mut self, s: &S<String>) -> Option<()> {
        values::check_hostname(&s.v)
            .map_err(|e| self.push(Diag::error(Code::BadHostname, s.span, e).label("not a valid host name")))
            .ok()
    }

    fn fabric(&mut self, ast: &FabricAst) -> Option<Fabric> {
        let name = ast.name.as_ref().map(|n| n.v.clone());
        let server = ast.ztp_server.as_ref().and_then(|z| self.server(z));
        let controller = ast.controller.as_ref().and_then(|c| self.controller(c));
        let dhcp = ast.dhcp.as_ref().and_then(|d| self.dhcp(d));
        let defaults = ast.defaults.as_ref().map(|s| self.settings(s)).unwrap_or_default();
        let mut platforms = BTreeMap::new();
        for (name, s) in &ast.platforms {
            let settings = self.settings(s);
            if let Some(p) = self.platform(name) {
                platforms.insert(p, settings);
            }
        }
        let mut models = BTreeMap::new();
        for (name, s) in &ast.models {
            let settings = self.settings(s);
            models.insert(name.v.clone(), settings);
        }
        let devices = self.devices(&ast.devices, ast.dhcp.as_ref(), dhcp.as_ref());
        // The server's own address must never be handed to a device.
        if let (Some(srv), Some(dhcp), Some(a)) =
            (&server, &dhcp, ast.ztp_server.as_ref().and_then(|z| z.address.as_ref()))
        {
            if let Some(p) = dhcp.subnets.iter().flat_map(|s| &s.pools).find(|p| p.contains(srv.address)) {
                self.push(
                    Diag::error(
                        Code::AddressInPool,
                        a.span,
                        format!(
                            "the ZTP server's address {} is inside the dynamic pool {}-{}",
                            srv.address, p.first, p.last
                        ),
                    )
                    .label("server address inside a pool")
                    .help("move the pool or the server so a device can never be given the server's address"),
                );
            }
            if let Some(d) = ast.devices.iter().find(|d| d.address.as_ref().is_some_and(|x| x.v == a.v)) {
                let first = d.address.as_ref().map(|x| x.span).unwrap_or(d.span);
                self.push(
                    Diag::error(Code::DuplicateAddress, first, "device address is the ZTP server's address")
                        .label("same as the server")
                        .also(a.span, "the ZTP server's address"),
                );
            }
        }
        if let (Some(dhcp), Some(dhcp_ast)) = (&dhcp, &ast.dhcp)
            && dhcp.lease_time < 3600
            && devices.iter().any(|d| d.platform == Platform::Nxos)
            && let Some(lt) = &dhcp_ast.lease_time
        {
            self.push(
                Diag::warning(
                    Code::BadValue,
                    lt.span,
                    "NX-OS POAP does not complete DHCP with a lease under 3600 s",
                )
                .label("shorter than 3600 s")
                .help("use `lease-time 3600` or longer"),
            );
        }
        Some(Fabric {
            name: name?,
            server: server?,
            controller,
            dhcp: dhcp?,
            defaults,
            platforms,
            models,
            devices,
        })
    }

    fn server(&mut self, z: &ZtpServerAst) -> Option<Server> {
        let address = self.ipv4(z.address.as_ref()?)?;
        let http_port = match &z.http_port {
            None => 80,
            Some(p) => match u16::try_from(p.v) {
                Ok(port) if port > 0 => port,
                _ => {
                    self.push(
                        Diag::error(Code::BadValue, p.span, format!("http-port {} is not a TCP port", p.v))
                            .label("expected 1 to 65535"),
                    );
                    return None;
                }
            },
        };
        Some(Server { address, http_port })
    }

    fn controller(&mut self, c: &ControllerAst) -> Option<Controller> {
        let url = c.url.as_ref()?;
        if !values::is_url(&url.v) || url.v.len() <= "https://".len() {
            self.push(
                Diag::error(Code::BadUrl, url.span, format!("`{}` is not an http:// or https:// URL", url.v))
                    .label("not a URL"),
            );
        }
        let password = c.password.as_ref().and_then(|p| self.secret(p));
        let ca_cert = c.ca_cert.as_ref().and_then(|p| self.local_file(p, "ca-cert"));
        Some(Controller {
            url: url.v.trim_end_matches('/').to_string(),
            user: c.user.as_ref()?.v.clone(),
            password: password?,
            ca_cert,
        })
    }

    fn dhcp(&mut self, d: &DhcpAst) -> Option<Dhcp> {
        let options = self.options(&d.options);
        let lease_time = self.seconds(d.lease_time.as_ref(), 7200)?;
        let max_lease_time = self.seconds(d.max_lease_time.as_ref(), lease_time.max(9200))?;
        if max_lease_time < lease_time
            && let (Some(m), Some(l)) = (&d.max_lease_time, &d.lease_time)
        {
            self.push(
                Diag::error(Code::BadValue, m.span, "max lease time is shorter than the lease time")
                    .label("shorter")
                    .also(l.span, "lease time here"),
            );
        }
        let interfaces = match &d.interfaces {
            Some(list) => list.iter().map(|s| s.v.clone()).collect(),
            None => vec!["*".to_string()],
        };
        let mut subnets: Vec<(Subnet, &SubnetAst)> = Vec::new();
        for s in &d.subnets {
            if let Some(sub) = self.subnet(s) {
                subnets.push((sub, s));
            }
        }
        // Overlapping subnets: dhcpd and Kea would pick one silently.
        for i in 0..subnets.len() {
            for j in 0..i {
                let (a, b) = (&subnets[i], &subnets[j]);
                if a.0.cidr.overlaps(b.0.cidr) {
                    let (sa, sb) = (span_of(&a.1.cidr, a.1.span), span_of(&b.1.cidr, b.1.span));
                    self.push(
                        Diag::error(
                            Code::SubnetOverlap,
                            sa,
                            format!("subnet {} overlaps subnet {}", a.0.cidr, b.0.cidr),
                        )
                        .label("this subnet")
                        .also(sb, "overlaps this one"),
                    );
                }
            }
        }
        // Overlapping pools anywhere in the scope.
        let pools: Vec<(Pool, SourceSpan)> = subnets
            .iter()
            .flat_map(|(sub, ast)| sub.pools.iter().zip(pool_spans(ast, sub)).map(|(p, s)| (*p, s)))
            .collect();
        for i in 0..pools.len() {
            for j in 0..i {
                let ((a, sa), (b, sb)) = (pools[i], pools[j]);
                if a.first <= b.last && b.first <= a.last {
                    self.push(
                        Diag::error(
                            Code::PoolOverlap,
                            sa,
                            format!("pool {}-{} overlaps pool {}-{}", a.first, a.last, b.first, b.last),
                        )
                        .label("this pool")
                        .also(sb, "overlaps this one")
                        .help("pools must not share addresses"),
                    );
                }
            }
        }
        Some(Dhcp {
            options,
            lease_time,
            max_lease_time,
            interfaces,
            subnets: subnets.into_iter().map(|(s, _)| s).collect(),
        })
    }

    fn seconds(&mut self, s: Option<&S<i128>>, default: u32) -> Option<u32> {
        let Some(s) = s else { return Some(default) };
        match u32::try_from(s.v) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                self.push(
                    Diag::error(Code::BadValue, s.span, format!("{} is not a lease time in seconds", s.v))
                        .label("expected 1 to 4294967295"),
                );
                None
            }
        }
    }

    fn options(&mut self, o: &DhcpOptsAst) -> DhcpOptions {
        if let Some(d) = &o.domain_name {
            self.hostname(d);
        }
        DhcpOptions {
            domain_name: o.domain_name.as_ref().map(|s| s.v.clone()),
            domain_search: self.hostnames(&o.domain_search),
            dns: self.ipv4s(&o.dns),
            ntp: self.ipv4s(&o.ntp),
        }
    }

    fn subnet(&mut self, s: &SubnetAst) -> Option<Subnet> {
        let options = self.options(&s.options);
        let cidr_ast = s.cidr.as_ref()?;
        let cidr = values::parse_cidr(&cidr_ast.v)
            .map_err(|e| {
                self.push(Diag::error(Code::BadCidr, cidr_ast.span, e).label("not a network in CIDR form"))
            })
            .ok()?;
        let router = s.router.as_ref().and_then(|r| {
            let a = self.ipv4(r)?;
            if !cidr.contains(a) {
                self.push(
                    Diag::error(
                        Code::AddressOutsideSubnets,
                        r.span,
                        format!("router {a} is outside subnet {cidr}"),
                    )
                    .label("outside the subnet")
                    .also(cidr_ast.span, "the subnet"),
                );
            } else if a == cidr.network || a == cidr.broadcast() {
                self.push(
                    Diag::error(
                        Code::AddressReserved,
                        r.span,
                        format!("router {a} is the network or broadcast address of {cidr}"),
                    )
                    .label("reserved address"),
                );
            }
            Some(a)
        });
        let mut pools = Vec::new();
        for p in &s.pools {
            let (Some(first), Some(last)) = (self.ipv4(&p.first), self.ipv4(&p.last)) else { continue };
            if first > last {
                self.push(
                    Diag::error(
                        Code::PoolReversed,
                        p.span,
                        format!("pool starts at {first}, after its last address {last}"),
                    )
                    .label("first address after last")
                    .help(format!("write `pool \"{last}\" \"{first}\"`")),
                );
                continue;
            }
            let inside = |a: Ipv4Addr| cidr.contains(a) && a != cidr.network && a != cidr.broadcast();
            if !inside(first) || !inside(last) {
                self.push(
                    Diag::error(
                        Code::PoolOutsideSubnet,
                        p.span,
                        format!("pool {first}-{last} is not inside subnet {cidr}"),
                    )
                    .label("reaches outside the subnet's host addresses")
                    .also(cidr_ast.span, "the subnet"),
                );
                continue;
            }
            if let Some(r) = router.filter(|r| first <= *r && *r <= last) {
                self.push(
                    Diag::error(
                        Code::AddressInPool,
                        p.span,
                        format!("pool {first}-{last} contains the router {r}"),
                    )
                    .label("contains the router address"),
                );
                continue;
            }
            pools.push(Pool { first, last });
        }
        Some(Subnet { cidr, router, pools, options })
    }

    fn platform(&mut self, name: &S<String>) -> Option<Platform> {
        let p = Platform::from_name(&name.v);
        if p.is_none() {
            let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            let mut d =
                Diag::error(Code::UnknownPlatform, name.span, format!("unknown platform `{}`", name.v))
                    .label("not a supported NOS");
            d = match crate::syntax::nearest(&name.v, &names) {
                Some(n) => d.help(format!("did you mean `{n}`? (known: {})", names.join(", "))),
                None => d.help(format!("known platforms: {}", names.join(", "))),
            };
            self.push(d);
        }
        p
    }

    fn secret(&mut self, s: &SecretAst) -> Option<Secret> {
        let value = match &s.src {
            SecretSrc::Literal(v) => {
                self.push(
                    Diag::warning(Code::LiteralSecret, s.span, "secret written in the fabric file")
                        .label("literal secret")
                        .help("fabric files live in git; use `(env)\"VAR\"` or `(file)\"path\"` instead"),
                );
                v.clone()
            }
            SecretSrc::Env(var) => match (self.host.env)(var) {
                Some(v) => v,
                None => {
                    self.push(
                        Diag::error(
                            Code::EnvUnset,
                            s.span,
                            format!("environment variable `{var}` is not set"),
                        )
                        .label("unset variable")
                        .help(format!("export {var}=... before building, or pass --env-file FILE")),
                    );
                    return None;
                }
            },
            SecretSrc::File(rel) => {
                let path = self.host.base_dir.join(rel);
                match std::fs::read_to_string(&path) {
                    Ok(text) => text.lines().next().unwrap_or("").to_string(),
                    Err(e) => {
                        self.push(
                            Diag::error(
                                Code::MissingFile,
                                s.span,
                                format!("cannot read secret file `{rel}`: {}", io_reason(&e)),
                            )
                            .label("unreadable file")
                            .help("paths are relative to the fabric file"),
                        );
                        return None;
                    }
                }
            }
        };
        if value.is_empty() {
            self.push(Diag::error(Code::EmptySecret, s.span, "secret is empty").label("empty value"));
            return None;
        }
        Some(Secret::new(value))
    }

    fn local_file(&mut self, s: &S<String>, what: &str) -> Option<LocalFile> {
        let path = self.host.base_dir.join(&s.v);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(LocalFile { rel: s.v.clone(), path }),
            Ok(_) => {
                self.push(
                    Diag::error(Code::MissingFile, s.span, format!("{what} `{}` is not a regular file", s.v))
                        .label("not a file"),
                );
                None
            }
            Err(e) => {
                self.push(
                    Diag::error(Code::MissingFile, s.span, format!("{what} `{}`: {}", s.v, io_reason(&e)))
                        .label("missing file")
                        .help("paths are relative to the fabric file"),
                );
                None
            }
        }
    }

    fn resource(&mut self, s: &S<String>, what: &str) -> Option<Resource> {
        if s.v.contains("://") {
            if !values::is_url(&s.v) {
                self.push(
                    Diag::error(Code::BadUrl, s.span, format!("`{}` is not an http:// or https:// URL", s.v))
                        .label("unsupported scheme"),
                );
                return None;
            }
            return Some(Resource::Url(s.v.clone()));
        }
        self.local_file(s, what).map(Resource::Local)
    }

    fn settings(&mut self, s: &SettingsAst) -> Settings {
        let root_password = s.root_password.as_ref().and_then(|p| self.secret(p));
        let device_user = s.device_user.as_ref().map(|u| u.v.clone());
        let device_user_password = s.device_user_password.as_ref().and_then(|p| self.secret(p));
        let agent = s.agent.as_ref().map(|a| self.agent(a)).unwrap_or_default();
        let custom_config = s.custom_config.as_ref().and_then(|c| self.resource(c, "custom-config"));
        let versions = s.versions.as_ref().map(|l| l.iter().map(|v| v.v.clone()).collect());
        let image = s.image.as_ref().and_then(|i| self.image(i));
        Settings {
            root_password,
            device_user,
            device_user_password,
            agent,
            custom_config,
            versions,
            image,
            dual_routing_engine: s.dual_routing_engine.as_ref().map(|b| b.v),
        }
    }

    fn one_of(&mut self, s: &Option<S<String>>, allowed: &[&str], what: &str) -> Option<String> {
        let s = s.as_ref()?;
        if !allowed.contains(&s.v.as_str()) {
            self.push(
                Diag::error(Code::BadValue, s.span, format!("`{}` is not a valid {what}", s.v))
                    .label(format!("not a {what}"))
                    .help(format!("one of: {}", allowed.join(", "))),
            );
            return None;
        }
        Some(s.v.clone())
    }

    fn agent(&mut self, a: &AgentAst) -> Agent {
        Agent {
            agent_type: self.one_of(&a.agent_type, AGENT_TYPES, "agent type"),
            install_requirements: a.install_requirements.as_ref().map(|b| b.v),
            job_on_create: self.one_of(&a.job_on_create, JOBS, "job-on-create value"),
            operation_mode: self.one_of(&a.operation_mode, MODES, "operation mode"),
        }
    }

    fn image(&mut self, i: &ImageAst) -> Option<Image> {
        let declared = i.sha256.as_ref().and_then(|s| {
            values::parse_sha256(&s.v)
                .map_err(|e| self.push(Diag::error(Code::BadSha256, s.span, e).label("not a sha256 digest")))
                .ok()
        });
        if i.sha256.is_some() && declared.is_none() {
            return None;
        }
        let source = self.resource(&i.source, "image")?;
        match &source {
            Resource::Url(_) => {
                if declared.is_none() {
                    self.push(
                        Diag::warning(Code::NoChecksum, i.source.span, "remote image without a sha256")
                            .label("devices cannot verify this download")
                            .help("add `sha256=\"...\"` so the bootstrap script can refuse a corrupt image"),
                    );
                }
                Some(Image { source, sha256: declared, size: None })
            }
            Resource::Local(file) => {
                let (sum, size) = match self.image_sums.get(&file.path) {
                    Some(v) => v.clone(),
                    None => match sha256_file(&file.path) {
                        Ok(v) => {
                            self.image_sums.insert(file.path.clone(), v.clone());
                            v
                        }
                        Err(e) => {
                            self.push(
                                Diag::error(
                                    Code::MissingFile,
                                    i.source.span,
                                    format!("cannot read image `{}`: {}", file.rel, io_reason(&e)),
                                )
                                .label("unreadable"),
                            );
                            return None;
                        }
                    },
                };
                if let (Some(want), Some(decl)) = (&declared, &i.sha256)
                    && *want != sum
                {
                    self.push(
                        Diag::error(Code::ImageChecksumMismatch, decl.span, format!("image `{}` does not match its sha256", file.rel))
                            .label(format!("the file's sha256 is {sum}"))
                            .also(i.source.span, "this file")
                            .help("the file changed or the digest is wrong; check the download before fixing the digest"),
                    );
                    return None;
                }
                Some(Image { source, sha256: Some(sum), size: Some(size) })
            }
        }
    }

    fn devices(
        &mut self,
        list: &[DeviceAst],
        dhcp_ast: Option<&DhcpAst>,
        dhcp: Option<&Dhcp>,
    ) -> Vec<Device> {
        let n = list.len();
        let mut out = Vec::with_capacity(n);
        let mut names: HashMap<String, SourceSpan> = HashMap::with_capacity(n);
        let mut macs: HashMap<Mac, (String, SourceSpan)> = HashMap::with_capacity(n);
        let mut serials: HashMap<String, (String, SourceSpan)> = HashMap::new();
        let mut addrs: HashMap<Ipv4Addr, (String, SourceSpan)> = HashMap::new();
        let mut locs: HashMap<Location, (String, SourceSpan)> = HashMap::new();
        for d in list {
            let settings = self.settings(&d.settings);
            let Some(name) = &d.name else { continue };
            let name_ok = self.hostname(name).is_some();
            if let Some(first) = names.get(&name.v) {
                self.push(
                    Diag::error(
                        Code::DuplicateDeviceName,
                        name.span,
                        format!("device `{}` is defined twice", name.v),
                    )
                    .label("second definition")
                    .also(*first, "first defined here")
                    .help("device names are host names and must be unique"),
                );
                continue;
            }
            names.insert(name.v.clone(), name.span);
            let platform = d.platform.as_ref().and_then(|p| self.platform(p));
            let dup = |v: &mut Self,
                       code: Code,
                       what: &dyn Fn() -> String,
                       span: SourceSpan,
                       first: Option<&(String, SourceSpan)>| {
                if let Some((owner, fspan)) = first {
                    let what = what();
                    v.push(
                        Diag::error(code, span, format!("{what} is already used by `{owner}`"))
                            .label(format!("duplicate {what}"))
                            .also(*fspan, format!("first used by `{owner}` here")),
                    );
                    true
                } else {
                    false
                }
            };
            let mac = d.mac.as_ref().and_then(|m| {
                let mac = values::parse_mac(&m.v)
                    .map_err(|e| self.push(Diag::error(Code::BadMac, m.span, e).label("not a MAC address")))
                    .ok()?;
                if !dup(self, Code::DuplicateMac, &|| format!("MAC {mac}"), m.span, macs.get(&mac)) {
                    macs.insert(mac, (name.v.clone(), m.span));
                }
                Some(mac)
            });
            let serial = d.serial.as_ref().map(|s| {
                if !dup(
                    self,
                    Code::DuplicateSerial,
                    &|| format!("serial `{}`", s.v),
                    s.span,
                    serials.get(&s.v),
                ) {
                    serials.insert(s.v.clone(), (name.v.clone(), s.span));
                }
                s.v.clone()
            });
            let location = d.location.as_ref().and_then(|l| {
                let loc = Location {
                    remote_id: l.remote_id.as_ref().map(|r| r.v.clone()),
                    circuit_id: l.circuit_id.as_ref()?.v.clone(),
                };
                if !dup(self, Code::DuplicateLocation, &|| "location".to_string(), l.span, locs.get(&loc)) {
                    locs.insert(loc.clone(), (name.v.clone(), l.span));
                }
                Some(loc)
            });
            let address = d.address.as_ref().and_then(|a| {
                let addr = self.ipv4(a)?;
                if !dup(self, Code::DuplicateAddress, &|| format!("address {addr}"), a.span, addrs.get(&addr))
                {
                    addrs.insert(addr, (name.v.clone(), a.span));
                }
                if let (Some(dhcp), Some(dhcp_ast)) = (dhcp, dhcp_ast) {
                    self.device_address(addr, a.span, dhcp, dhcp_ast);
                }
                Some(addr)
            });
            if d.mac.is_none() && d.serial.is_none() && d.location.is_none() {
                self.push(
                    Diag::error(Code::NoIdentity, name.span, format!("device `{}` has no identity", name.v))
                        .label("no mac, serial or location")
                        .help("add `mac \"..\"`, `serial \"..\"` or `location remote-id=\"..\" circuit-id=\"..\"` so the device can be recognised"),
                );
            }
            if let (Some(p), Some(a), Some(s)) = (platform, &d.address, &d.serial)
                && d.mac.is_none()
                && d.location.is_none()
                && !p.serial_in_dhcp()
            {
                self.push(
                    Diag::warning(
                        Code::SerialNotInDhcp,
                        a.span,
                        format!("{p} sends no serial in DHCP, so this address cannot be reserved by serial"),
                    )
                    .label("the device will get a pool address")
                    .also(s.span, "only identity")
                    .help("add the device's `mac` or `location` to reserve its address"),
                );
            }
            let (Some(platform), true) = (platform, name_ok) else { continue };
            out.push(Device {
                name: name.v.clone(),
                platform,
                mac,
                serial,
                address,
                model: d.model.as_ref().map(|m| m.v.clone()),
                location,
                settings,
            });
        }
        // Devices are large: sort a permutation and move each once, and skip the work
        // entirely for the common fabric that is already written in name order.
        if !out.is_sorted_by(|a: &Device, b: &Device| a.name <= b.name) {
            let mut order: Vec<usize> = (0..out.len()).collect();
            order.sort_by(|&a, &b| out[a].name.cmp(&out[b].name));
            let mut slots: Vec<Option<Device>> = out.into_iter().map(Some).collect();
            out = order.into_iter().filter_map(|i| slots[i].take()).collect();
        }
        out
    }

    fn device_address(&mut self, addr: Ipv4Addr, span: SourceSpan, dhcp: &Dhcp, dhcp_ast: &DhcpAst) {
        let Some((i, sub)) = dhcp.subnets.iter().enumerate().find(|(_, s)| s.cidr.contains(addr)) else {
            let list: Vec<String> = dhcp.subnets.iter().map(|s| s.cidr.to_string()).collect();
            self.push(
                Diag::error(
                    Code::AddressOutsideSubnets,
                    span,
                    format!("address {addr} is outside every subnet"),
                )
                .label("in no subnet")
                .help(format!("served subnets: {}", list.join(", "))),
            );
            return;
        };
        let _ = i;
        // The subnet's syntax node is looked up only to draw an error: the common,
        // valid case must not re-parse every subnet for every device.
        let sub_ast = || {
            dhcp_ast
                .subnets
                .iter()
                .find(|s| s.cidr.as_ref().and_then(|c| values::parse_cidr(&c.v).ok()) == Some(sub.cidr))
        };
        let sub_span = || sub_ast().map(|s| span_of(&s.cidr, s.span)).unwrap_or(span);
        let reserved = if addr == sub.cidr.network {
            Some("the network address")
        } else if addr == sub.cidr.broadcast() {
            Some("the broadcast address")
        } else if Some(addr) == sub.router {
            Some("the router address")
        } else {
            None
        };
        if let Some(what) = reserved {
            self.push(
                Diag::error(Code::AddressReserved, span, format!("address {addr} is {what} of {}", sub.cidr))
                    .label(what.to_string())
                    .also(sub_span(), "in this subnet"),
            );
            return;
        }
        if let Some(p) = sub.pools.iter().find(|p| p.contains(addr)) {
            let pspan = sub_ast()
                .and_then(|s| {
                    pool_spans(s, sub).into_iter().zip(&sub.pools).find(|(_, q)| *q == p).map(|(s, _)| s)
                })
                .unwrap_or_else(sub_span);
            self.push(
                Diag::error(
                    Code::AddressInPool,
                    span,
                    format!("address {addr} is inside the dynamic pool {}-{}", p.first, p.last),
                )
                .label("reserved address inside a pool")
                .also(pspan, "this pool")
                .help("a reserved address must be outside every pool, or another client may get it"),
            );
        }
    }
}

fn span_of(s: &Option<S<String>>, fallback: SourceSpan) -> SourceSpan {
    s.as_ref().map(|s| s.span).unwrap_or(fallback)
}

/// Spans of the pools of `sub` that survived validation, matched by their addresses.
fn pool_spans(ast: &SubnetAst, sub: &Subnet) -> Vec<SourceSpan> {
    sub.pools
        .iter()
        .map(|p| {
            ast.pools
                .iter()
                .find(|a| a.first.v == p.first.to_string() && a.last.v == p.last.to_string())
                .map(|a| a.span)
                .unwrap_or(ast.span)
        })
        .collect()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// sha256 and size of a file, streamed so that multi-gigabyte images use little memory.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), size))
}

/// Lower-case hex, as sha256sum and md5sum print digests. (By table: a 10,000-device
/// build prints 25,000 digests, and a `format!` per byte showed in its profile.)
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse;

    fn run(text: &str) -> (Option<Fabric>, Vec<Code>) {
        let mut d = Diagnostics::default();
        let ast = parse(text, &mut d).expect("parses");
        let env = |k: &str| (k == "SET").then(|| "v".to_string());
        let host = Host { base_dir: std::env::temp_dir(), env: &env };
        let f = validate(&ast, &host, &mut d);
        (f, d.items().iter().map(|d| d.code).collect())
    }

    const HEAD: &str = r#"ztp-server "10.0.0.2"
        dhcp { subnet "10.0.0.0/24" { router "10.0.0.1"; pool "10.0.0.100" "10.0.0.150" } }"#;

    #[test]
    fn address_rules() {
        let cases = [
            ("10.0.0.0", Code::AddressReserved),
            ("10.0.0.255", Code::AddressReserved),
            ("10.0.0.1", Code::AddressReserved),
            ("10.0.0.120", Code::AddressInPool),
            ("10.0.1.5", Code::AddressOutsideSubnets),
            ("10.0.0.300", Code::BadIpv4),
        ];
        for (addr, code) in cases {
            let text = format!(
                "fabric \"f\" {{ {HEAD}\n device \"a\" platform=\"eos\" {{ mac \"02:00:00:00:00:01\"; address \"{addr}\" }} }}"
            );
            let (_, codes) = run(&text);
            assert_eq!(codes, vec![code], "{addr}");
        }
    }

    #[test]
    fn duplicates_across_devices() {
        let text = format!(
            r#"fabric "f" {{ {HEAD}
            device "a" platform="eos" {{ mac "02:00:00:00:00:01"; serial "S1"; address "10.0.0.10" }}
            device "b" platform="eos" {{ mac "0200.0000.0001"; serial "S1"; address "10.0.0.10" }}
            device "a" platform="eos" {{ mac "02:00:00:00:00:03" }} }}"#
        );
        let (_, codes) = run(&text);
        assert_eq!(
            codes,
            vec![
                Code::DuplicateMac,
                Code::DuplicateSerial,
                Code::DuplicateAddress,
                Code::DuplicateDeviceName
            ]
        );
    }

    #[test]
    fn secrets_resolve_from_env_and_warn_when_literal() {
        let text = format!(
            r#"fabric "f" {{ {HEAD}
            defaults {{ root-password (env)"SET"; device-user "u" password="lit" }}
            platform "eos" {{ root-password (env)"UNSET" }} }}"#
        );
        let (_, codes) = run(&text);
        assert_eq!(codes, vec![Code::LiteralSecret, Code::EnvUnset]);
    }

    #[test]
    fn pools_and_subnets() {
        let text = r#"fabric "f" { ztp-server "10.0.0.2"
            dhcp {
                subnet "10.0.0.0/24" { pool "10.0.0.50" "10.0.0.10"; pool "10.0.0.100" "10.0.1.5"; pool "10.0.0.20" "10.0.0.30"; pool "10.0.0.25" "10.0.0.40" }
                subnet "10.0.0.0/16"
            } }"#;
        let (f, codes) = run(text);
        assert!(f.is_none());
        for want in [Code::PoolReversed, Code::PoolOutsideSubnet, Code::PoolOverlap, Code::SubnetOverlap] {
            assert!(codes.contains(&want), "{want:?} not in {codes:?}");
        }
    }

    #[test]
    fn devices_sorted_and_identity_required() {
        let text = format!(
            r#"fabric "f" {{ {HEAD}
            device "b" platform="eos" {{ serial "S2" }}
            device "a" platform="sonic" {{ location remote-id="r" circuit-id="c" }}
            device "c" platform="eos" }}"#
        );
        let (_, codes) = run(&text);
        assert_eq!(codes, vec![Code::NoIdentity]);
        let text = text.replace("device \"c\" platform=\"eos\"", "");
        let (f, _) = run(&text);
        let names: Vec<_> = f.unwrap().devices.iter().map(|d| d.name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn server_address_is_never_a_device_or_pool_address() {
        let text = r#"fabric "f" { ztp-server "10.0.0.120"
            dhcp { subnet "10.0.0.0/24" { router "10.0.0.1"; pool "10.0.0.100" "10.0.0.150" } } }"#;
        assert_eq!(run(text).1, vec![Code::AddressInPool]);
        let text = format!(
            "fabric \"f\" {{ {HEAD}\n device \"a\" platform=\"eos\" {{ mac \"02:00:00:00:00:01\"; address \"10.0.0.2\" }} }}"
        );
        assert_eq!(run(&text).1, vec![Code::DuplicateAddress]);
    }
}
