//! A device's agent request, as `POST /api/ztp/create_agent` (JSON, the ZTP VM's
//! wrapper: reference/apstra-ztp.md §3.3) or, from NX-OS POAP, which can only GET, as
//! `GET /api/ztp/create_agent?management_ip=..&username=..&system_id=..&<agent fields>`
//! with no password. Every field is checked by hand, so an error names the field and
//! never echoes a value (a value might be a password).

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::secret::Secret;

/// The agent fields of the controller's `POST /api/system-agents` body (GOSDK
/// `rawSystemAgentRequest`), less the credentials and the management IP.
pub const AGENT_FIELDS: [&str; 10] = [
    "agent_type",
    "operation_mode",
    "job_on_create",
    "platform",
    "install_requirements",
    "force_package_install",
    "enable_monitor",
    "packages",
    "profile",
    "label",
];

const AGENT_TYPES: [&str; 2] = ["onbox", "offbox"];
const OPERATION_MODES: [&str; 3] = ["full_control", "telemetry_only", "unmanaged"];
const JOB_TYPES: [&str; 6] = ["install", "check", "none", "upgrade", "uninstall", "revertToPristine"];

/// Longest string field (a label, a profile id, a user name).
const MAX_TEXT: usize = 256;
const MAX_PASSWORD: usize = 1024;
const MAX_PACKAGES: usize = 64;

#[derive(Debug, Clone)]
pub struct AgentRequest {
    pub management_ip: IpAddr,
    pub username: Option<String>,
    /// None from NX-OS (GET): the server fills it from the fabric.
    pub password: Option<Secret>,
    pub system_id: Option<String>,
    /// Agent fields the device sent (names from [`AGENT_FIELDS`]), already checked.
    pub fields: Map<String, Value>,
}

enum Kind {
    Text(Option<&'static [&'static str]>),
    Bool,
    List,
}

fn kind(field: &str) -> Option<Kind> {
    Some(match field {
        "agent_type" => Kind::Text(Some(&AGENT_TYPES)),
        "operation_mode" => Kind::Text(Some(&OPERATION_MODES)),
        "job_on_create" => Kind::Text(Some(&JOB_TYPES)),
        "platform" | "profile" | "label" => Kind::Text(None),
        "install_requirements" | "force_package_install" | "enable_monitor" => Kind::Bool,
        "packages" => Kind::List,
        _ => return None,
    })
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max {
        return Err(format!("`{field}` is longer than {max} bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("`{field}` holds control characters"));
    }
    Ok(())
}

/// Check one agent field's value; returns it as the controller wants it.
fn agent_field(field: &str, v: Value) -> Result<Value, String> {
    match (kind(field), v) {
        (None, _) => Err(format!("unknown field `{field}`")),
        (Some(Kind::Text(allowed)), Value::String(s)) => {
            check_text(field, &s, MAX_TEXT)?;
            if let Some(list) = allowed
                && !list.contains(&s.as_str())
            {
                return Err(format!("`{field}` must be one of {}", list.join(", ")));
            }
            if field == "platform"
                && (s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            {
                return Err("`platform` must be a platform name such as junos, eos or nxos".into());
            }
            Ok(Value::String(s))
        }
        (Some(Kind::Bool), Value::Bool(b)) => Ok(Value::Bool(b)),
        (Some(Kind::List), Value::Array(items)) => {
            if items.len() > MAX_PACKAGES {
                return Err(format!("`{field}` lists more than {MAX_PACKAGES} packages"));
            }
            for i in &items {
                match i {
                    Value::String(s) => check_text(field, s, MAX_TEXT)?,
                    _ => return Err(format!("`{field}` must be a list of strings")),
                }
            }
            Ok(Value::Array(items))
        }
        (Some(Kind::Text(_)), _) => Err(format!("`{field}` must be a string")),
        (Some(Kind::Bool), _) => Err(format!("`{field}` must be true or false")),
        (Some(Kind::List), _) => Err(format!("`{field}` must be a list of strings")),
    }
}

fn parse_ip(v: &str) -> Result<IpAddr, String> {
    v.parse::<IpAddr>().map_err(|_| "`management_ip` is not an IP address".to_string())
}

fn non_empty(field: &str, v: String, max: usize) -> Result<String, String> {
    check_text(field, &v, max)?;
    if v.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    Ok(v)
}

/// The JSON body of `POST /api/ztp/create_agent`. Unknown fields are refused.
pub fn from_json(body: &[u8]) -> Result<AgentRequest, String> {
    // serde_json's syntax errors give a position, never the text around it.
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("the body must be a JSON object".into());
    };
    let mut ip = None;
    let mut req = AgentRequest {
        management_ip: IpAddr::from([0, 0, 0, 0]),
        username: None,
        password: None,
        system_id: None,
        fields: Map::new(),
    };
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("management_ip", Value::String(s)) => ip = Some(parse_ip(&s)?),
            ("username", Value::String(s)) => req.username = Some(non_empty("username", s, MAX_TEXT)?),
            ("password", Value::String(s)) => {
                if s.len() > MAX_PASSWORD {
                    return Err(format!("`password` is longer than {MAX_PASSWORD} bytes"));
                }
                req.password = Some(Secret::new(s)).filter(|p| !p.is_empty());
            }
            ("system_id", Value::String(s)) => req.system_id = Some(s).filter(|s| !s.is_empty()),
            ("management_ip" | "username" | "password" | "system_id", _) => {
                return Err(format!("`{k}` must be a string"));
            }
            (_, v) => {
                let checked = agent_field(&k, v)?;
                req.fields.insert(k, checked);
            }
        }
    }
    if let Some(s) = &req.system_id {
        check_text("system_id", s, MAX_TEXT)?;
    }
    req.management_ip = ip.ok_or("`management_ip` is required")?;
    Ok(req)
}

