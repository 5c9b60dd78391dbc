//! Agent install through a mock controller: the happy path, an existing agent replaced,
//! retries on 5xx and bad JSON, a token that expires, auth_failed, an unreachable
//! controller (bounded, other requests unaffected), TLS with the fabric's ca-cert,
//! refusals (another address, a wrong admin token, no controller) and the NX-OS GET.
#![allow(clippy::unwrap_used)]

#[path = "agent_support.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_completes_the_device() {
    let mock = start_mock(None).await;
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let ip = "127.0.0.11";
    let r = post_agent(rt.addr, ip, "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.json();
    assert_eq!(v["state"], "queued");
    let id = v["id"].as_str().unwrap().to_string();
    report_done(rt.addr, ip).await;

    let job = wait_job(rt.addr, &id, WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    assert_eq!(job["agent_id"], "agent-1");
    assert_eq!(job["connection_state"], "connected");
    assert_eq!(job["failed_attempts"], 0);
    let row = wait_device(rt.addr, ip, WITHIN).await;
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["task"], "Device Ready");
    assert_eq!(row["last_log"], "Device is ready to be used");
    let log = device_log(rt.addr, ip).await;
    for want in
        ["logging in to the controller", "creating the onbox agent", "agent-1 created", "is connected"]
    {
        assert!(log.iter().any(|l| l.starts_with("agent: ") && l.contains(want)), "no `{want}` in {log:#?}");
    }
    assert!(log.iter().any(|l| l.contains("Device Ready: Device is ready to be used")), "{log:#?}");

    let s = mock.state.lock().unwrap();
    assert_eq!(s.logins, 1, "one login, the token reused");
    assert!(
        s.requests
            .iter()
            .filter(|r| r.path != "/api/user/login")
            .all(|r| r.token.as_deref() == Some("tok-1"))
    );
    let a = &s.agents["agent-1"];
    assert_eq!(a.polls, 3, "disconnected twice, then connected");
    // The merged system-agent-params of dc1's defaults, and the device's credentials;
    // no `platform` for an onbox agent.
    let want = serde_json::json!({
        "agent_type": "onbox", "install_requirements": true, "job_on_create": "install",
        "operation_mode": "full_control", "management_ip": ip, "username": "aosadmin",
        "password": DEVICE_PW,
    });
    assert_eq!(a.body, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_agent_for_the_address_is_replaced() {
    let mock = start_mock(None).await;
    {
        let mut s = mock.state.lock().unwrap();
        s.add_agent("old-7", "127.0.0.12");
        s.add_agent("other-1", "127.0.0.99");
        s.connect_after = 0;
    }
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let r = post_agent(rt.addr, "127.0.0.12", "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    let log = device_log(rt.addr, "127.0.0.12").await;
    assert!(log.iter().any(|l| l.contains("deleting the controller's existing agent old-7")), "{log:#?}");
    let s = mock.state.lock().unwrap();
    let deletes: Vec<&str> =
        s.requests.iter().filter(|r| r.method == "DELETE").map(|r| r.path.as_str()).collect();
    assert_eq!(deletes, ["/api/system-agents/old-7"]);
    assert!(s.agents.contains_key("other-1"), "another device's agent is kept");
    assert!(!s.agents.contains_key("old-7"));
    let i_delete = s.requests.iter().position(|r| r.method == "DELETE").unwrap();
    let i_create =
        s.requests.iter().position(|r| r.method == "POST" && r.path == "/api/system-agents").unwrap();
    assert!(i_delete < i_create, "deleted before the new one is created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_bad_json_are_retried_visibly() {
    let mock = start_mock(None).await;
    {
        let mut s = mock.state.lock().unwrap();
        s.fail("create", Fail::Status(503, "{\"errors\":\"busy\"}".into()));
        s.fail("create", Fail::Status(502, String::new()));
        s.fail("get", Fail::Garbage);
    }
    let mut cfg = fast();
    cfg.attempts = 4;
    let rt = start_runtime(with_controller(&mock.url), cfg, None).await;
    let ip = "127.0.0.13";
    let r = post_agent(rt.addr, ip, "").await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    report_done(rt.addr, ip).await;
    let job = wait_job(rt.addr, &id, WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    assert_eq!(job["failed_attempts"], 3, "{job}");
    assert!(job["last_error"].as_str().unwrap().contains("not JSON"), "{job}");
    assert_eq!(wait_device(rt.addr, ip, WITHIN).await["status"], "completed");
    let log = device_log(rt.addr, ip).await;
    let retries: Vec<&String> =
        log.iter().filter(|l| l.contains("failed") && l.contains("retrying in")).collect();
    assert_eq!(retries.len(), 3, "{log:#?}");
    assert!(retries[0].contains("attempt 1/4 failed") && retries[0].contains("HTTP 503"), "{}", retries[0]);
    assert!(retries[1].contains("attempt 2/4 failed") && retries[1].contains("HTTP 502"), "{}", retries[1]);
    assert!(retries[2].contains("poll failed"), "{}", retries[2]);
    // Two creates failed before anything existed; the third created the only agent.
    let s = mock.state.lock().unwrap();
    assert_eq!(s.count("POST", "/api/system-agents"), 3);
    assert_eq!(s.agents.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_means_one_new_login() {
    let mock = start_mock(None).await;
    mock.state.lock().unwrap().token_uses = Some(2);
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let r = post_agent(rt.addr, "127.0.0.14", "").await;
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    assert_eq!(job["failed_attempts"], 0, "a 401 is answered by logging in again, not counted: {job}");
    assert!(mock.state.lock().unwrap().logins >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failed_fails_the_job_and_the_device() {
    let mock = start_mock(None).await;
    mock.state.lock().unwrap().final_state = "auth_failed".into();
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let ip = "127.0.0.15";
    let r = post_agent(rt.addr, ip, "").await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    report_done(rt.addr, ip).await;
    let job = wait_job(rt.addr, &id, WITHIN).await;
    assert_eq!(job["state"], "failed");
    let err = job["last_error"].as_str().unwrap();
    assert!(err.contains("auth_failed") && err.contains("aosadmin"), "{err}");
    let row = wait_device(rt.addr, ip, WITHIN).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["task"], "ZTP Failed");
    assert!(row["last_log"].as_str().unwrap().contains("auth_failed"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_controller_password_fails_without_retrying() {
    let mock = start_mock(None).await;
    mock.state.lock().unwrap().password = "another-password".into();
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let r = post_agent(rt.addr, "127.0.0.16", "").await;
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "failed");
    assert!(job["last_error"].as_str().unwrap().contains("refused the login"), "{job}");
    assert_eq!(mock.state.lock().unwrap().count("POST", "/api/user/login"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_controller_fails_bounded_and_blocks_nothing() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let rt = start_runtime(with_controller(&url), fast(), None).await;
    let ip = "127.0.0.17";
    let t0 = Instant::now();
    let r = post_agent(rt.addr, ip, "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(t0.elapsed() < Duration::from_secs(1), "the answer does not wait for the controller");
    let id = r.json()["id"].as_str().unwrap().to_string();
    // While the job retries, the API answers at once.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(rt.addr, "/api/ztp/device/status").await.status, 200);
        assert_eq!(get(rt.addr, "/api/ztp/agents").await.status, 200);
        assert!(t.elapsed() < Duration::from_millis(500));
    }
    let job = wait_job(rt.addr, &id, WITHIN).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["failed_attempts"], 3);
    let err = job["last_error"].as_str().unwrap();
    assert!(err.contains("cannot reach the controller") && err.contains("gave up after 3 attempts"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "bounded: {:?}", t0.elapsed());
    let log = device_log(rt.addr, ip).await;
    let retries = log.iter().filter(|l| l.contains("failed: logging in: cannot reach the controller"));
    assert_eq!(retries.filter(|l| l.contains("; retrying in ")).count(), 2, "{log:#?}");
    let row = wait_device(rt.addr, ip, WITHIN).await;
    assert_eq!(row["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_controller_times_out_and_recovers() {
    let mock = start_mock(None).await;
    mock.state.lock().unwrap().fail("login", Fail::Hang(Duration::from_secs(3)));
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let r = post_agent(rt.addr, "127.0.0.18", "").await;
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    assert_eq!(job["failed_attempts"], 1);
    assert!(job["last_error"].as_str().unwrap().contains("did not answer in time"), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_fabric_ca_cert() {
    let (server, ca_pem) = test_tls();
    let mock = start_mock(Some(server)).await;
    let rt = start_runtime(with_controller(&mock.url), fast(), Some(&ca_pem)).await;
    let r = post_agent(rt.addr, "127.0.0.19", "").await;
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");

    // Another CA: the certificate is refused, retried, and the job fails clearly.
    let (_, other_ca) = test_tls();
    let rt = start_runtime(with_controller(&mock.url), fast(), Some(&other_ca)).await;
    let r = post_agent(rt.addr, "127.0.0.20", "").await;
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["failed_attempts"], 3);
    assert!(job["last_error"].as_str().unwrap().contains("TLS"), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_another_address_are_refused() {
    let mock = start_mock(None).await;
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    // A device asking for another address.
    let body = agent_body("127.0.0.22", "");
    let r = http(rt.addr, "127.0.0.21", "POST", "/api/ztp/create_agent", &[], Some(&body)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let q = "/api/ztp/create_agent?management_ip=127.0.0.22&username=aosadmin";
    assert_eq!(http(rt.addr, "127.0.0.21", "GET", q, &[], None).await.status, 403);
    // A wrong admin token.
    let bad = [("AuthToken", "not-the-token")];
    let r = http(rt.addr, "127.0.0.21", "POST", "/api/ztp/create_agent", &bad, Some(&body)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let bearer = [("Authorization", "Bearer nope")];
    let r = http(rt.addr, "127.0.0.21", "POST", "/api/ztp/create_agent", &bearer, Some(&body)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(mock.state.lock().unwrap().requests.is_empty(), "nothing reached the controller");
    assert!(rt.agents.list(None).is_empty());
    // The operator's token: allowed (to retry an install), and shown as such.
    let good = [("AuthToken", ADMIN_TOKEN)];
    let r = http(rt.addr, "127.0.0.21", "POST", "/api/ztp/create_agent", &good, Some(&body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!((job["state"].as_str(), job["by_admin"].as_bool()), (Some("connected"), Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_reason() {
    let mock = start_mock(None).await;
    let rt = start_runtime(with_controller(&mock.url), fast(), None).await;
    let ip = "127.0.0.23";
    for (extra, want) in [
        (r#","colour":"blue""#, "unknown field `colour`"),
        (r#","agent_type":"sideways""#, "`agent_type` must be one of"),
        (r#","install_requirements":"yes""#, "`install_requirements` must be true or false"),
    ] {
        let r = post_agent(rt.addr, ip, extra).await;
        assert_eq!(r.status, 400, "{extra}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains(want), "{extra}: {}", r.body);
    }
    let big = format!(r#"{{"management_ip":"{ip}","label":"{}"}}"#, "x".repeat(20_000));
    let r = http(rt.addr, ip, "POST", "/api/ztp/create_agent", &[], Some(&big)).await;
    assert_eq!(r.status, 413);
    let r =
        http(rt.addr, ip, "GET", &format!("/api/ztp/create_agent?management_ip={ip}&password=x"), &[], None)
            .await;
    assert_eq!(r.status, 400);
    assert!(rt.agents.list(None).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_controller_is_a_clear_409() {
    let rt = start_runtime(without_controller, fast(), None).await;
    assert!(rt.state.current().manifest.controller.is_none());
    let ip = "127.0.0.24";
    let t0 = Instant::now();
    let r = post_agent(rt.addr, ip, "").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("no controller"), "{}", r.body);
    assert!(t0.elapsed() < Duration::from_secs(1));
    let log = device_log(rt.addr, ip).await;
    assert!(log.iter().any(|l| l.starts_with("agent: ") && l.contains("declares no controller")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxos_get_gets_its_password_from_the_fabric() {
    let mock = start_mock(None).await;
    mock.state.lock().unwrap().connect_after = 0;
    // An NX-OS device with a password of its own, found by its serial.
    let add = "    device \"nx1\" platform=\"nxos\" {\n        serial \"SAL1234ABCD\"\n        \
               device-user \"aosadmin\" password=\"nx1-device-pw\"\n    }\n}\n";
    let url = mock.url.clone();
    let rt = start_runtime(
        move |t: String| {
            let t = with_controller(&url)(t);
            let end = t.rfind('}').unwrap();
            format!("{}{add}", &t[..end])
        },
        fast(),
        None,
    )
    .await;
    let q = "/api/ztp/create_agent?management_ip=127.0.0.25&username=aosadmin&system_id=SAL1234ABCD\
             &agent_type=onbox&install_requirements=true&job_on_create=install&operation_mode=full_control";
    let r = http(rt.addr, "127.0.0.25", "GET", q, &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    assert_eq!(job["device"], "nx1");
    // An unknown NX-OS device: the nxos/defaults password.
    let q = "/api/ztp/create_agent?management_ip=127.0.0.26&username=aosadmin&system_id=UNKNOWN1&agent_type=onbox";
    let r = http(rt.addr, "127.0.0.26", "GET", q, &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    let s = mock.state.lock().unwrap();
    let pw: Vec<(&str, &str)> = s
        .agents
        .values()
        .map(|a| (a.body["management_ip"].as_str().unwrap(), a.body["password"].as_str().unwrap()))
        .collect();
    assert_eq!(pw, [("127.0.0.25", "nx1-device-pw"), ("127.0.0.26", DEVICE_PW)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offbox_gets_the_platform_and_a_new_request_supersedes() {
    let mock = start_mock(None).await;
    mock.state.lock().unwrap().connect_after = 1_000_000; // never connects
    let mut cfg = fast();
    cfg.connect_deadline = Duration::from_secs(30);
    let rt = start_runtime(with_controller(&mock.url), cfg, None).await;
    let ip = "127.0.0.27";
    // leaf1 is junos (offbox in dc1): a report of the platform is enough to find it.
    let rep =
        format!(r#"{{"ip":"{ip}","platform":"junos","system_id":"WS3718350110","task":"Checking version"}}"#);
    assert_eq!(http(rt.addr, ip, "POST", "/api/ztp/device/log", &[], Some(&rep)).await.status, 200);
    let r = post_agent(rt.addr, ip, "").await;
    let first = r.json()["id"].as_str().unwrap().to_string();
    let until = Instant::now() + WITHIN;
    while rt.agents.get(&first).unwrap().agent_id.is_none() {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let s = mock.state.lock().unwrap();
        let a = s.agents.values().next().unwrap();
        assert_eq!(a.body["agent_type"], "offbox");
        assert_eq!(a.body["platform"], "junos");
    }
    // The device asks again (rebooted, say): the first job stops, the agent is replaced.
    let r = post_agent(rt.addr, ip, "").await;
    let second = r.json()["id"].as_str().unwrap().to_string();
    let old = rt.agents.get(&first).unwrap();
    assert_eq!(old.state, ztp_runtime::agent::JobState::Failed);
    assert!(old.last_error.unwrap().contains(&second));
    let until = Instant::now() + WITHIN;
    while rt.agents.get(&second).unwrap().agent_id.is_none() {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = mock.state.lock().unwrap();
    assert_eq!(s.agents.len(), 1, "the first agent was deleted: {:?}", s.agents.keys());
    let jobs: Vec<Value> =
        serde_json::from_str(&serde_json::to_string(&rt.agents.list(Some(ip))).unwrap()).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1]["state"], "waiting-connect");
}
