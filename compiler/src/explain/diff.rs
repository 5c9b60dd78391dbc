//! `ztpc diff FABRIC -o DIR`: what rebuilding FABRIC would change in the built DIR, per
//! device (its tftp/devices/ files, its dhcpd.conf host or class block, its ztp.json
//! serial section) and then fabric-wide. Secrets never appear: a changed secret, and any
//! changed file that holds secrets (mode 0600), shows only as "changed".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::model::Fabric;
use crate::render::identity::{self, DhcpIdentity};
use crate::render::{Artifacts, DHCPD_CONF, MODE_SECRET, TFTP_DIR, ZTP_JSON};

/// ztp.json keys that hold secrets.
const SECRET_KEYS: [&str; 2] = ["device-root-password", "device-user-password"];

/// Every regular file under `dir`, relative path → bytes.
pub fn read_dir_tree(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.insert(rel.to_string_lossy().replace('\\', "/"), std::fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

/// The report, as text; "no changes" when the rebuild would write the same bytes.
pub fn diff(f: &Fabric, new: &Artifacts, old: &BTreeMap<String, Vec<u8>>) -> String {
    let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut fabric_wide = Vec::new();
    // Which device owns a dhcpd block, a ztp.json section, a devices/ file.
    let mut block_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut section_owner: BTreeMap<String, String> = BTreeMap::new();
    for d in &f.devices {
        let block = match identity::dhcp_identity(d) {
            DhcpIdentity::Mac(_) => format!("host {}", d.name),
            _ => format!("class \"{}\"", identity::device_class(d)),
        };
        block_owner.insert(block, d.name.clone());
        if let Some(s) = &d.serial {
            section_owner.insert(s.clone(), d.name.clone());
        }
    }
    let device_of_path = |p: &str| -> Option<String> {
        let rest = p.strip_prefix(&format!("{TFTP_DIR}/devices/"))?;
        Some(rest.split('.').next().unwrap_or(rest).to_string())
    };

    let paths: BTreeSet<&String> = new.keys().chain(old.keys()).collect();
    for p in paths {
        let (n, o) = (new.get(p), old.get(p));
        let line = match (n, o) {
            (Some(_), None) => format!("{p}: added"),
            (None, Some(_)) => format!("{p}: removed"),
            (Some(n), Some(o)) if n.bytes == *o => continue,
            (Some(n), Some(o)) => {
                if p == DHCPD_CONF {
                    dhcpd_blocks(&n.bytes, o, &block_owner, &mut per, &mut fabric_wide);
                    continue;
                }
                if *p == format!("{TFTP_DIR}/{ZTP_JSON}") {
                    ztp_sections(&n.bytes, o, &section_owner, &mut per, &mut fabric_wide);
                    continue;
                }
                let differ = line_diff(&String::from_utf8_lossy(o), &String::from_utf8_lossy(&n.bytes)).len();
                let secret = if n.mode == MODE_SECRET { ", holds secrets" } else { "" };
                format!("{p}: changed ({differ} lines differ{secret})")
            }
            (None, None) => continue,
        };
        match device_of_path(p) {
            Some(d) => per.entry(d).or_default().push(line),
            None => fabric_wide.push(line),
        }
    }
    let mut o = String::new();
    if per.is_empty() && fabric_wide.is_empty() {
        o.push_str("no changes\n");
        return o;
    }
    for (d, lines) in &per {
        let known = f.devices.iter().any(|x| &x.name == d);
        let _ = writeln!(o, "device {d}{}", if known { "" } else { " (no longer in the fabric)" });
        for l in lines {
            let _ = writeln!(o, "  {l}");
        }
    }
    if !fabric_wide.is_empty() {
        let _ = writeln!(o, "fabric-wide");
        for l in &fabric_wide {
            let _ = writeln!(o, "  {l}");
        }
    }
    o
}

/// Lines only in `old` (`- `) and only in `new` (`+ `), in order.
fn line_diff(old: &str, new: &str) -> Vec<String> {
    let o: BTreeSet<&str> = old.lines().collect();
    let n: BTreeSet<&str> = new.lines().collect();
    let mut v: Vec<String> =
        old.lines().filter(|l| !n.contains(l)).map(|l| format!("- {}", l.trim())).collect();
    v.extend(new.lines().filter(|l| !o.contains(l)).map(|l| format!("+ {}", l.trim())));
    v
}

/// dhcpd.conf's `host NAME {...}` and `class "NAME" {...}` blocks by name, the rest as one.
fn blocks(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = String::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let t = l.trim();
        let name = t
            .strip_suffix(" {")
            .filter(|h| h.starts_with("host ") || h.starts_with("class "))
            .map(str::to_string);
        match name {
            Some(name) => {
                let mut body = String::new();
                for b in lines.by_ref() {
                    if b.trim() == "}" {
                        break;
                    }
                    body.push_str(b);
                    body.push('\n');
                }
                out.insert(name, body);
            }
            None => {
                rest.push_str(l);
                rest.push('\n');
            }
        }
    }
    out.insert(String::new(), rest);
    out
}

fn dhcpd_blocks(
    new: &[u8],
    old: &[u8],
    owner: &BTreeMap<String, String>,
    per: &mut BTreeMap<String, Vec<String>>,
    fabric_wide: &mut Vec<String>,
) {
    let (n, o) = (blocks(&String::from_utf8_lossy(new)), blocks(&String::from_utf8_lossy(old)));
    let names: BTreeSet<&String> = n.keys().chain(o.keys()).collect();
    for name in names {
        let label = if name.is_empty() { "the rest".to_string() } else { name.clone() };
        let (a, b) = (o.get(name), n.get(name));
        let mut lines = match (a, b) {
            (None, Some(_)) => vec![format!("dhcpd.conf {label}: added")],
            (Some(_), None) => vec![format!("dhcpd.conf {label}: removed")],
            (Some(a), Some(b)) if a != b => {
                let mut v = vec![format!("dhcpd.conf {label}: changed")];
                v.extend(line_diff(a, b).into_iter().map(|l| format!("  {l}")));
                v
            }
            _ => continue,
        };
        // A removed device's block names it even though the fabric no longer does.
        let dev = owner.get(name).cloned().or_else(|| {
            name.strip_prefix("host ")
                .map(str::to_string)
                .or_else(|| name.strip_prefix("class \"device-").map(|x| x.trim_end_matches('"').to_string()))
        });
        match dev {
            Some(d) => per.entry(d).or_default().append(&mut lines),
            None => fabric_wide.append(&mut lines),
        }
    }
}

fn ztp_sections(
    new: &[u8],
    old: &[u8],
    owner: &BTreeMap<String, String>,
    per: &mut BTreeMap<String, Vec<String>>,
    fabric_wide: &mut Vec<String>,
) {
    let parse = |b: &[u8]| match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (n, o) = (parse(new), parse(old));
    let names: BTreeSet<&String> = n.keys().chain(o.keys()).collect();
    for name in names {
        let (a, b) = (o.get(name), n.get(name));
        let mut lines = match (a, b) {
            (None, Some(_)) => vec![format!("ztp.json section \"{name}\": added")],
            (Some(_), None) => vec![format!("ztp.json section \"{name}\": removed")],
            (Some(a), Some(b)) if a != b => {
                let empty = serde_json::Map::new();
                let (a, b) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                let mut v = vec![format!("ztp.json section \"{name}\": changed")];
                for k in keys {
                    let (x, y) = (a.get(k), b.get(k));
                    if x == y {
                        continue;
                    }
                    let show = |v: Option<&Value>| match v {
                        None => "(unset)".to_string(),
                        Some(_) if SECRET_KEYS.contains(&k.as_str()) => crate::explain::MASK.to_string(),
                        Some(v) => v.to_string(),
                    };
                    if SECRET_KEYS.contains(&k.as_str()) && x.is_some() && y.is_some() {
                        v.push(format!("  {k}: changed"));
                    } else {
                        v.push(format!("  {k}: {} -> {}", show(x), show(y)));
                    }
                }
                v
            }
            _ => continue,
        };
        match owner.get(name) {
            Some(d) => per.entry(d.clone()).or_default().append(&mut lines),
            None => fabric_wide.append(&mut lines),
        }
    }
}
