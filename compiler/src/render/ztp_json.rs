//! tftp/ztp.json in Apstra's schema (reference/apstra-ztp.md §1): `defaults`, then a
//! section per platform, per model and per serial, each with Apstra's exact key names.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::model::{Agent, Fabric, Settings};
use crate::platform::Platform;
use crate::render::resource_ref;

pub fn render(f: &Fabric) -> String {
    let mut doc = Map::new();
    doc.insert(
        "defaults".into(),
        Value::Object(section(f, &f.defaults, &Platform::ALL, &Agent::default(), None)),
    );
    for (p, s) in &f.platforms {
        let m = section(f, s, &[*p], &f.defaults.agent, Some(*p));
        doc.insert(p.name().into(), Value::Object(m));
    }
    for (model, s) in &f.models {
        // A model's version and image keys are named for the platforms of the devices
        // that use it; a model no device uses gets keys for every platform.
        let used: BTreeSet<Platform> =
            f.devices.iter().filter(|d| d.model.as_deref() == Some(model)).map(|d| d.platform).collect();
        let platforms: Vec<Platform> =
            if used.is_empty() { Platform::ALL.to_vec() } else { used.into_iter().collect() };
        let only = (platforms.len() == 1).then(|| platforms[0]);
        let base = match only {
            Some(p) => agent_base(f, p),
            None => f.defaults.agent.clone(),
        };
        doc.insert(model.clone(), Value::Object(section(f, s, &platforms, &base, only)));
    }
    let mut serials: Vec<(&str, Map<String, Value>)> = Vec::new();
    for d in &f.devices {
        let Some(serial) = &d.serial else { continue };
        let mut base = agent_base(f, d.platform);
        if let Some(m) = d.model.as_ref().and_then(|m| f.models.get(m)) {
            base = m.agent.over(&base);
        }
        let m = section(f, &d.settings, &[d.platform], &base, Some(d.platform));
        // A device with nothing of its own needs no section: the others apply.
        if !m.is_empty() {
            serials.push((serial, m));
        }
    }
    serials.sort_by(|a, b| a.0.cmp(b.0));
    for (serial, m) in serials {
        doc.insert(serial.to_string(), Value::Object(m));
    }
    let mut s = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    s.push('\n');
    s
}

/// The agent settings a platform section stands on: defaults, then the platform.
fn agent_base(f: &Fabric, p: Platform) -> Agent {
    match f.platforms.get(&p) {
        Some(s) => s.agent.over(&f.defaults.agent),
        None => f.defaults.agent.clone(),
    }
}

fn section(
    f: &Fabric,
    s: &Settings,
    platforms: &[Platform],
    agent_base: &Agent,
    platform: Option<Platform>,
) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(v) = &s.versions {
        for p in platforms {
            m.insert(format!("{}-versions", p.ztp_json_prefix()), json!(v));
        }
    }
    if let Some(img) = &s.image {
        for p in platforms {
            m.insert(format!("{}-image", p.ztp_json_prefix()), json!(resource_ref(f, &img.source, true)));
            if let Some(sum) = &img.sha256 {
                m.insert(format!("{}-image-sha256", p.ztp_json_prefix()), json!(sum));
            }
        }
    }
    if let Some(pw) = &s.root_password {
        m.insert("device-root-password".into(), json!(pw.expose()));
    }
    if let Some(u) = &s.device_user {
        m.insert("device-user".into(), json!(u));
    }
    if let Some(pw) = &s.device_user_password {
        m.insert("device-user-password".into(), json!(pw.expose()));
    }
    if let Some(c) = &s.custom_config {
        m.insert("custom-config".into(), json!(resource_ref(f, c, false)));
    }
    if let Some(b) = s.dual_routing_engine {
        m.insert("dual-routing-engine".into(), json!(b));
    }
    if !s.agent.is_empty() {
        // Apstra repeats the whole object in every section (its merge depth is not
        // documented), so each section carries the complete merged parameters.
        m.insert("system-agent-params".into(), agent_params(&s.agent.over(agent_base), platform));
    }
    m
}

/// `system-agent-params` as the controller's agent API names them; `platform` only for
/// offbox agents, which the controller runs on the device's behalf.
pub fn agent_params(a: &Agent, platform: Option<Platform>) -> Value {
    let mut m = Map::new();
    if let Some(t) = &a.agent_type {
        m.insert("agent_type".into(), json!(t));
    }
    if let Some(b) = a.install_requirements {
        m.insert("install_requirements".into(), json!(b));
    }
    if let Some(j) = &a.job_on_create {
        m.insert("job_on_create".into(), json!(j));
    }
    if let Some(o) = &a.operation_mode {
        m.insert("operation_mode".into(), json!(o));
    }
    if let (Some("offbox"), Some(p)) = (a.agent_type.as_deref(), platform) {
        // The controller knows Junos EVO as junos.
        let name = if p == Platform::JunosEvo { "junos" } else { p.name() };
        m.insert("platform".into(), json!(name));
    }
    Value::Object(m)
}
