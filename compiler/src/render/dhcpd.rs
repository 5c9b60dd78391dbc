//! ISC dhcpd.conf in the layout Apstra ZTP 4.2 ships (reference/apstra-ztp.md §2).

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::model::{Device, DhcpOptions, Fabric};
use crate::platform::{BootOption, Platform};
use crate::render::identity::{self, DhcpIdentity};
use crate::render::{boot_value, isc_data};

pub fn render(f: &Fabric) -> String {
    let mut o = String::new();
    let w = &mut o;
    line(w, 0, &format!("# dhcpd.conf for fabric \"{}\", written by ztpc from the fabric file.", f.name));
    line(w, 0, "# Do not edit: change the fabric file and rebuild. Check with `dhcpd -t -cf dhcpd.conf`.");
    line(w, 0, "");
    line(w, 0, "# Junos reads its script name from option 43 sub-option 1 (config-file-name).");
    line(w, 0, "option space JUNIPER;");
    line(w, 0, "option JUNIPER.image-file-name code 0 = text;");
    line(w, 0, "option JUNIPER.config-file-name code 1 = text;");
    line(w, 0, "option JUNIPER.image-file-type code 2 = text;");
    line(w, 0, "option JUNIPER.transfer-mode code 3 = text;");
    line(w, 0, "option JUNIPER.alt-image-file-name code 4 = text;");
    line(w, 0, "option JUNIPER.http-port code 5 = text;");
    line(w, 0, "option JUNIPER-encapsulation code 43 = encapsulate JUNIPER;");
    line(w, 0, "");
    line(w, 0, "# SONiC and Cumulus read a script URL from option 239.");
    line(w, 0, "option ztp-provision-url code 239 = text;");
    line(w, 0, "");
    let classed: Vec<&Device> = f.devices.iter().filter(|d| identity::by_class(d)).collect();
    if !classed.is_empty() {
        line(w, 0, "# Devices recognised by relay location (option 82) or serial. They come before");
        line(w, 0, "# the pools that name them and the platform classes, so that their own script wins.");
    }
    for d in &classed {
        let test = match identity::dhcp_identity(d) {
            DhcpIdentity::Location(l) => identity::location_match_isc(l),
            DhcpIdentity::Serial(s) => identity::serial_match_isc(d.platform, s),
            _ => continue,
        };
        line(w, 0, &format!("class \"{}\" {{", identity::device_class(d)));
        line(w, 1, &format!("match if {test};"));
        line(w, 1, &format!("option host-name \"{}\";", d.name));
        boot(w, 1, f, d.platform, &d.platform.device_script_path(&d.name));
        line(w, 0, "}");
    }
    if !classed.is_empty() {
        line(w, 0, "");
    }
    if !f.dhcp.subnets.iter().any(|s| s.cidr.contains(f.server.address)) {
        line(w, 0, "# Step 1: this server's own segment is not served (devices come through relays);");
        line(w, 0, "# an empty declaration lets dhcpd listen anyway (Apstra ships the same stub).");
        line(w, 0, "subnet 0.0.0.0 netmask 0.0.0.0 {");
        line(w, 0, "}");
        line(w, 0, "");
    }
    line(w, 0, "# Step 2: the served subnets and the devices, under this ZTP server.");
    line(w, 0, "group {");
    line(w, 1, &format!("option tftp-server-name \"{}\";", f.server.address));
    for sub in &f.dhcp.subnets {
        line(w, 0, "");
        line(w, 1, &format!("subnet {} netmask {} {{", sub.cidr.network, sub.cidr.mask()));
        if let Some(r) = sub.router {
            line(w, 2, &format!("option routers {r};"));
        }
        options(w, 2, &sub.options);
        // Devices recognised by a class (location, serial) get their address from a
        // one-address pool only they may use; general pools deny them.
        let pinned: Vec<&Device> = f
            .devices
            .iter()
            .filter(|d| identity::by_class(d) && d.address.is_some_and(|a| sub.cidr.contains(a)))
            .collect();
        for p in &sub.pools {
            line(w, 2, "pool {");
            for d in &pinned {
                line(w, 3, &format!("deny members of \"{}\";", identity::device_class(d)));
            }
            line(w, 3, &format!("range {} {};", p.first, p.last));
            line(w, 2, "}");
        }
        for d in &pinned {
            let a = d.address.unwrap_or(Ipv4Addr::UNSPECIFIED);
            line(w, 2, &format!("pool {{ # {}", d.name));
            line(w, 3, &format!("allow members of \"{}\";", identity::device_class(d)));
            line(w, 3, &format!("range {a} {a};"));
            line(w, 2, "}");
        }
        line(w, 1, "}");
    }
    for d in &f.devices {
        let DhcpIdentity::Mac(mac) = identity::dhcp_identity(d) else { continue };
        line(w, 0, "");
        line(w, 1, &format!("host {} {{", d.name));
        line(w, 2, &format!("hardware ethernet {mac};"));
        if let Some(a) = d.address {
            line(w, 2, &format!("fixed-address {a};"));
        }
        line(w, 2, &format!("option host-name \"{}\";", d.name));
        boot(w, 2, f, d.platform, &d.platform.device_script_path(&d.name));
        line(w, 1, "}");
    }
    line(w, 0, "}");
    line(w, 0, "");
    line(w, 0, "# Step 3: options for every client.");
    line(w, 0, "ddns-update-style none;");
    options(w, 0, &f.dhcp.options);
    line(w, 0, "");
    line(w, 0, "# Devices log through syslog local7, as Apstra's status service expects.");
    line(w, 0, "log-facility local7;");
    line(w, 0, "");
    line(w, 0, "# NX-OS POAP needs leases of at least 3600 s.");
    line(w, 0, &format!("default-lease-time {};", f.dhcp.lease_time));
    line(w, 0, &format!("max-lease-time {};", f.dhcp.max_lease_time));
    line(w, 0, "");
    line(w, 0, "# Platform classes: each NOS gets the option it reads (reference/nos-dhcp.md).");
    for p in Platform::ALL {
        line(w, 0, &format!("class \"{}\" {{", p.dhcp_class()));
        line(w, 1, &format!("match if {};", identity::platform_match_isc(p)));
        boot(w, 1, f, p, &p.script_path());
        line(w, 0, "}");
    }
    o
}

