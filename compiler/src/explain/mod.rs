//! `ztpc explain`: what one device gets and why, or what a hypothetical DHCP request
//! would get: the identity that matched, the DHCP class and options, the boot file and
//! script, the image and its checksum, and each merged setting with the block it came
//! from. Secrets are never shown (`***`).
//!
//! Everything here reads the validated model and the same rules the renderers use
//! (`render/identity.rs`, `render::boot_value`, `merge.rs`), so the explanation cannot
//! drift from what `ztpc build` writes. [`explain_query`] and [`explain_request`] build
//! an [`Explanation`]; [`text::render`] and JSON (serde) print it; [`run`] is the CLI.

pub mod diff;
pub mod request;
pub mod text;

use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cli::Common;
use crate::model::{Device, Fabric, Resource, Settings, Subnet};
use crate::platform::{BootOption, Platform};
use crate::render::identity::{self, DhcpIdentity};
use crate::render::{boot_value, isc_data, resource_ref, ztp_json};
use crate::{Host, RenderStyle, diag};

pub use request::Request;

/// Arguments of `ztpc explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub common: Common,
    /// A device name, a MAC (any notation) or a serial; `-` or nothing with --dhcp-request.
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,
    /// An option of a hypothetical request: 60, 61, 77, 12, 82.1 (circuit-id), 82.2
    /// (remote-id) or mac; VALUE is text or hex as 0x...
    #[arg(long = "dhcp-request", value_name = "OPT=VALUE")]
    pub dhcp_request: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What to explain.
#[derive(Debug, Clone)]
pub enum Query {
    /// A device name, MAC or serial.
    Device(String),
    /// A hypothetical request.
    Request(Request),
}

