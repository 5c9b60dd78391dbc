//! kea-dhcp4.json: the same scope, classes and reservations as dhcpd.conf, for Kea 2.x
//! (Apstra ZTP 5.x's DHCP server; reference/apstra-ztp.md §2.3).

use serde_json::{Map, Value, json};

use crate::model::{Device, DhcpOptions, Fabric};
use crate::platform::{BootOption, Platform};
use crate::render::boot_value;
use crate::render::identity::{self, DhcpIdentity};

/// The class that general pools are limited to when some devices own one-address pools,
/// so that those devices never draw from the general pools.
const UNRESERVED: &str = "ztp-unreserved";

pub fn render(f: &Fabric) -> String {
    let classed: Vec<&Device> = f.devices.iter().filter(|d| identity::by_class(d)).collect();
    let mut classes: Vec<Value> = Vec::new();
    for d in &classed {
        let test = match identity::dhcp_identity(d) {
            DhcpIdentity::Location(l) => identity::location_match_kea(l),
            DhcpIdentity::Serial(s) => identity::serial_match_kea(d.platform, s),
            _ => continue,
        };
        let mut opts = boot(f, d.platform, &d.platform.device_script_path(&d.name));
        opts.push(json!({"name": "host-name", "data": d.name}));
        classes.push(json!({"name": identity::device_class(d), "test": test, "option-data": opts}));
    }
    let pinned: Vec<&&Device> = classed.iter().filter(|d| d.address.is_some()).collect();
    if !pinned.is_empty() {
        let members: Vec<String> =
            pinned.iter().map(|d| format!("member('{}')", identity::device_class(d))).collect();
        classes.push(json!({"name": UNRESERVED, "test": format!("not ({})", members.join(" or "))}));
    }
    for p in Platform::ALL {
        classes.push(json!({
            "name": p.dhcp_class(),
            "test": identity::platform_match_kea(p),
            "option-data": boot(f, p, &p.script_path()),
        }));
    }

    let mut subnets = Vec::new();
    for (i, sub) in f.dhcp.subnets.iter().enumerate() {
        let mut pools: Vec<Value> = Vec::new();
        for d in pinned.iter().filter(|d| d.address.is_some_and(|a| sub.cidr.contains(a))) {
            let a = d.address.map(|a| a.to_string()).unwrap_or_default();
            pools.push(json!({"pool": format!("{a} - {a}"), "client-class": identity::device_class(d)}));
        }
        for p in &sub.pools {
            let mut pool = Map::new();
            pool.insert("pool".into(), json!(format!("{} - {}", p.first, p.last)));
            if !pinned.is_empty() {
                pool.insert("client-class".into(), json!(UNRESERVED));
            }
            pools.push(Value::Object(pool));
        }
        let mut opts = options(&sub.options);
        if let Some(r) = sub.router {
            opts.insert(0, json!({"name": "routers", "data": r.to_string()}));
        }
        let reservations: Vec<Value> = f
            .devices
            .iter()
            .filter(|d| d.address.is_some_and(|a| sub.cidr.contains(a)))
            .filter_map(|d| reservation(f, d))
            .collect();
        let mut s = Map::new();
        s.insert("id".into(), json!(i + 1));
        s.insert("subnet".into(), json!(sub.cidr.to_string()));
        s.insert("pools".into(), Value::Array(pools));
        if !opts.is_empty() {
            s.insert("option-data".into(), Value::Array(opts));
        }
        if !reservations.is_empty() {
            s.insert("reservations".into(), Value::Array(reservations));
        }
        subnets.push(Value::Object(s));
    }
    // MAC-identified devices without an address may boot in any subnet: global reservations.
    let global: Vec<Value> =
        f.devices.iter().filter(|d| d.address.is_none()).filter_map(|d| reservation(f, d)).collect();

    let mut global_opts = options(&f.dhcp.options);
    global_opts.push(json!({"name": "tftp-server-name", "data": f.server.address.to_string()}));
    let doc = json!({
        "Dhcp4": {
            "interfaces-config": {"interfaces": f.dhcp.interfaces},
            "lease-database": {"type": "memfile", "persist": true, "lfc-interval": 3600},
            "valid-lifetime": f.dhcp.lease_time,
            "max-valid-lifetime": f.dhcp.max_lease_time,
            "reservations-global": true,
            "reservations-in-subnet": true,
            // Kea 2.2 echoes a host name the client sends (option 12; SONiC sends
            // `sonic`, Cumulus `cumulus`), DDNS or not, and adds that echo before the
            // configured options, so it wins over a device class's host-name. dhcpd and
            // ztp-runtime send the device's name or nothing. Scrubbing every character
            // of a client-sent name leaves Kea an empty one, which it cannot send (it
            // logs DHCP4_CLIENT_NAME_PROC_FAIL at debug level and moves on); the class's
            // host-name (or nothing) then goes out, as from dhcpd. A reserved host name
            // is sent before this step and is not scrubbed. Checked against the real
            // Kea by tests/tests/three_way.rs.
            "hostname-char-set": ".",
            "hostname-char-replacement": "",
            "option-def": option_defs(),
            "option-data": global_opts,
            "client-classes": classes,
            "reservations": global,
            "subnet4": subnets,
            "loggers": [{
                "name": "kea-dhcp4",
                "output_options": [{"output": "syslog:local7"}],
                "severity": "INFO"
            }]
        }
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn option_defs() -> Value {
    let junos = [
        "image-file-name",
        "config-file-name",
        "image-file-type",
        "transfer-mode",
        "alt-image-file-name",
        "http-port",
    ];
    let mut defs: Vec<Value> = junos
        .iter()
        .enumerate()
        .map(|(code, name)| {
            json!({"name": name, "code": code, "space": "vendor-encapsulated-options-space", "type": "string"})
        })
        .collect();
    defs.push(json!({"name": "ztp-provision-url", "code": 239, "space": "dhcp4", "type": "string"}));
    Value::Array(defs)
}

fn options(o: &DhcpOptions) -> Vec<Value> {
    let mut v = Vec::new();
    if let Some(d) = &o.domain_name {
        v.push(json!({"name": "domain-name", "data": d}));
    }
    if let Some(l) = &o.domain_search {
        v.push(json!({"name": "domain-search", "data": l.join(", ")}));
    }
    if let Some(l) = &o.dns {
        v.push(json!({"name": "domain-name-servers", "data": addrs(l)}));
    }
    if let Some(l) = &o.ntp {
        v.push(json!({"name": "ntp-servers", "data": addrs(l)}));
    }
    v
}

fn addrs(l: &[std::net::Ipv4Addr]) -> String {
    l.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// Option data that points a platform's NOS at a script.
fn boot(f: &Fabric, p: Platform, path: &str) -> Vec<Value> {
    let v = boot_value(f, p, path);
    match p.boot_option() {
        BootOption::JuniperConfigFile => vec![
            json!({"name": "vendor-encapsulated-options"}),
            json!({"name": "config-file-name", "space": "vendor-encapsulated-options-space", "data": v}),
        ],
        BootOption::BootfileName => vec![json!({"name": "boot-file-name", "data": v})],
        BootOption::ProvisionUrl => vec![json!({"name": "ztp-provision-url", "data": v})],
    }
}

/// A host reservation by MAC, with the device's own script.
fn reservation(f: &Fabric, d: &Device) -> Option<Value> {
    let DhcpIdentity::Mac(mac) = identity::dhcp_identity(d) else { return None };
    let mut r = Map::new();
    r.insert("hw-address".into(), json!(mac.to_string()));
    if let Some(a) = d.address {
        r.insert("ip-address".into(), json!(a.to_string()));
    }
    r.insert("hostname".into(), json!(d.name));
    r.insert(
        "option-data".into(),
        Value::Array(boot(f, d.platform, &d.platform.device_script_path(&d.name))),
    );
    Some(Value::Object(r))
}
