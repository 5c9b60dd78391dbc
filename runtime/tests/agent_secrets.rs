//! The controller password, the device password and the controller's tokens never show:
//! every log line the runtime writes (captured at TRACE), every API answer, the device
//! logs and the Debug output of the agent types are searched for them, across a run
//! where the controller quotes the passwords back in its errors.
#![allow(clippy::unwrap_used)]

#[path = "agent_support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_never_show() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Captured(buf.clone());
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(sub).unwrap();

    let nx_pw = "nx1-device-pw";
    let mock = start_mock(None).await;
    {
        let mut s = mock.state.lock().unwrap();
        // A controller that quotes what it was sent in its errors.
        s.fail("list", Fail::Status(500, format!("db error for ztp/{CONTROLLER_PW}")));
        s.fail(
            "create",
            Fail::Status(503, format!("{{\"errors\":{{\"password\":\"{DEVICE_PW} rejected\"}}}}")),
        );
        s.job_error = format!("ssh to the device as aosadmin/{DEVICE_PW} failed");
        s.connect_after = 3;
    }
    let url = mock.url.clone();
    let add = format!(
        "    device \"nx1\" platform=\"nxos\" {{\n        serial \"SAL1234ABCD\"\n        \
         device-user \"aosadmin\" password=\"{nx_pw}\"\n    }}\n}}\n"
    );
    let mut cfg = fast();
    cfg.attempts = 4;
    let rt = start_runtime(
        move |t: String| {
            let t = with_controller(&url)(t);
            let end = t.rfind('}').unwrap();
            format!("{}{add}", &t[..end])
        },
        cfg,
        None,
    )
    .await;
    let mut answers: Vec<String> = Vec::new();

    // A device that completes (with failures quoting passwords on the way).
    let r = post_agent(rt.addr, "127.0.0.41", "").await;
    answers.push(r.body.clone());
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "connected", "{job}");
    // NX-OS: its password comes from the fabric; the controller refuses it with a quote
    // (of another device's password too: every password of the fabric is scrubbed).
    mock.state.lock().unwrap().fail(
        "create",
        Fail::Status(
            422,
            format!("{{\"errors\":{{\"password\":\"{nx_pw} is too weak, unlike {DEVICE_PW}\"}}}}"),
        ),
    );
    let q = "/api/ztp/create_agent?management_ip=127.0.0.42&username=aosadmin&system_id=SAL1234ABCD&agent_type=onbox";
    let r = http(rt.addr, "127.0.0.42", "GET", q, &[], None).await;
    answers.push(r.body.clone());
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    // A 422 is final.
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["last_error"].as_str().unwrap().contains("***"), "{job}");
    // auth_failed, after the job error quoting the device password.
    mock.state.lock().unwrap().final_state = "auth_failed".into();
    let r = post_agent(rt.addr, "127.0.0.43", "").await;
    answers.push(r.body.clone());
    let job = wait_job(rt.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "failed", "{job}");
    // Wrong types and refusals do not echo values.
    let bad = format!(r#"{{"management_ip":"127.0.0.44","password":["{DEVICE_PW}"]}}"#);
    let r = http(rt.addr, "127.0.0.44", "POST", "/api/ztp/create_agent", &[], Some(&bad)).await;
    assert_eq!(r.status, 400);
    answers.push(r.body.clone());
    let r = http(
        rt.addr,
        "127.0.0.45",
        "POST",
        "/api/ztp/create_agent",
        &[],
        Some(&agent_body("127.0.0.46", "")),
    )
    .await;
    assert_eq!(r.status, 403);
    answers.push(r.body.clone());
    // A controller that refuses our login, quoting the password.
    let mock2 = start_mock(None).await;
    mock2.state.lock().unwrap().fail("login", Fail::Status(401, format!("bad password {CONTROLLER_PW}")));
    let rt2 = start_runtime(with_controller(&mock2.url), fast(), None).await;
    let r = post_agent(rt2.addr, "127.0.0.47", "").await;
    answers.push(r.body.clone());
    let job = wait_job(rt2.addr, r.json()["id"].as_str().unwrap(), WITHIN).await;
    assert_eq!(job["state"], "failed");

    for ip in ["127.0.0.41", "127.0.0.42", "127.0.0.43"] {
        wait_device(rt.addr, ip, WITHIN).await;
    }
    wait_device(rt2.addr, "127.0.0.47", WITHIN).await;
    for (addr, path) in [
        (rt.addr, "/api/ztp/agents".to_string()),
        (rt.addr, "/api/ztp/device/status".to_string()),
        (rt.addr, "/api/ztp/services".to_string()),
        (rt2.addr, "/api/ztp/agents".to_string()),
        (rt2.addr, "/api/ztp/device/status".to_string()),
        (rt.addr, "/api/ztp/device/127.0.0.41/log".to_string()),
        (rt.addr, "/api/ztp/device/127.0.0.42/log".to_string()),
        (rt.addr, "/api/ztp/device/127.0.0.43/log".to_string()),
        (rt.addr, "/api/ztp/device/127.0.0.44/log".to_string()),
        (rt2.addr, "/api/ztp/device/127.0.0.47/log".to_string()),
    ] {
        let r = get(addr, &path).await;
        assert_eq!(r.status, 200, "{path}");
        answers.push(r.body);
    }
    for j in rt.agents.list(None).into_iter().chain(rt2.agents.list(None)) {
        answers.push(format!("{j:?}"));
    }
    let req = ztp_runtime::agent::request::from_json(agent_body("127.0.0.1", "").as_bytes()).unwrap();
    answers.push(format!("{req:?}"));

    // The tokens the controller handed out.
    let mut secrets = vec![CONTROLLER_PW.to_string(), DEVICE_PW.to_string(), nx_pw.to_string()];
    secrets.extend(mock.state.lock().unwrap().tokens.keys().cloned());
    secrets.extend(mock2.state.lock().unwrap().tokens.keys().cloned());
    assert!(secrets.len() >= 4, "the mock issued tokens");

    let logs = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 20, "logs were captured:\n{logs}");
    assert!(logs.contains("attempt 2/4 failed: creating the agent"), "{logs}");
    for s in &secrets {
        for line in logs.lines() {
            assert!(!line.contains(s.as_str()), "a secret in a log line: {line}");
        }
        for a in &answers {
            assert!(!a.contains(s.as_str()), "a secret in an answer: {a}");
        }
    }
    // And the scrubbing is visible where the controller quoted them.
    assert!(answers.iter().any(|a| a.contains("db error for ztp/***")), "{answers:#?}");
}
