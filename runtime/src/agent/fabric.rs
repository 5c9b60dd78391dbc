//! What the fabric says about one device's agent: its merged `device-user`,
//! `device-user-password` and `system-agent-params`, read from the generation's own
//! ztp.json with Apstra's precedence (serial > model > platform > defaults,
//! reference/apstra-ztp.md §1.1), the device found in the manifest by its address or
//! its serial. The same data the device's script merged, so the two agree.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::request::AGENT_FIELDS;
use super::secret::Secret;
use crate::generation::{Generation, Served};

#[derive(Debug, Clone, Default)]
pub struct DeviceSettings {
    /// The manifest's name for the device, when it is a declared device.
    pub name: Option<String>,
    /// The platform the lookups used (`junos-evo`, `nxos`, ...), if known.
    pub platform: Option<String>,
    pub device_user: Option<String>,
    pub device_user_password: Option<Secret>,
    /// Merged `system-agent-params`, agent fields only (no credentials).
    pub agent_params: Map<String, Value>,
}

/// Settings for the device at `ip` (or with serial `system_id`). `platform_hint` is
/// used when the manifest does not know the device (the platform its reports gave, or
/// the only platform that uses the request's form).
pub fn settings_for(
    g: &Generation,
    ip: IpAddr,
    system_id: Option<&str>,
    platform_hint: Option<&str>,
) -> DeviceSettings {
    let m = &g.manifest;
    let device = m
        .devices
        .iter()
        .find(|d| d.address.is_some_and(|a| IpAddr::V4(a) == ip))
        .or_else(|| system_id.and_then(|s| m.devices.iter().find(|d| d.serial.as_deref() == Some(s))));
    let platform =
        device.map(|d| d.platform.name().to_string()).or_else(|| platform_hint.map(str::to_string));
    let model = device.and_then(|d| d.model.clone());
    let serial = system_id.map(str::to_string).or_else(|| device.and_then(|d| d.serial.clone()));
    let mut out = DeviceSettings { name: device.map(|d| d.name.clone()), platform, ..Default::default() };
    let Some(doc) = ztp_json(g) else { return out };
    let sections = [Some("defaults"), out.platform.as_deref(), model.as_deref(), serial.as_deref()];
    for name in sections.into_iter().flatten() {
        let Some(Value::Object(sec)) = doc.get(name) else { continue };
        if let Some(Value::String(u)) = sec.get("device-user") {
            out.device_user = Some(u.clone());
        }
        if let Some(Value::String(p)) = sec.get("device-user-password") {
            out.device_user_password = Some(Secret::new(p.clone()));
        }
        if let Some(Value::Object(params)) = sec.get("system-agent-params") {
            for (k, v) in params {
                if AGENT_FIELDS.contains(&k.as_str()) && !v.is_null() {
                    out.agent_params.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// Every password the served ztp.json holds (device-user and root passwords of every
/// section), to scrub from anything a controller says back.
pub fn secrets(g: &Generation) -> Vec<Secret> {
    let mut out: Vec<Secret> = Vec::new();
    for sec in ztp_json(g).into_iter().flat_map(|m| m.into_iter().map(|(_, v)| v)) {
        for key in ["device-user-password", "device-root-password"] {
            if let Some(Value::String(p)) = sec.get(key) {
                let p = Secret::new(p.clone());
                if !p.is_empty() && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

fn ztp_json(g: &Generation) -> Option<Map<String, Value>> {
    match g.get("ztp.json")? {
        Served::Tree(f) => match serde_json::from_slice(&f.read_all().ok()?) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        Served::Image(_) => None,
    }
}

/// The controller's name for a platform of an offbox agent (it knows Junos EVO as junos).
pub fn controller_platform(platform: &str) -> &str {
    match platform {
        "junos-evo" => "junos",
        p => p,
    }
}
