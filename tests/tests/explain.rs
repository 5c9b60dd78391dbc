//! `ztpc explain`: golden explanations (golden/explain/<case>.txt, `UPDATE_GOLDEN=1`
//! rewrites them), secrets never shown, the request matcher agreeing with the Kea
//! expressions identity.rs writes for every device of every example, and the CLI's exit
//! codes and messages.

use ztp_tests::*;
use ztpc::explain::{self, Query, Request, request};
use ztpc::model::{Fabric, Settings};
use ztpc::platform::Platform;
use ztpc::render::identity::{self, DhcpIdentity};

fn fabric(name: &str) -> Fabric {
    let out = build_example(name);
    assert!(!out.diagnostics.has_errors(), "example {name} has errors");
    out.fabric.expect("fabric")
}

fn req(items: &[&str]) -> Request {
    Request::parse(items).expect("request")
}

/// (case, example, query): a device by name, MAC or serial, or `-` with a request.
const CASES: &[(&str, &str, &str, &[&str])] = &[
    ("lab-leaf1", "lab", "leaf1", &[]),
    ("lab-leaf3-by-cisco-mac", "lab", "5254.0099.0023", &[]),
    ("dc1-leaf1", "dc1", "leaf1", &[]),
    ("dc1-spine1-by-serial", "dc1", "JPE12345678", &[]),
    ("campus-core1", "campus", "core1", &[]),
    ("campus-acc-a1", "campus", "acc-a1", &[]),
    ("campus-acc-b1", "campus", "acc-b1", &[]),
    ("campus-acc-b2", "campus", "acc-b2", &[]),
    (
        "request-dc1-evo-at-leaf1-port",
        "dc1",
        "-",
        &["60=Juniper-qfx5120-48y-WS3718350110", "77=23.2R1.15-EVO", "82.1=ge-0/0/1", "82.2=mgmt-sw1"],
    ),
    ("request-campus-unknown-eos", "campus", "-", &["60=Arista;DCS-7280SR3-48YC8;JPE99999999"]),
    ("request-campus-sonic-serial", "campus", "-", &["61=SONiC##AS7326-56X##AS7326B2F035A17"]),
    ("request-lab-no-platform", "lab", "-", &["60=MSFT 5.0", "mac=00:11:22:33:44:55"]),
];

fn explain_case(example: &str, query: &str, items: &[&str]) -> explain::Explanation {
    let f = fabric(example);
    let q = if query == "-" { Query::Request(req(items)) } else { Query::Device(query.into()) };
    explain::explain(&f, &q).expect("explained")
}