/// The query of `GET /api/ztp/create_agent` (NX-OS POAP). A password is refused: a URL
/// ends up in access and accounting logs, so the server fills it from the fabric.
pub fn from_query(q: &str) -> Result<AgentRequest, String> {
    let mut ip = None;
    let mut req = AgentRequest {
        management_ip: IpAddr::from([0, 0, 0, 0]),
        username: None,
        password: None,
        system_id: None,
        fields: Map::new(),
    };
    let mut packages = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8()
            .map_err(|_| "the query is not valid UTF-8".to_string())?
            .into_owned();
        let k = k.to_string();
        if k != "packages" && (req.fields.contains_key(&k) || (k == "management_ip" && ip.is_some())) {
            return Err(format!("`{k}` is given twice"));
        }
        match k.as_str() {
            "password" => {
                return Err("a password does not belong in a URL: the server takes it from the fabric".into());
            }
            "management_ip" => ip = Some(parse_ip(&v)?),
            "username" => req.username = Some(non_empty("username", v, MAX_TEXT)?),
            "system_id" => {
                check_text("system_id", &v, MAX_TEXT)?;
                req.system_id = Some(v).filter(|s| !s.is_empty());
            }
            "packages" => {
                check_text("packages", &v, MAX_TEXT)?;
                packages.push(Value::String(v));
            }
            _ => {
                let value = match kind(&k) {
                    Some(Kind::Bool) => match v.as_str() {
                        "true" | "True" | "1" => Value::Bool(true),
                        "false" | "False" | "0" => Value::Bool(false),
                        _ => return Err(format!("`{k}` must be true or false")),
                    },
                    _ => Value::String(v),
                };
                let checked = agent_field(&k, value)?;
                req.fields.insert(k, checked);
            }
        }
    }
    if !packages.is_empty() {
        let checked = agent_field("packages", Value::Array(packages))?;
        req.fields.insert("packages".into(), checked);
    }
    req.management_ip = ip.ok_or("`management_ip` is required")?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies() {
        let r = from_json(
            br#"{"management_ip":"10.0.0.5","username":"aosadmin","password":"pw","agent_type":"offbox",
                "job_on_create":"install","platform":"junos","install_requirements":true}"#,
        )
        .unwrap();
        assert_eq!(r.management_ip.to_string(), "10.0.0.5");
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(r.fields.len(), 4);
        for (body, want) in [
            (r#"{"management_ip":"10.0.0.5","evil":1}"#, "unknown field `evil`"),
            (r#"{"username":"a"}"#, "`management_ip` is required"),
            (r#"{"management_ip":"nope"}"#, "not an IP address"),
            (r#"{"management_ip":"10.0.0.5","agent_type":"inbox"}"#, "must be one of"),
            (r#"{"management_ip":"10.0.0.5","install_requirements":"yes"}"#, "true or false"),
            (r#"{"management_ip":"10.0.0.5","password":12345678}"#, "must be a string"),
            (r#"[1]"#, "JSON object"),
            (r#"{"#, "not JSON"),
        ] {
            let e = from_json(body.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
            assert!(!e.contains("12345678"), "{e}");
        }
    }

    #[test]
    fn queries() {
        let r = from_query(
            "management_ip=10.0.0.7&username=aosadmin&system_id=SAL1&agent_type=onbox&install_requirements=true&job_on_create=install",
        )
        .unwrap();
        assert_eq!(r.system_id.as_deref(), Some("SAL1"));
        assert!(r.password.is_none());
        assert_eq!(r.fields.get("install_requirements"), Some(&Value::Bool(true)));
        assert!(from_query("management_ip=10.0.0.7&password=x").unwrap_err().contains("does not belong"));
        assert!(from_query("management_ip=10.0.0.7&foo=1").unwrap_err().contains("unknown field"));
        assert!(from_query("management_ip=10.0.0.7&agent_type=onbox&agent_type=offbox").is_err());
        assert!(from_query("username=a").is_err());
    }
}