/// The whole explanation; serialised as is for `--format json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Explanation {
    pub fabric: String,
    pub query: String,
    /// How the query (or the request) led to the device or platform below.
    pub matched: String,
    pub request: Option<RequestReport>,
    pub device: Option<DeviceReport>,
    pub platform: Option<Platform>,
    pub dhcp: DhcpReport,
    pub boot: Option<BootReport>,
    pub image: Option<ImageReport>,
    pub settings: Vec<SettingRow>,
    pub controller: Option<ControllerReport>,
    /// The ztp.json sections that apply, most general first.
    pub ztp_json_sections: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RequestReport {
    /// `(option, name, value)` as given.
    pub options: Vec<OptionRow>,
    pub platform_class: Option<ClassMatch>,
    pub device_class: Option<ClassMatch>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClassMatch {
    pub class: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeviceReport {
    pub name: String,
    pub platform: Platform,
    pub model: Option<String>,
    pub mac: Option<String>,
    pub serial: Option<String>,
    pub address: Option<Ipv4Addr>,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DhcpReport {
    /// mac, location, serial, script-only, or platform (an unknown device).
    pub identity: String,
    pub recognised_by: String,
    /// The dhcpd.conf block that answers: `host "x"`, `class "device-x"`, `class "juniper"`.
    pub block: Option<String>,
    /// The block's dhcpd test, if it is a class.
    pub match_if: Option<String>,
    pub address: String,
    pub subnet: Option<String>,
    pub options: Vec<OptionRow>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OptionRow {
    pub code: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BootReport {
    pub option: String,
    pub value: String,
    /// The script's path in the artifact directory.
    pub script: String,
    pub what: String,
    pub fetched: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageReport {
    /// What the device downloads (ztp.json `<nos>-image`), or none.
    pub image: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// The local file, relative to the fabric file.
    pub file: Option<String>,
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SettingRow {
    pub key: String,
    /// `***` for a secret; none when no block sets it.
    pub value: Option<String>,
    /// `device`, `model "X"`, `platform "Y"` or `defaults`.
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ControllerReport {
    pub url: String,
    pub user: String,
    pub password: String,
}

/// The mask every secret is shown as.
pub const MASK: &str = "***";

/// Find a device by name, MAC (any notation) or serial; on failure, the message (with a
/// "did you mean" when a name or serial is close).
pub fn find_device<'f>(f: &'f Fabric, q: &str) -> Result<(&'f Device, String), String> {
    if let Some(d) = f.devices.iter().find(|d| d.name == q) {
        return Ok((d, format!("device name \"{q}\"")));
    }
    if let Ok(mac) = crate::values::parse_mac(q)
        && let Some(d) = f.devices.iter().find(|d| d.mac == Some(mac))
    {
        return Ok((d, format!("MAC {mac} is device {}'s", d.name)));
    }
    let serial = |exact: bool| {
        f.devices.iter().find(|d| {
            d.serial.as_deref().is_some_and(|s| if exact { s == q } else { s.eq_ignore_ascii_case(q) })
        })
    };
    if let Some(d) = serial(true).or_else(|| serial(false)) {
        return Ok((d, format!("serial \"{q}\" is device {}'s", d.name)));
    }
    let mut msg = format!("fabric \"{}\" has no device named `{q}`, nor with that MAC or serial", f.name);
    let known: Vec<&str> =
        f.devices.iter().flat_map(|d| std::iter::once(d.name.as_str()).chain(d.serial.as_deref())).collect();
    if let Some(near) = crate::syntax::nearest(q, &known) {
        msg.push_str(&format!("\n  help: did you mean `{near}`?"));
    }
    msg.push_str("\n  help: to see what an unknown device would get, use --dhcp-request OPT=VALUE");
    Err(msg)
}

/// Explain a query against a valid fabric.
pub fn explain(f: &Fabric, q: &Query) -> Result<Explanation, String> {
    match q {
        Query::Device(s) => explain_query(f, s),
        Query::Request(r) => Ok(explain_request(f, r)),
    }
}

/// Explain a device named by name, MAC or serial.
pub fn explain_query(f: &Fabric, q: &str) -> Result<Explanation, String> {
    let (d, how) = find_device(f, q)?;
    Ok(explain_device(f, d, q, how))
}

/// What device `d` gets; `query` and `matched` say how it was found.
pub fn explain_device(f: &Fabric, d: &Device, query: &str, matched: String) -> Explanation {
    let id = identity::dhcp_identity(d);
    let own_script = !matches!(id, DhcpIdentity::ScriptOnly);
    let script = if own_script { d.platform.device_script_path(&d.name) } else { d.platform.script_path() };
    let subnet =
        d.address.filter(|_| own_script).and_then(|a| f.dhcp.subnets.iter().find(|s| s.cidr.contains(a)));
    let host_name = own_script.then_some(d.name.as_str());
    let mut notes = Vec::new();
    let (identity, recognised_by, block, match_if, address) = match id {
        DhcpIdentity::Mac(m) => (
            "mac",
            format!("MAC {m}: a host reservation (dhcpd `host`, Kea reservation by hw-address)"),
            Some(format!("host \"{}\"", d.name)),
            None,
            match d.address {
                Some(a) => format!("{a} (fixed-address of the host reservation)"),
                None => "a pool address of the subnet it asks in (the reservation has no address)".into(),
            },
        ),
        DhcpIdentity::Location(l) => (
            "location",
            format!("relay location (option 82): {}", location_text(l)),
            Some(format!("class \"{}\"", identity::device_class(d))),
            Some(identity::location_match_isc(l)),
            pinned_address(d),
        ),
        DhcpIdentity::Serial(s) => (
            "serial",
            format!("serial \"{s}\", where {} sends it ({})", d.platform, serial_carrier_text(d.platform)),
            Some(format!("class \"{}\"", identity::device_class(d))),
            Some(identity::serial_match_isc(d.platform, s)),
            pinned_address(d),
        ),
        DhcpIdentity::ScriptOnly => {
            notes.push(format!(
                "DHCP cannot tell this device from any other {} device ({} sends no serial in DHCP): it gets \
                 the platform's answer, and the shared script finds its serial section in ztp.json",
                d.platform, d.platform
            ));
            (
                "script-only",
                format!("nothing DHCP sees; the {} platform class answers", d.platform),
                Some(format!("class \"{}\"", d.platform.dhcp_class())),
                Some(identity::platform_match_isc(d.platform).replace("\n          ", " ")),
                match d.address {
                    Some(a) => format!("a pool address ({a} cannot be reserved without a DHCP identity)"),
                    None => "a pool address of the subnet it asks in".into(),
                },
            )
        }
    };
    if own_script {
        notes.push(format!(
            "the platform class \"{}\" matches too; {} own {} replaces the platform's",
            d.platform.dhcp_class(),
            if matches!(id, DhcpIdentity::Mac(_)) { "the host's" } else { "the device class's" },
            boot_option_name(d.platform).1,
        ));
    }
    if let Some(m) = &d.model
        && !f.models.contains_key(m)
    {
        notes.push(format!("model \"{m}\" has no model block: nothing is merged from it"));
    }
    let dhcp = DhcpReport {
        identity: identity.into(),
        recognised_by,
        block,
        match_if,
        address,
        subnet: subnet.map(|s| s.cidr.to_string()),
        options: option_rows(f, subnet, host_name, d.platform, &script),
    };
    let settings = settings_rows(f, Some(d), d.platform);
    let mut sections = vec!["defaults".to_string(), d.platform.name().to_string()];
    sections.extend(d.model.clone());
    sections.extend(d.serial.clone());
    Explanation {
        fabric: f.name.clone(),
        query: query.to_string(),
        matched,
        request: None,
        device: Some(DeviceReport {
            name: d.name.clone(),
            platform: d.platform,
            model: d.model.clone(),
            mac: d.mac.map(|m| m.to_string()),
            serial: d.serial.clone(),
            address: d.address,
            location: d.location.as_ref().map(location_text),
        }),
        platform: Some(d.platform),
        dhcp,
        boot: Some(boot_report(f, d.platform, &script, own_script)),
        image: Some(image_report(f, Some(d), d.platform)),
        settings,
        controller: controller(f),
        ztp_json_sections: existing_sections(f, sections),
        notes,
    }
}

/// What a hypothetical request gets.
pub fn explain_request(f: &Fabric, r: &Request) -> Explanation {
    let platform = request::platform_of(r);
    let device = request::device_of(f, r);
    let report = RequestReport {
        options: r
            .shown()
            .into_iter()
            .map(|(k, n, v)| OptionRow { code: k.into(), name: n.into(), value: v })
            .collect(),
        platform_class: platform
            .map(|p| ClassMatch { class: p.dhcp_class().into(), why: request::platform_reason(p).into() }),
        device_class: device.map(|(d, by)| ClassMatch {
            class: match by {
                request::MatchedBy::Mac => format!("host \"{}\"", d.name),
                _ => format!("class \"{}\"", identity::device_class(d)),
            },
            why: match (by, identity::dhcp_identity(d)) {
                (request::MatchedBy::Mac, _) => format!("chaddr is {}'s MAC", d.name),
                (_, DhcpIdentity::Location(l)) => {
                    format!("option 82 is {}'s location: {}", d.name, location_text(l))
                }
                (_, DhcpIdentity::Serial(s)) => {
                    format!(
                        "the request carries {}'s serial \"{s}\" ({})",
                        d.name,
                        serial_carrier_text(d.platform)
                    )
                }
                _ => String::new(),
            },
        }),
    };
    let mut notes = Vec::new();
    let matched_device = device.map(|(d, _)| d.name.as_str());
    for d in
        request::serial_only_in_script(f, r).into_iter().filter(|d| Some(d.name.as_str()) != matched_device)
    {
        notes.push(format!(
            "the request carries the serial \"{}\" of device {}, which DHCP recognises {}; the shared \
             script would still apply its ztp.json section",
            d.serial.as_deref().unwrap_or_default(),
            d.name,
            match identity::dhcp_identity(d) {
                DhcpIdentity::Mac(_) => "by its MAC instead",
                DhcpIdentity::Location(_) => "by its location instead",
                _ => "not at all (its NOS sends no serial)",
            }
        ));
    }
    if let Some((d, _)) = device {
        let mut e = explain_device(f, d, "-", format!("this request is device {}", d.name));
        if let Some(p) = platform.filter(|p| *p != d.platform) {
            e.notes.insert(
                0,
                format!(
                    "the request looks like {p} (class \"{}\") but device {} is {}: it gets {}'s script {}",
                    p.dhcp_class(),
                    d.name,
                    d.platform,
                    d.platform,
                    if p.boot_option() == d.platform.boot_option() {
                        "(the device's boot option replaces the platform's)".to_string()
                    } else {
                        format!("and also {p}'s {}", boot_option_name(p).1)
                    }
                ),
            );
        } else if platform.is_none() {
            e.notes.insert(0, "no platform class matches; only the device's own answer applies".into());
        }
        e.notes.extend(notes);
        e.request = Some(report);
        return e;
    }
    let Some(p) = platform else {
        notes.insert(
            0,
            "no platform class and no device matches: the client gets a pool address and the subnet's \
             options but no boot option, so its NOS does not start ZTP"
                .into(),
        );
        return Explanation {
            fabric: f.name.clone(),
            query: "-".into(),
            matched: "nothing: an unknown client".into(),
            request: Some(report),
            device: None,
            platform: None,
            dhcp: DhcpReport {
                identity: "none".into(),
                recognised_by: "nothing matches".into(),
                block: None,
                match_if: None,
                address: "a pool address of the subnet it asks in".into(),
                subnet: None,
                options: base_rows(f, None, None),
            },
            boot: None,
            image: None,
            settings: Vec::new(),
            controller: None,
            ztp_json_sections: Vec::new(),
            notes,
        };
    };
    let script = p.script_path();
    let models: Vec<&str> = f.models.keys().map(String::as_str).collect();
    if !models.is_empty() {
        notes.push(format!(
            "the shared script also applies a model section if the device reports one of: {}",
            models.join(", ")
        ));
    }
    Explanation {
        fabric: f.name.clone(),
        query: "-".into(),
        matched: format!("no device; the {p} platform class"),
        request: Some(report),
        device: None,
        platform: Some(p),
        dhcp: DhcpReport {
            identity: "platform".into(),
            recognised_by: format!("platform class only: {}", request::platform_reason(p)),
            block: Some(format!("class \"{}\"", p.dhcp_class())),
            match_if: Some(identity::platform_match_isc(p).replace("\n          ", " ")),
            address: "a pool address of the subnet it asks in".into(),
            subnet: None,
            options: option_rows(f, None, None, p, &script),
        },
        boot: Some(boot_report(f, p, &script, false)),
        image: Some(image_report(f, None, p)),
        settings: settings_rows(f, None, p),
        controller: controller(f),
        ztp_json_sections: existing_sections(f, vec!["defaults".into(), p.name().into()]),
        notes,
    }
}

fn location_text(l: &crate::model::Location) -> String {
    match &l.remote_id {
        Some(r) => format!("remote-id \"{r}\", circuit-id \"{}\"", l.circuit_id),
        None => format!("circuit-id \"{}\" (any remote-id)", l.circuit_id),
    }
}

fn serial_carrier_text(p: Platform) -> &'static str {
    match p {
        Platform::Junos | Platform::JunosEvo => "option 60 ending in -SERIAL or :SERIAL",
        Platform::Eos => "option 60 ending in ;SERIAL",
        Platform::Nxos => "option 61 = 0x00 then SERIAL",
        Platform::Sonic => "option 61 ending in ##SERIAL",
        Platform::Cumulus => "not sent",
    }
}

fn pinned_address(d: &Device) -> String {
    match d.address {
        Some(a) => format!("{a} (a one-address pool only class \"{}\" may use)", identity::device_class(d)),
        None => "a pool address of the subnet it asks in".into(),
    }
}

/// `(code, name)` of the option a platform's NOS reads its script from.
fn boot_option_name(p: Platform) -> (&'static str, &'static str) {
    match p.boot_option() {
        BootOption::JuniperConfigFile => ("43.1", "config-file-name"),
        BootOption::BootfileName => ("67", "bootfile-name"),
        BootOption::ProvisionUrl => ("239", "ztp-provision-url"),
    }
}

fn row(code: &str, name: &str, value: impl Into<String>) -> OptionRow {
    OptionRow { code: code.into(), name: name.into(), value: value.into() }
}

fn join_addrs(l: &[Ipv4Addr]) -> String {
    l.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// The options every client of `subnet` (or, with none, of any subnet) gets, with the
/// host name when the answering block sets one; no boot option.
fn base_rows(f: &Fabric, subnet: Option<&Subnet>, host_name: Option<&str>) -> Vec<OptionRow> {
    let o = subnet.map(|s| s.options.over(&f.dhcp.options)).unwrap_or_else(|| f.dhcp.options.clone());
    let mut rows = Vec::new();
    match subnet {
        Some(s) => {
            rows.push(row("1", "subnet-mask", s.cidr.mask().to_string()));
            if let Some(r) = s.router {
                rows.push(row("3", "routers", r.to_string()));
            }
        }
        None => {
            let per: Vec<String> = f
                .dhcp
                .subnets
                .iter()
                .map(|s| match s.router {
                    Some(r) => format!("{} via {r}", s.cidr),
                    None => s.cidr.to_string(),
                })
                .collect();
            rows.push(row("1, 3", "subnet-mask, routers", format!("from the subnet: {}", per.join("; "))));
        }
    }
    if let Some(l) = &o.dns {
        rows.push(row("6", "domain-name-servers", join_addrs(l)));
    }
    if let Some(h) = host_name {
        rows.push(row("12", "host-name", isc_data(h)));
    }
    if let Some(d) = &o.domain_name {
        rows.push(row("15", "domain-name", isc_data(d)));
    }
    if let Some(l) = &o.ntp {
        rows.push(row("42", "ntp-servers", join_addrs(l)));
    }
    rows.push(row("51", "lease-time", format!("{} s (max {} s)", f.dhcp.lease_time, f.dhcp.max_lease_time)));
    rows.push(row("66", "tftp-server-name", isc_data(&f.server.address.to_string())));
    if let Some(l) = &o.domain_search {
        let v: Vec<String> = l.iter().map(|s| isc_data(s)).collect();
        rows.push(row("119", "domain-search", v.join(", ")));
    }
    if subnet.is_none() && f.dhcp.subnets.iter().any(|s| !s.options.is_empty()) {
        rows.push(row("", "", "(a subnet's own dns, ntp or domain options replace these)"));
    }
    rows
}

/// [`base_rows`] plus the boot option for `script`, in option-code order.
fn option_rows(
    f: &Fabric,
    subnet: Option<&Subnet>,
    host_name: Option<&str>,
    p: Platform,
    script: &str,
) -> Vec<OptionRow> {
    let mut rows = base_rows(f, subnet, host_name);
    let (code, name) = boot_option_name(p);
    let boot = row(code, name, isc_data(&boot_value(f, p, script)));
    let num = |c: &str| c.split(['.', ',']).next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    let at = rows.iter().position(|r| !r.code.is_empty() && num(&r.code) > num(code)).unwrap_or(rows.len());
    rows.insert(at, boot);
    rows
}

fn boot_report(f: &Fabric, p: Platform, script: &str, own: bool) -> BootReport {
    let (code, name) = boot_option_name(p);
    let url = format!("{}/{script}", f.server.base_url());
    let fetched = match p.boot_option() {
        BootOption::ProvisionUrl => format!("HTTP {url}"),
        _ => format!("TFTP {script} from {} (option 66), or HTTP {url}", f.server.address),
    };
    let mut what = if own {
        "this device's own script, its merged settings baked in".to_string()
    } else {
        format!("the shared {p} script: it reads ztp.json and merges the sections that apply")
    };
    if p == Platform::Nxos {
        what.push_str(&format!("; POAP checks it against tftp/{script}.md5 and its #md5sum line"));
    }
    BootReport {
        option: format!("{code} {name}"),
        value: boot_value(f, p, script),
        script: format!("{}/{script}", crate::render::TFTP_DIR),
        what,
        fetched,
    }
}

/// The blocks that apply to a device (or to an unknown device of a platform), most
/// specific first, each with how it is named in the explanation.
fn blocks<'f>(f: &'f Fabric, d: Option<&'f Device>, p: Platform) -> Vec<(String, &'f Settings)> {
    let mut v = Vec::new();
    if let Some(d) = d {
        v.push(("device".to_string(), &d.settings));
        if let Some((m, s)) = d.model.as_ref().and_then(|m| f.models.get_key_value(m)) {
            v.push((format!("model \"{m}\""), s));
        }
    }
    if let Some(s) = f.platforms.get(&p) {
        v.push((format!("platform \"{p}\""), s));
    }
    v.push(("defaults".to_string(), &f.defaults));
    v
}

/// The value of one key and the block it comes from (the most specific that sets it).
fn pick<T>(blocks: &[(String, &Settings)], get: impl Fn(&Settings) -> Option<T>) -> Option<(T, String)> {
    blocks.iter().find_map(|(name, s)| get(s).map(|v| (v, name.clone())))
}

fn settings_rows(f: &Fabric, d: Option<&Device>, p: Platform) -> Vec<SettingRow> {
    let b = blocks(f, d, p);
    let mut rows = Vec::new();
    let mut push = |key: &str, v: Option<(String, String)>| {
        let (value, from) = match v {
            Some((v, from)) => (Some(v), Some(from)),
            None => (None, None),
        };
        rows.push(SettingRow { key: key.into(), value, from });
    };
    push("root-password", pick(&b, |s| s.root_password.as_ref().map(|_| MASK.to_string())));
    push("device-user", pick(&b, |s| s.device_user.clone()));
    push("device-user password", pick(&b, |s| s.device_user_password.as_ref().map(|_| MASK.to_string())));
    push("agent", pick(&b, |s| s.agent.agent_type.clone()));
    push("agent install-requirements", pick(&b, |s| s.agent.install_requirements.map(|v| v.to_string())));
    push("agent job-on-create", pick(&b, |s| s.agent.job_on_create.clone()));
    push("agent operation-mode", pick(&b, |s| s.agent.operation_mode.clone()));
    push("custom-config", pick(&b, |s| s.custom_config.as_ref().map(|c| custom_text(f, c))));
    push(
        "versions",
        pick(&b, |s| {
            s.versions.as_ref().map(|v| if v.is_empty() { "(any)".to_string() } else { v.join(", ") })
        }),
    );
    push("image", pick(&b, |s| s.image.as_ref().map(|i| resource_ref(f, &i.source, true))));
    push("dual-routing-engine", pick(&b, |s| s.dual_routing_engine.map(|v| v.to_string())));
    rows
}

fn custom_text(f: &Fabric, c: &Resource) -> String {
    match c {
        Resource::Url(u) => u.clone(),
        Resource::Local(l) => format!("{} (tftp/{})", l.rel, resource_ref(f, c, false)),
    }
}

fn image_report(f: &Fabric, d: Option<&Device>, p: Platform) -> ImageReport {
    match pick(&blocks(f, d, p), |s| s.image.clone()) {
        Some((img, from)) => ImageReport {
            image: Some(resource_ref(f, &img.source, true)),
            sha256: img.sha256.clone(),
            size: img.size,
            file: match &img.source {
                Resource::Local(l) => Some(l.rel.clone()),
                Resource::Url(_) => None,
            },
            from: Some(from),
        },
        None => ImageReport { image: None, sha256: None, size: None, file: None, from: None },
    }
}

fn controller(f: &Fabric) -> Option<ControllerReport> {
    f.controller.as_ref().map(|c| ControllerReport {
        url: c.url.clone(),
        user: c.user.clone(),
        password: MASK.into(),
    })
}

/// Those of `names` that are sections of the fabric's ztp.json.
fn existing_sections(f: &Fabric, names: Vec<String>) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(&ztp_json::render(f)).unwrap_or_default();
    names.into_iter().filter(|n| doc.get(n).is_some()).collect()
}

/// Parse a whole command line (`ztpc explain ...`) and [`run`] it; a usage error is
/// written to `err` and gives 2. For tests and embedding.
pub fn run_argv<S: AsRef<str>>(argv: &[S], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    use clap::Parser;
    match crate::cli::Cli::try_parse_from(argv.iter().map(AsRef::as_ref)) {
        Ok(crate::cli::Cli { command: crate::cli::Command::Explain(args) }) => run(&args, out, err),
        Ok(_) => {
            let _ = writeln!(err, "error: not an explain command line");
            2
        }
        Err(e) => {
            let _ = write!(err, "{e}");
            u8::try_from(e.exit_code()).unwrap_or(2)
        }
    }
}

/// `ztpc explain` as the CLI runs it, writing to `out` and `err`; returns the exit code
/// (0 ok, 1 fabric errors or no such device, 2 usage or I/O problem).
pub fn run(args: &ExplainArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let c = &args.common;
    let query = match (args.query.as_deref().filter(|q| *q != "-"), args.dhcp_request.is_empty()) {
        (Some(_), false) => {
            let _ = writeln!(err, "error: give a QUERY or --dhcp-request options, not both");
            return 2;
        }
        (None, true) => {
            let _ = writeln!(err, "error: give a device name, MAC or serial, or --dhcp-request OPT=VALUE");
            return 2;
        }
        (Some(q), true) => Query::Device(q.to_string()),
        (None, false) => match Request::parse(&args.dhcp_request) {
            Ok(r) => Query::Request(r),
            Err(e) => {
                let _ = writeln!(err, "error: --dhcp-request: {e}");
                return 2;
            }
        },
    };
    let fabric = match load_checked(c, err) {
        Ok((f, _)) => f,
        Err(code) => return code,
    };
    let e = match explain(&fabric, &query) {
        Ok(e) => e,
        Err(msg) => {
            let _ = writeln!(err, "error: {msg}");
            return 1;
        }
    };
    let rendered = match args.format {
        Format::Text => text::render(&e),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&e).unwrap_or_default();
            s.push('\n');
            s
        }
    };
    match out.write_all(rendered.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: writing the explanation: {e}");
            2
        }
    }
}

/// Read, parse and validate the fabric, writing diagnostics to `err`; the model and the
/// fabric's directory, or the exit code (1 fabric errors, 2 I/O).
pub(crate) fn load_checked(c: &Common, err: &mut dyn Write) -> Result<(Fabric, std::path::PathBuf), u8> {
    let text = match std::fs::read_to_string(&c.fabric) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "error: cannot read {}: {e}", c.fabric.display());
            return Err(2);
        }
    };
    let mut env = std::collections::HashMap::new();
    if let Some(path) = &c.env_file {
        match std::fs::read_to_string(path) {
            Ok(t) => env = crate::cli::parse_env_file(&t),
            Err(e) => {
                let _ = writeln!(err, "error: cannot read env file {}: {e}", path.display());
                return Err(2);
            }
        }
    }
    let lookup = |k: &str| std::env::var(k).ok().or_else(|| env.get(k).cloned());
    let base_dir = match c.fabric.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut outcome = crate::check(&text, &Host { base_dir: base_dir.clone(), env: &lookup });
    if c.deny_warnings {
        outcome.diagnostics.deny_warnings();
    }
    if !outcome.diagnostics.items().is_empty() {
        let color = match c.color {
            crate::cli::Color::Always => true,
            crate::cli::Color::Never => false,
            crate::cli::Color::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        let width = if color { 120 } else { RenderStyle::PLAIN.width };
        let name = c.fabric.display().to_string();
        let _ =
            write!(err, "{}", diag::render(&outcome.diagnostics, &name, &text, RenderStyle { color, width }));
    }
    match outcome.fabric {
        Some(f) if !outcome.diagnostics.has_errors() => Ok((f, base_dir)),
        _ => Err(1),
    }
}

/// `ztpc diff FABRIC -o DIR` as the CLI runs it: 0 whether or not anything would change,
/// 1 fabric errors, 2 usage or I/O problem (DIR missing or unreadable).
pub fn run_diff(c: &Common, dir: &std::path::Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (fabric, base_dir) = match load_checked(c, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let old = match diff::read_dir_tree(dir) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "error: cannot read {}: {e}", dir.display());
            return 2;
        }
    };
    let opts = crate::BuildOptions { fabric_dir_from_out: crate::cli::relative_from(dir, &base_dir) };
    let new = match crate::render::render(&fabric, &opts) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let report = diff::diff(&fabric, &new, &old);
    match out.write_all(report.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}
