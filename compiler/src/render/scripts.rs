//! Bootstrap scripts, per platform and per device, rendered from minijinja templates
//! embedded in the binary (templates/scripts/, contract in templates/README.md).

use minijinja::{Environment, UndefinedBehavior, Value, context};
use rayon::prelude::*;
use serde::Serialize;

use crate::merge;
use crate::model::{Device, Fabric, Resource, Settings};
use crate::platform::Platform;
use crate::render::{Artifact, MODE_SCRIPT, MODE_SECRET, resource_ref};

const TEMPLATES: [(Platform, &str); 6] = [
    (Platform::Junos, include_str!("../../templates/scripts/junos.sh.j2")),
    (Platform::JunosEvo, include_str!("../../templates/scripts/junos-evo.py.j2")),
    (Platform::Eos, include_str!("../../templates/scripts/eos.sh.j2")),
    (Platform::Nxos, include_str!("../../templates/scripts/nxos.py.j2")),
    (Platform::Sonic, include_str!("../../templates/scripts/sonic.sh.j2")),
    (Platform::Cumulus, include_str!("../../templates/scripts/cumulus.sh.j2")),
];

/// Where each rendered script goes: its path in the served tree and the file.
pub type Put<'a> = dyn Fn(String, Artifact) -> Result<(), String> + Sync + 'a;

/// Render the six platform scripts and one script per device, handing each to `put`.
pub fn render(f: &Fabric, put: &Put) -> Result<(), String> {
    let env = environment()?;
    let base = f.server.base_url();
    let common = context! {
        fabric => context! { name => f.name.clone() },
        server => context! { address => f.server.address.to_string(), base_url => base.clone() },
        urls => context! {
            ztp_json => format!("{base}/ztp.json"),
            report => format!("{base}/api/ztp/device/log"),
            create_agent => format!("{base}/api/ztp/create_agent"),
        },
    };
    for p in Platform::ALL {
        let ctx = context! { platform => p.name(), device => Value::from(()), settings => Value::from(()), ..common.clone() };
        put_script(put, p, p.script_path(), render_one(&env, p, ctx)?, MODE_SCRIPT)?;
    }
    // Device scripts are independent of each other and are most of a large build's
    // work (10,000 devices: 150 MB of text), so they render on every core, each going to
    // `put` as soon as it is made rather than all being held until the end.
    f.devices.par_iter().try_for_each(|d| {
        let s = merge::effective(f, d);
        let ctx = context! {
            platform => d.platform.name(),
            device => device_ctx(d),
            settings => settings_ctx(f, d.platform, &s),
            ..common.clone()
        };
        let text = render_one(&env, d.platform, ctx)?;
        // Device scripts carry that device's passwords: owner-only.
        put_script(put, d.platform, d.platform.device_script_path(&d.name), text, MODE_SECRET)
    })
}

fn environment() -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // Jinja's default drops the template's final newline; scripts must end with one.
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| e.to_string())?;
    env.set_syntax(syntax);
    env.add_filter("shquote", shquote);
    for (p, src) in TEMPLATES {
        env.add_template(p.name(), src).map_err(|e| format!("template {}: {e:#}", p.name()))?;
    }
    Ok(env)
}

fn render_one(env: &Environment, p: Platform, ctx: Value) -> Result<Vec<u8>, String> {
    let t = env.get_template(p.name()).map_err(|e| e.to_string())?;
    // minijinja sizes its output buffer from the template, so this does not regrow.
    t.render(ctx).map(String::into_bytes).map_err(|e| format!("rendering the {} script: {e:#}", p.name()))
}

/// POSIX single quoting: the result is one shell word whatever the input holds.
fn shquote(v: Value) -> String {
    if v.is_none() || v.is_undefined() {
        return "''".into();
    }
    let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Hand a script to `put` as the files it becomes: itself, and for NX-OS also its `.md5`.
fn put_script(put: &Put, p: Platform, path: String, mut text: Vec<u8>, mode: u32) -> Result<(), String> {
    if p == Platform::Nxos {
        let md5 = with_poap_md5(&mut text);
        // POAP scripts fetch `<file>.md5` beside a file they verify (nos-dhcp.md, NXPY).
        let name = path.rsplit('/').next().unwrap_or(&path);
        let sum = Artifact { bytes: format!("{md5}  {name}\n").into_bytes(), mode: 0o644 };
        put(format!("{path}.md5"), sum)?;
    }
    put(path, Artifact { bytes: text, mode })
}

/// Where each line starting `#md5sum` begins and ends (after its newline) in `text`.
fn md5sum_lines(text: &[u8]) -> Vec<(usize, usize)> {
    const MARK: &[u8] = b"#md5sum";
    let mut lines = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| start + i + 1);
        if text[start..end].starts_with(MARK) {
            lines.push((start, end));
        }
        start = end;
    }
    lines
}