#[test]
fn explanations_match_golden() {
    let update = std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1");
    let golden = root().join("golden/explain");
    let mut problems = Vec::new();
    for (case, example, query, items) in CASES {
        let text = explain::text::render(&explain_case(example, query, items));
        let path = golden.join(format!("{case}.txt"));
        if update {
            std::fs::create_dir_all(&golden).expect("mkdir");
            std::fs::write(&path, &text).expect("write");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == text => {}
            Ok(want) => problems.push(format!("{case}: differs\n--- golden\n{want}\n--- now\n{text}")),
            Err(_) => problems.push(format!("{case}: golden/explain/{case}.txt missing")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every secret value of a fabric.
fn secrets(f: &Fabric) -> Vec<String> {
    let blocks: Vec<&Settings> = std::iter::once(&f.defaults)
        .chain(f.platforms.values())
        .chain(f.models.values())
        .chain(f.devices.iter().map(|d| &d.settings))
        .collect();
    let mut v: Vec<String> = blocks
        .iter()
        .flat_map(|s| [&s.root_password, &s.device_user_password])
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
    v.extend(f.controller.as_ref().map(|c| c.password.expose().to_string()));
    v
}

#[test]
fn secrets_are_masked_in_text_and_json() {
    let mut checked = 0;
    for name in examples() {
        let f = fabric(&name);
        let secrets = secrets(&f);
        assert!(!secrets.is_empty(), "{name}: no secrets to check");
        let mut outputs = Vec::new();
        for d in &f.devices {
            outputs.push(explain::explain_query(&f, &d.name).expect("device"));
        }
        for p in Platform::ALL {
            let r = match p {
                Platform::Junos => req(&["60=Juniper-x"]),
                Platform::JunosEvo => req(&["60=Juniper-x", "77=x-EVO"]),
                Platform::Eos => req(&["60=Arista"]),
                Platform::Nxos => req(&["60=Cisco"]),
                Platform::Sonic => req(&["12=sonic"]),
                Platform::Cumulus => req(&["60=cumulus-linux"]),
            };
            outputs.push(explain::explain_request(&f, &r));
        }
        for e in &outputs {
            let text = explain::text::render(e);
            let json = serde_json::to_string(e).expect("json");
            assert!(text.contains(explain::MASK), "{name}: nothing masked in\n{text}");
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "{name}: a secret value appears in the text");
                assert!(!json.contains(s.as_str()), "{name}: a secret value appears in the JSON");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} explanations checked");
}

#[test]
fn a_device_is_found_by_name_mac_in_any_notation_and_serial() {
    let f = fabric("campus");
    for q in ["dist-a1", "52:54:00:16:0a:21", "5254.0016.0a21", "52-54-00-16-0A-21", "525400160a21"] {
        let e = explain::explain_query(&f, q).expect(q);
        assert_eq!(e.device.expect("device").name, "dist-a1", "{q}");
    }
    let e = explain::explain_query(&f, "fdo24160a1b").expect("serial, any case");
    assert_eq!(e.device.expect("device").name, "acc-a1");
    let err = explain::explain_query(&f, "acc-a3").expect_err("no such device");
    assert!(err.contains("did you mean `acc-a1`?"), "{err}");
}

// ---- the matcher agrees with identity.rs's Kea expressions ----------------------------

/// A tiny evaluator of the Kea expressions identity.rs writes: `==` between
/// `option[N].hex`, `relay4[N].hex`, `substring(X,S,L)`, `'text'` and `0xHEX`, combined
/// with `and`, `or`, `not` and parentheses.
struct Kea<'a> {
    toks: Vec<String>,
    at: usize,
    req: &'a Request,
}

impl Kea<'_> {
    fn eval(expr: &str, req: &Request) -> bool {
        let mut toks = Vec::new();
        let b: Vec<char> = expr.chars().collect();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_whitespace() {
                i += 1;
            } else if "(),".contains(c) {
                toks.push(c.to_string());
                i += 1;
            } else if c == '=' {
                toks.push("==".into());
                i += 2;
            } else if c == '\'' {
                let end = b[i + 1..].iter().position(|x| *x == '\'').expect("closing quote") + i + 1;
                toks.push(b[i..=end].iter().collect());
                i = end + 1;
            } else {
                let start = i;
                while i < b.len() && (b[i].is_alphanumeric() || "[]._-".contains(b[i])) {
                    i += 1;
                }
                assert!(i > start, "unexpected `{c}` in {expr}");
                toks.push(b[start..i].iter().collect());
            }
        }
        let mut k = Kea { toks, at: 0, req };
        let v = k.or();
        assert_eq!(k.at, k.toks.len(), "trailing tokens in {expr}");
        v
    }
    fn peek(&self) -> &str {
        self.toks.get(self.at).map(String::as_str).unwrap_or("")
    }
    fn next(&mut self) -> String {
        self.at += 1;
        self.toks[self.at - 1].clone()
    }
    fn eat(&mut self, t: &str) {
        assert_eq!(self.next(), t);
    }
    fn or(&mut self) -> bool {
        let mut v = self.and();
        while self.peek() == "or" {
            self.next();
            v |= self.and();
        }
        v
    }
    fn and(&mut self) -> bool {
        let mut v = self.unary();
        while self.peek() == "and" {
            self.next();
            v &= self.unary();
        }
        v
    }
    fn unary(&mut self) -> bool {
        if self.peek() == "not" {
            self.next();
            return !self.unary();
        }
        if self.peek() == "(" {
            self.next();
            let v = self.or();
            self.eat(")");
            return v;
        }
        let a = self.value();
        self.eat("==");
        let b = self.value();
        a == b
    }
    fn value(&mut self) -> Vec<u8> {
        let t = self.next();
        if t == "substring" {
            self.eat("(");
            let s = self.value();
            self.eat(",");
            let start: i64 = self.next().parse().expect("start");
            self.eat(",");
            let len = self.next();
            self.eat(")");
            return substring(&s, start, &len);
        }
        if let Some(text) = t.strip_prefix('\'') {
            return text.trim_end_matches('\'').as_bytes().to_vec();
        }
        if let Some(hex) = t.strip_prefix("0x") {
            return (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
        }
        let r = self.req;
        let v = match t.as_str() {
            "option[60].hex" => &r.vendor_class,
            "option[61].hex" => &r.client_id,
            "option[77].hex" => &r.user_class,
            "option[12].hex" => &r.host_name,
            "relay4[1].hex" => &r.circuit_id,
            "relay4[2].hex" => &r.remote_id,
            other => panic!("unknown Kea value `{other}`"),
        };
        v.clone().unwrap_or_default()
    }
}

/// Kea's `substring` (TokenSubstring::evaluate): an out-of-range start gives "".
fn substring(s: &[u8], start: i64, len: &str) -> Vec<u8> {
    let n = s.len() as i64;
    if n == 0 || start < -n || start >= n {
        return Vec::new();
    }
    let start = if start < 0 { n + start } else { start };
    let end = if len == "all" { n } else { (start + len.parse::<i64>().expect("len")).min(n) };
    s[start as usize..end as usize].to_vec()
}

/// What each example device's NOS sends, plus the usual near misses, and a request per
/// platform without any serial.
fn requests(f: &Fabric) -> Vec<Request> {
    let mut v = Vec::new();
    for d in &f.devices {
        let serial = d.serial.clone().unwrap_or_else(|| "NOSERIAL".into());
        let model = d.model.clone().unwrap_or_else(|| "m".into());
        let own: Vec<String> = match d.platform {
            Platform::Junos => vec![format!("60=Juniper-{model}-{serial}")],
            Platform::JunosEvo => vec![format!("60=Juniper:{model}:{serial}"), "77=23.4R2-EVO".into()],
            Platform::Eos => vec![format!("60=Arista;{model};{serial}")],
            Platform::Nxos => vec!["60=Cisco N9K".into(), format!("61=0x00{}", hex(serial.as_bytes()))],
            Platform::Sonic => vec![format!("61=SONiC##{model}##{serial}")],
            Platform::Cumulus => vec![format!("60=cumulus-linux {serial}")],
        };
        let mut items = own.clone();
        if let Some(l) = &d.location {
            items.push(format!("82.1={}", l.circuit_id));
            if let Some(r) = &l.remote_id {
                items.push(format!("82.2={r}"));
            }
            // The right port on another switch must not match.
            let mut other = own.clone();
            other.push(format!("82.1={}", l.circuit_id));
            other.push("82.2=another-switch".into());
            v.push(Request::parse(&other).expect("request"));
        }
        let mut r = Request::parse(&items).expect("request");
        r.mac = d.mac;
        v.push(r);
        // The serial without its separator, and with the next character missing.
        let mut near = own.clone();
        near[0] = near[0].replace(&format!("-{serial}"), &serial).replace(&format!(";{serial}"), &serial);
        v.push(Request::parse(&near).expect("request"));
        v.push(Request::parse(&[format!("61={serial}")]).expect("request"));
    }
    for items in [
        &["60=Juniper-qfx"][..],
        &["60=Juniper-qfx", "77=23.2R1-EVO"],
        &["60=Juniper-qfx", "77=EVO"],
        &["60=Arista"],
        &["60=Cisco"],
        &["12=sonic"],
        &["61=SONiC##x##y"],
        &["60=cumulus-linux x86"],
        &["60=cumulus"],
        &["60=MSFT 5.0"],
        &[],
    ] {
        v.push(req(items));
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn request_matching_agrees_with_identity_rules_for_every_platform() {
    let mut compared = 0;
    let mut recognised = 0;
    for name in examples() {
        let f = fabric(&name);
        let reqs = requests(&f);
        for r in &reqs {
            for p in Platform::ALL {
                let kea = Kea::eval(identity::platform_match_kea(p), r);
                assert_eq!(request::platform_matches(p, r), kea, "{name}: platform {p} on {r:?}");
                compared += 1;
            }
            for d in &f.devices {
                if let Some(s) = &d.serial {
                    let kea = Kea::eval(&identity::serial_match_kea(d.platform, s), r);
                    assert_eq!(
                        request::serial_matches(d.platform, s, r),
                        kea,
                        "{name}: {} serial on {r:?}",
                        d.name
                    );
                    compared += 1;
                }
                if let Some(l) = &d.location {
                    let kea = Kea::eval(&identity::location_match_kea(l), r);
                    assert_eq!(request::location_matches(l, r), kea, "{name}: {} location on {r:?}", d.name);
                    compared += 1;
                }
            }
        }
        // What a device's NOS sends leads to that device and its platform, unless DHCP
        // cannot see its identity (then the platform class alone answers).
        for d in &f.devices {
            let Some(r) = reqs.iter().find(|r| {
                r.mac == d.mac
                    && match &d.location {
                        Some(l) => {
                            r.circuit_id.as_deref() == Some(l.circuit_id.as_bytes())
                                && r.remote_id.as_deref() == l.remote_id.as_deref().map(str::as_bytes)
                        }
                        None => true,
                    }
                    && request::platform_of(r) == Some(d.platform)
            }) else {
                panic!("{name}: no request built for {}", d.name)
            };
            let got = request::device_of(&f, r).map(|(x, _)| x.name.as_str());
            match identity::dhcp_identity(d) {
                DhcpIdentity::ScriptOnly => assert_eq!(got, None, "{name}: {}", d.name),
                _ => {
                    assert_eq!(got, Some(d.name.as_str()), "{name}: {}", d.name);
                    recognised += 1;
                }
            }
            assert_eq!(request::platform_of(r), Some(d.platform));
        }
    }
    assert!(compared > 500, "only {compared} comparisons");
    assert!(recognised >= 12, "only {recognised} devices recognised");
}

// ---- the CLI ---------------------------------------------------------------------------

fn cli(args: &[&str]) -> (u8, String, String) {
    let mut argv = vec!["ztpc", "explain", "--color", "never"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = explain::run_argv(&argv, &mut out, &mut err);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

fn ex(name: &str) -> String {
    root().join("examples").join(name).join("fabric.kdl").display().to_string()
}

#[test]
fn cli_exit_codes_and_streams() {
    let lab = ex("lab");
    let (code, out, err) = cli(&[&lab, "leaf1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("fabric \"lab\": device leaf1 (junos)"), "{out}");
    assert!(err.is_empty(), "{err}");

    let (code, out, err) = cli(&[&lab, "leaf9"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("no device named `leaf9`") && err.contains("did you mean `leaf1`?"), "{err}");

    let (code, out, _) = cli(&[&lab, "--dhcp-request", "60=Arista;DCS;X", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["platform"], "eos");
    assert_eq!(v["request"]["platform-class"]["class"], "arista");

    let dc1 = ex("dc1");
    let env = root().join("examples/dc1/demo.env").display().to_string();
    let (code, out, _) = cli(&[&dc1, "52:54:00:6F:FF:4F", "--env-file", &env, "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["device"]["name"], "spine1");
    assert!(!out.contains("demo-root-pw") && !out.contains("demo-device-pw"));

    // The fabric's own problems are exit 1, with the diagnostics on stderr.
    let bad = root().join("examples/invalid/bad-mac.kdl").display().to_string();
    let (code, _, err) = cli(&[&bad, "x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ztp::value::mac"), "{err}");

    // Usage and I/O: exit 2.
    assert_eq!(cli(&[&ex("no-such"), "leaf1"]).0, 2);
    assert_eq!(cli(&[&lab]).0, 2);
    assert_eq!(cli(&[&lab, "leaf1", "--dhcp-request", "60=x"]).0, 2);
    let (code, _, err) = cli(&[&lab, "-", "--dhcp-request", "99=x"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option `99`"), "{err}");
    assert_eq!(cli(&[&lab, "leaf1", "--format", "yaml"]).0, 2);
    assert_eq!(cli(&[&lab, "leaf1", "--env-file", "/no/such/env"]).0, 2);
}

// ---- ztpc diff -------------------------------------------------------------------------

fn diff(env_file: &std::path::Path, dir: &std::path::Path) -> (u8, String, String) {
    let common = ztpc::cli::Common {
        fabric: root().join("examples/dc1/fabric.kdl"),
        deny_warnings: false,
        env_file: Some(env_file.to_path_buf()),
        color: ztpc::cli::Color::Never,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = explain::run_diff(&common, dir, &mut out, &mut err);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

#[test]
fn diff_reports_per_device_and_masks_secrets() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let dc1 = root().join("examples/dc1");
    let env = dc1.join("demo.env");
    let text = std::fs::read_to_string(dc1.join("fabric.kdl")).expect("fabric");
    let vars = example_env("dc1");
    let lookup = |k: &str| vars.get(k).cloned();
    let host = ztpc::Host { base_dir: dc1.clone(), env: &lookup };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: ztpc::cli::relative_from(&out, &dc1) };
    let built = ztpc::build(&text, &host, &opts).expect("build").artifacts.expect("artifacts");
    ztpc::emit::emit(&built, &out).expect("emit");

    let (code, report, err) = diff(&env, &out);
    assert_eq!((code, report.as_str()), (0, "no changes\n"), "{err}");

    // A changed secret and a hand-edited host block.
    let env2 = tmp.path().join("other.env");
    let demo = std::fs::read_to_string(&env).expect("env");
    std::fs::write(&env2, demo.replace("demo-leaf1-root-pw", "other-leaf1-secret")).expect("write");
    let conf = out.join("dhcpd.conf");
    let edited = std::fs::read_to_string(&conf)
        .expect("conf")
        .replace("fixed-address 10.1.101.11;", "fixed-address 10.1.101.99;");
    std::fs::write(&conf, edited).expect("write");
    let (code, report, err) = diff(&env2, &out);
    assert_eq!(code, 0, "{err}");
    assert!(report.contains("device leaf1\n"), "{report}");
    assert!(report.contains("device-root-password: changed"), "{report}");
    assert!(report.contains("tftp/devices/leaf1.sh: changed"), "{report}");
    assert!(report.contains("device spine1\n  dhcpd.conf host spine1: changed\n    - fixed-address 10.1.101.99;\n    + fixed-address 10.1.101.11;"), "{report}");
    for secret in ["other-leaf1-secret", "demo-leaf1-root-pw", "demo-root-pw", "demo-device-pw"] {
        assert!(!report.contains(secret), "a secret appears in:\n{report}");
    }

    assert_eq!(diff(&env, &tmp.path().join("missing")).0, 2);
}
