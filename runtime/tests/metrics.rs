//! `GET /metrics` end to end: the `ztp-runtime` binary serving examples/lab (moved onto
//! 127.0.0.0/24) with DHCP, TFTP and HTTP on loopback; traffic of every kind, then a
//! scrape whose counters must have exact values and whose text must be valid
//! Prometheus exposition format 0.0.4 (checked by an independent parser below).
#![allow(clippy::unwrap_used)] // test helpers: a failed step should stop the test loudly

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{Encodable, Encoder};

#[path = "lab_support.rs"]
mod lab;
#[path = "listening_support.rs"]
mod listening;
use lab::*;

struct Runtime {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl Runtime {
    fn addr(&self, service: &str) -> SocketAddr {
        self.addrs[service]
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start with DHCP, TFTP and HTTP on loopback port 0; the real ports come from the
/// "listening" log lines.
fn start(artifacts: &Path, state: &Path) -> Runtime {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"))
        .args(["--artifacts", artifacts.to_str().unwrap(), "--state", state.to_str().unwrap()])
        .args([
            "--dhcp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--tftp-listen",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "json"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addrs = listening::listening(&mut child, 3);
    let rt = Runtime { child, addrs };
    wait_for(|| get(rt.addr("http"), "/healthz").0 == 200, "healthz 200");
    rt
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A minimal HTTP/1.1 exchange: (status, headers, body).
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new(), String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new(), String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (code, _, body) = request(addr, "GET", path, "");
    (code, body)
}

/// A DHCP request relayed by 127.0.0.1 (so the server picks 127.0.0.0/24 and answers
/// the relay on 127.0.0.1:67, where nobody listens: the counters tell what it sent).
fn dhcp(mt: MessageType, mac: [u8; 6], opts: &[DhcpOption]) -> Vec<u8> {
    let mut m = v4::Message::default();
    m.set_opcode(v4::Opcode::BootRequest).set_chaddr(&mac).set_xid(0x1234).set_giaddr(Ipv4Addr::LOCALHOST);
    m.opts_mut().insert(DhcpOption::MessageType(mt));
    for o in opts {
        m.opts_mut().insert(o.clone());
    }
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

/// One parsed exposition: series (`name{labels}` exactly as written) → value.
#[derive(Debug, Default)]
struct Scrape {
    text: String,
    series: BTreeMap<String, f64>,
}

impl Scrape {
    fn v(&self, series: &str) -> f64 {
        *self.series.get(series).unwrap_or_else(|| panic!("no series {series} in\n{}", self.text))
    }
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut cs = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    cs.next().is_some_and(ok_first) && cs.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Labels `k="v",...` (without braces) → pairs; checks names and escapes.
fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").ok_or(format!("label without =\" in {s}"))?;
        if !valid_name(k, false) || k.starts_with("__") {
            return Err(format!("bad label name {k:?}"));
        }
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {s}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, '"')) => v.push('"'),
                    Some((_, 'n')) => v.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {s}")),
                },
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => v.push(c),
            }
        };
        if out.iter().any(|(n, _): &(String, String)| n == k) {
            return Err(format!("label {k} twice in {s}"));
        }
        out.push((k.to_string(), v));
        rest = &after[end + 1..];
        if !rest.is_empty() {
            rest = rest.strip_prefix(',').ok_or(format!("labels not separated by commas in {s}"))?;
        }
    }
    Ok(out)
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parse and validate text format 0.0.4: HELP/TYPE before each family's samples,
/// families contiguous and unique, names and labels well formed, no duplicate series,
/// counters named `_total`, and for histograms: increasing `le`, cumulative counts,
/// `le="+Inf"` equal to `_count`, a `_sum`.
fn parse(text: &str) -> Result<Scrape, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut s = Scrape { text: text.to_string(), ..Default::default() };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut done: Vec<String> = Vec::new();
    // histogram (family, labels without le) → (buckets (le, count), sum, count)
    type Hist = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut hists: BTreeMap<(String, Vec<(String, String)>), Hist> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or("HELP without text")?;
            if !valid_name(name, true) || helped.contains(&name.to_string()) || help.is_empty() {
                return Err(format!("bad or repeated HELP: {line}"));
            }
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type: {line}"));
            }
            if types.contains_key(name) || helped.last().map(String::as_str) != Some(name) {
                return Err(format!("TYPE repeated or not right after its HELP: {line}"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(format!("counter not named _total: {name}"));
            }
            if let Some(c) = current.replace(name.to_string()) {
                done.push(c);
            }
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value = parse_value(value)?;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                (n, parse_labels(l.strip_suffix('}').ok_or(format!("no closing brace: {line}"))?)?)
            }
            None => (series, Vec::new()),
        };
        if !valid_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let fam = current.clone().ok_or(format!("sample before any TYPE: {line}"))?;
        let kind = types[&fam].as_str();
        let suffix = name.strip_prefix(fam.as_str()).ok_or(format!("{name} outside its family {fam}"))?;
        match (kind, suffix) {
            ("histogram", "_bucket" | "_sum" | "_count") | (_, "") => {}
            _ => return Err(format!("{name} does not belong to {kind} {fam}")),
        }
        if s.series.insert(series.to_string(), value).is_some() {
            return Err(format!("duplicate series {series}"));
        }
        if kind == "histogram" {
            let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone());
            let rest: Vec<_> = labels.into_iter().filter(|(k, _)| k != "le").collect();
            let h = hists.entry((fam.clone(), rest)).or_default();
            match suffix {
                "_bucket" => {
                    h.0.push((parse_value(&le.ok_or(format!("bucket without le: {line}"))?)?, value))
                }
                "_sum" => h.1 = Some(value),
                _ => h.2 = Some(value),
            }
        }
    }
    for ((fam, labels), (buckets, sum, count)) in &hists {
        let what = format!("{fam} {labels:?}");
        let count = count.ok_or(format!("{what}: no _count"))?;
        sum.ok_or(format!("{what}: no _sum"))?;
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{what}: the last bucket is not le=\"+Inf\""));
        }
        for w in buckets.windows(2) {
            if w[0].0 >= w[1].0 || w[0].1 > w[1].1 {
                return Err(format!("{what}: buckets not increasing and cumulative: {buckets:?}"));
            }
        }
        if buckets.last().map(|b| b.1) != Some(count) {
            return Err(format!("{what}: +Inf bucket != _count"));
        }
    }
    Ok(s)
}