/// The md5 POAP checks: over the file with every line starting `#md5sum` removed.
pub fn poap_md5(text: &str) -> String {
    poap_md5_bytes(text.as_bytes(), &md5sum_lines(text.as_bytes()))
}

fn poap_md5_bytes(text: &[u8], skip: &[(usize, usize)]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    let mut from = 0;
    for &(start, end) in skip {
        h.update(&text[from..start]);
        from = end;
    }
    h.update(&text[from..]);
    crate::validate::hex(&h.finalize())
}

/// Replace the template's `#md5sum="0"` line(s) with the real digest in place; returns
/// the digest (which the new line does not change, by POAP's rule).
fn with_poap_md5(text: &mut Vec<u8>) -> String {
    let lines = md5sum_lines(text);
    let md5 = poap_md5_bytes(text, &lines);
    let line = format!("#md5sum=\"{md5}\"\n");
    // From the last line back, so the earlier positions stay valid.
    for &(start, end) in lines.iter().rev() {
        text.splice(start..end, line.bytes());
    }
    md5
}

#[derive(Serialize)]
struct DeviceCtx {
    name: String,
    mac: Option<String>,
    serial: Option<String>,
    model: Option<String>,
    address: Option<String>,
}

fn device_ctx(d: &Device) -> Value {
    Value::from(minijinja::value::Serde(DeviceCtx {
        name: d.name.clone(),
        mac: d.mac.map(|m| m.to_string()),
        serial: d.serial.clone(),
        model: d.model.clone(),
        address: d.address.map(|a| a.to_string()),
    }))
}

#[derive(Serialize)]
struct ImageCtx {
    url: String,
    sha256: Option<String>,
}

#[derive(Serialize)]
struct AgentCtx {
    agent_type: Option<String>,
    install_requirements: bool,
    job_on_create: Option<String>,
    operation_mode: Option<String>,
    platform: Option<String>,
}

#[derive(Serialize)]
struct SettingsCtx {
    root_password: Option<String>,
    device_user: Option<String>,
    device_user_password: Option<String>,
    versions: Vec<String>,
    image: Option<ImageCtx>,
    custom_config_url: Option<String>,
    dual_routing_engine: bool,
    agent: Option<AgentCtx>,
}

fn settings_ctx(f: &Fabric, p: Platform, s: &Settings) -> Value {
    let base = f.server.base_url();
    let custom_config_url = s.custom_config.as_ref().map(|c| match c {
        Resource::Url(u) => u.clone(),
        Resource::Local(_) => format!("{base}/{}", resource_ref(f, c, false)),
    });
    let agent = (!s.agent.is_empty()).then(|| AgentCtx {
        agent_type: s.agent.agent_type.clone(),
        install_requirements: s.agent.install_requirements.unwrap_or(false),
        job_on_create: s.agent.job_on_create.clone(),
        operation_mode: s.agent.operation_mode.clone(),
        platform: (s.agent.agent_type.as_deref() == Some("offbox"))
            .then(|| if p == Platform::JunosEvo { "junos" } else { p.name() }.to_string()),
    });
    Value::from(minijinja::value::Serde(SettingsCtx {
        root_password: s.root_password.as_ref().map(|x| x.expose().to_string()),
        device_user: s.device_user.clone(),
        device_user_password: s.device_user_password.as_ref().map(|x| x.expose().to_string()),
        versions: s.versions.clone().unwrap_or_default(),
        image: s
            .image
            .as_ref()
            .map(|i| ImageCtx { url: resource_ref(f, &i.source, true), sha256: i.sha256.clone() }),
        custom_config_url,
        dual_routing_engine: s.dual_routing_engine.unwrap_or(false),
        agent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shquote_survives_quotes() {
        assert_eq!(shquote(Value::from("it's")), r"'it'\''s'");
        assert_eq!(shquote(Value::from(())), "''");
    }

    #[test]
    fn poap_md5_ignores_its_own_line() {
        let a = "#!/bin/env python3\n#md5sum=\"0\"\nprint(1)\n";
        let mut b = a.as_bytes().to_vec();
        let md5 = with_poap_md5(&mut b);
        let b = String::from_utf8(b).unwrap();
        assert_eq!(b, format!("#!/bin/env python3\n#md5sum=\"{md5}\"\nprint(1)\n"));
        assert_eq!(md5, poap_md5(&b));
        assert_eq!(poap_md5(a), poap_md5(&b));
        // md5 of the body without the md5sum line, as `sed '/^#md5sum/d' | md5sum` gives it.
        assert_eq!(poap_md5(a), "f5b9756f29c9414a9e359428ba4e2414");
    }
}