fn line(w: &mut String, indent: usize, s: &str) {
    if s.is_empty() {
        w.push('\n');
    } else {
        let _ = writeln!(w, "{:width$}{s}", "", width = indent * 4);
    }
}

fn options(w: &mut String, indent: usize, o: &DhcpOptions) {
    if let Some(d) = &o.domain_name {
        line(w, indent, &format!("option domain-name {};", isc_data(d)));
    }
    if let Some(list) = &o.domain_search {
        let v: Vec<String> = list.iter().map(|s| isc_data(s)).collect();
        line(w, indent, &format!("option domain-search {};", v.join(", ")));
    }
    if let Some(list) = &o.dns {
        line(w, indent, &format!("option domain-name-servers {};", join(list)));
    }
    if let Some(list) = &o.ntp {
        line(w, indent, &format!("option ntp-servers {};", join(list)));
    }
}

fn join(list: &[Ipv4Addr]) -> String {
    list.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

fn boot(w: &mut String, indent: usize, f: &Fabric, p: Platform, path: &str) {
    let v = boot_value(f, p, path);
    let stmt = match p.boot_option() {
        BootOption::JuniperConfigFile => format!("option JUNIPER.config-file-name {};", isc_data(&v)),
        BootOption::BootfileName => format!("option bootfile-name {};", isc_data(&v)),
        BootOption::ProvisionUrl => format!("option ztp-provision-url {};", isc_data(&v)),
    };
    line(w, indent, &stmt);
}