fn scrape(rt: &Runtime) -> Scrape {
    let (code, head, body) = request(rt.addr("http"), "GET", "/metrics", "");
    assert_eq!(code, 200, "{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    parse(&body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
}

fn have_curl() -> bool {
    let ok = Command::new("curl").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("ZTP_REQUIRE_ORACLES").as_deref() != Ok("1"),
            "curl is required (ZTP_REQUIRE_ORACLES=1) but not on PATH"
        );
        eprintln!("SKIPPED: the TFTP part (curl not on PATH)");
    }
    ok
}

#[test]
fn parser_rejects_broken_expositions() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\n";
    assert!(parse(good).is_ok());
    for bad in [
        "a_total 1\n",                                                           // no TYPE
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",                   // no final newline
        "# HELP a x\n# TYPE a counter\na 1\n",                                   // counter without _total
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v} 1\n",          // unterminated
        "# HELP a_total x\n# TYPE a_total counter\na_total{1k=\"v\"} 1\n",       // label name
        "# HELP a_total x\n# TYPE a_total counter\na_total{a=\"v\"b=\"w\"} 1\n", // no comma
        "# HELP a_total x\n# TYPE a_total counter\na_total{a=\"\\q\"} 1\n",      // bad escape
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",      // duplicate
        "# HELP a_total x\n# TYPE a_total counter\nb_total 1\n",                 // outside family
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn metrics_count_dhcp_tftp_http_reloads_and_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let state_tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_lab(&out, on_loopback);
    let rt = start(&out, state_tmp.path());
    let http = rt.addr("http");

    let before = scrape(&rt);
    assert_eq!(before.v("ztp_reloads_total{result=\"accepted\"}"), 0.0);
    assert_eq!(before.v("ztp_dhcp_leases_in_use{pool=\"127.0.0.100-127.0.0.199\"}"), 0.0);
    assert_eq!(before.v("ztp_dhcp_pool_addresses{pool=\"127.0.0.100-127.0.0.199\"}"), 100.0);
    let (_, services) = get(http, "/api/ztp/services");
    let mut api_bytes = services.len();
    let services: serde_json::Value = serde_json::from_str(&services).unwrap();
    let first = services["generation"].as_str().unwrap().to_string();
    assert_eq!(before.v(&format!("ztp_generation_info{{generation=\"{first}\",fabric=\"lab\"}}")), 1.0);

    // DHCP: DISCOVER → OFFER, REQUEST → ACK (a pool lease), and a packet that is not DHCP.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x42];
    let addr = Ipv4Addr::new(127, 0, 0, 100);
    udp.send_to(&dhcp(MessageType::Discover, mac, &[]), rt.addr("dhcp")).unwrap();
    let sent = |s: &Scrape, t: &str, o: &str| {
        s.v(&format!("ztp_dhcp_packets_total{{type=\"{t}\",outcome=\"{o}\"}}"))
    };
    wait_for(|| sent(&scrape(&rt), "discover", "offer") == 1.0, "an offer");
    let req_opts =
        [DhcpOption::RequestedIpAddress(addr), DhcpOption::ServerIdentifier(Ipv4Addr::new(127, 0, 0, 5))];
    udp.send_to(&dhcp(MessageType::Request, mac, &req_opts), rt.addr("dhcp")).unwrap();
    udp.send_to(b"not a DHCP packet", rt.addr("dhcp")).unwrap();
    wait_for(|| sent(&scrape(&rt), "other", "dropped") == 1.0, "a dropped packet");

    // HTTP: a file, a 404, a device report, an API 404, healthz.
    let (code, script) = get(http, "/ztp-eos.sh");
    assert_eq!(code, 200);
    let (code, missing) = get(http, "/no-such-file");
    assert_eq!(code, 404);
    let report = r#"{"ip":"127.0.0.1","system_id":"SN1","platform":"eos","task":"Device Ready"}"#;
    let (code, _, row) = request(http, "POST", "/api/ztp/device/log", report);
    assert_eq!(code, 200, "{row}");
    let (code, api404) = get(http, "/api/ztp/nothing");
    assert_eq!(code, 404);
    api_bytes += row.len() + api404.len();
    let (mut files_ok, mut files_bytes) = (1.0, script.len() + missing.len());
    assert_eq!(get(http, "/healthz").0, 200);

    // TFTP: one whole file.
    let mut tftp_bytes = 0;
    if have_curl() {
        let url = format!("tftp://{}/ztp.json", rt.addr("tftp"));
        let o = Command::new("curl").args(["-sS", "--max-time", "10", &url]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, get(http, "/ztp.json").1.as_bytes());
        tftp_bytes = o.stdout.len();
        (files_ok, files_bytes) = (files_ok + 1.0, files_bytes + tftp_bytes);
        wait_for(|| scrape(&rt).v("ztp_tftp_transfers_finished_total{result=\"done\"}") == 1.0, "tftp done");
    }

    // Reloads: a rebuild is accepted, a file edited behind the manifest's back refused.
    build_lab(&out, |t| {
        on_loopback(t).replace("    platform \"eos\"\n", "    platform \"eos\" { versions \"9.9.9\" }\n")
    });
    wait_for(|| scrape(&rt).v("ztp_reloads_total{result=\"accepted\"}") == 1.0, "an accepted reload");
    // ztpc's swap ends with removing the old directory, a burst of its own that makes
    // another (unchanged) reload: let it pass, or it would see the edit below too.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(out.join("tftp/ztp.json"), "{}").unwrap();
    wait_for(|| scrape(&rt).v("ztp_reloads_total{result=\"refused\"}") == 1.0, "a refused reload");
    // The device log events of the DHCP exchange create the leased address's row.
    wait_for(
        || scrape(&rt).series.get("ztp_devices{status=\"unknown\"}") == Some(&1.0),
        "the DHCP device row",
    );
    std::thread::sleep(Duration::from_millis(300)); // anything late would show below

    let s = scrape(&rt);
    let delta = |series: &str| s.v(series) - before.v(series);
    // DHCP
    for t in ["discover", "request", "release", "decline", "inform", "other"] {
        for o in ["offer", "ack", "nak", "dropped", "ignored"] {
            let want = match (t, o) {
                ("discover", "offer") | ("request", "ack") | ("other", "dropped") => 1.0,
                _ => 0.0,
            };
            assert_eq!(sent(&s, t, o), want, "dhcp {t} {o}");
        }
    }
    assert_eq!(s.v("ztp_dhcp_decision_duration_seconds_count"), 2.0, "decoded packets only");
    assert_eq!(s.v("ztp_dhcp_leases_in_use{pool=\"127.0.0.100-127.0.0.199\"}"), 1.0);
    // HTTP (the scrapes in between are the metrics class; `before` was counted after it
    // rendered, so the deltas of the others are exact).
    let req = |class: &str, code: &str| {
        delta(&format!("ztp_http_requests_total{{class=\"{class}\",code=\"{code}\"}}"))
    };
    assert_eq!(req("files", "2xx"), files_ok, "/ztp-eos.sh, and /ztp.json to compare with TFTP");
    assert_eq!(req("files", "4xx"), 1.0);
    assert_eq!(req("api", "2xx"), 2.0, "services and the report");
    assert_eq!(req("api", "4xx"), 1.0);
    assert_eq!(req("healthz", "2xx"), 1.0);
    for class in ["files", "api", "healthz", "metrics"] {
        assert_eq!(req(class, "5xx"), 0.0);
        assert_eq!(req(class, "3xx"), 0.0);
        let n = delta(&format!("ztp_http_request_duration_seconds_count{{class=\"{class}\"}}"));
        let m = req(class, "2xx") + req(class, "4xx");
        assert_eq!(n, m, "{class}: one latency observation per request");
    }
    assert_eq!(delta("ztp_http_response_bytes_total{class=\"files\"}"), files_bytes as f64);
    assert_eq!(delta("ztp_http_response_bytes_total{class=\"api\"}"), api_bytes as f64);
    assert_eq!(delta("ztp_http_response_bytes_total{class=\"healthz\"}"), 3.0, "ok\\n");
    // TFTP
    if tftp_bytes > 0 {
        assert_eq!(s.v("ztp_tftp_transfers_started_total"), 1.0);
        assert_eq!(s.v("ztp_tftp_transfers_finished_total{result=\"done\"}"), 1.0);
        assert_eq!(s.v("ztp_tftp_transfers_finished_total{result=\"aborted\"}"), 0.0);
        assert_eq!(s.v("ztp_tftp_sent_bytes_total"), tftp_bytes as f64);
    }
    // Reloads and the generation now served.
    assert_eq!(s.v("ztp_reloads_total{result=\"accepted\"}"), 1.0);
    assert_eq!(s.v("ztp_reloads_total{result=\"refused\"}"), 1.0);
    let services: serde_json::Value = serde_json::from_str(&get(http, "/api/ztp/services").1).unwrap();
    let second = services["generation"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(s.v(&format!("ztp_generation_info{{generation=\"{second}\",fabric=\"lab\"}}")), 1.0);
    assert_eq!(s.text.matches("ztp_generation_info{").count(), 1);
    // Devices: the reporting one completed, the leased address unknown.
    assert_eq!(s.v("ztp_devices{status=\"completed\"}"), 1.0);
    assert_eq!(s.v("ztp_devices{status=\"unknown\"}"), 1.0);
    assert_eq!(s.v("ztp_devices{status=\"in_progress\"}"), 0.0);
    assert_eq!(s.v("ztp_devices{status=\"failed\"}"), 0.0);
    // No controller in the lab; nothing dropped.
    for o in ["ok", "retry", "failed"] {
        assert_eq!(s.v(&format!("ztp_controller_calls_total{{outcome=\"{o}\"}}")), 0.0);
    }
    assert_eq!(s.v("ztp_events_dropped_total"), 0.0);
    // HEAD and other methods.
    let (code, _, body) = request(http, "HEAD", "/metrics", "");
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(request(http, "POST", "/metrics", "").0, 405);
}
