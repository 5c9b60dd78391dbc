//! Agent install through the controller (issue 4; reference/apstra-ztp.md §3.3, §4).
//!
//! A device asks (`POST /api/ztp/create_agent`, or `GET` with a query from NX-OS) for a
//! system agent on its own management address. The runtime answers at once with a job
//! id, and the job, in the background: logs in to the fabric's controller (the token is
//! kept until a 401), deletes any agent the controller already has for that address,
//! creates the agent with the merged `system-agent-params`, the address and the agent
//! credentials, and polls it until `connected`. Then the device row is completed
//! ("Device Ready", "Device is ready to be used"); a final failure (auth_failed, the
//! controller refusing, retries used up, no connection in time) marks it "ZTP Failed"
//! with the reason.
//!
//! Every controller call has a timeout; failures that may pass (connection refused,
//! timeouts, TLS, 5xx, 429, an answer that is not the API's JSON) are retried a bounded
//! number of times with exponential backoff and jitter. Each step and each failed
//! attempt goes to the device's log (events of kind `agent`) and to the job list
//! (`GET /api/ztp/agents`). Passwords and tokens are [`secret::Secret`]s: never in a
//! log line, an event, an API answer or Debug output.

pub mod api;
pub mod client;
pub mod fabric;
pub mod request;
pub mod secret;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::now_rfc3339;
use crate::reload::Source;
use crate::state::State;
use crate::status::{Report, Store};
use client::{CallError, Controller, Limits};
use request::AgentRequest;
use secret::{Secret, scrub};

/// A ca-cert larger than this is not a CA bundle.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// Timing and limits of agent jobs. `from_env` reads overrides (seconds, fractions
/// allowed) from `ZTP_AGENT_*` variables.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// TCP connect to the controller.
    pub connect_timeout: Duration,
    /// One controller call as a whole (connect, TLS, request, answer).
    pub request_timeout: Duration,
    /// Attempts per step (login; list+delete+create), and polls failing in a row.
    pub attempts: u32,
    /// First backoff; doubles each attempt up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Between two `GET /api/system-agents/{id}`.
    pub poll_interval: Duration,
    /// How long an agent may take to connect.
    pub connect_deadline: Duration,
    /// How long to wait for the device's own "ZTP Done" (sent right after its agent
    /// request) before writing the final status, so that it does not overwrite it.
    pub settle: Duration,
    /// Controller calls in flight at once, over all jobs.
    pub max_calls: usize,
    /// Jobs not yet finished at once (one per device address).
    pub max_active: usize,
    /// Finished jobs kept for `GET /api/ztp/agents`.
    pub history: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            attempts: 6,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            connect_deadline: Duration::from_secs(15 * 60),
            settle: Duration::from_secs(10),
            max_calls: 16,
            max_active: 4096,
            history: 1024,
        }
    }
}

impl AgentConfig {
    /// Defaults, with `ZTP_AGENT_CONNECT_TIMEOUT`, `ZTP_AGENT_REQUEST_TIMEOUT`,
    /// `ZTP_AGENT_BACKOFF`, `ZTP_AGENT_BACKOFF_MAX`, `ZTP_AGENT_POLL`, `ZTP_AGENT_WAIT`
    /// and `ZTP_AGENT_SETTLE` (seconds) and `ZTP_AGENT_ATTEMPTS` (a count) when set.
    pub fn from_env() -> AgentConfig {
        let mut c = AgentConfig::default();
        let secs = |name: &str, d: &mut Duration| {
            if let Ok(v) = std::env::var(name) {
                match v.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                    Some(x) => *d = x,
                    None => tracing::warn!(variable = name, value = %v, "not a number of seconds; ignored"),
                }
            }
        };
        secs("ZTP_AGENT_CONNECT_TIMEOUT", &mut c.connect_timeout);
        secs("ZTP_AGENT_REQUEST_TIMEOUT", &mut c.request_timeout);
        secs("ZTP_AGENT_BACKOFF", &mut c.backoff_base);
        secs("ZTP_AGENT_BACKOFF_MAX", &mut c.backoff_max);
        secs("ZTP_AGENT_POLL", &mut c.poll_interval);
        secs("ZTP_AGENT_WAIT", &mut c.connect_deadline);
        secs("ZTP_AGENT_SETTLE", &mut c.settle);
        if let Ok(v) = std::env::var("ZTP_AGENT_ATTEMPTS") {
            match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => c.attempts = n,
                _ => tracing::warn!(value = %v, "ZTP_AGENT_ATTEMPTS is not a count >= 1; ignored"),
            }
        }
        c
    }

    /// Backoff before attempt `n + 1` after `n` failures: exponential, capped, and
    /// "equal jitter" (half fixed, half random) so that a storm of devices spreads out.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let cap = exp.min(self.backoff_max);
        let half = cap / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The directory a generation's relative paths (the controller's ca-cert) start from:
/// the fabric's directory for an in-memory compile, else the artifact directory.
pub fn base_dir(source: &Source) -> PathBuf {
    match source {
        Source::Fabric(f, ..) => match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
        Source::Artifacts(d) => d.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    LoggingIn,
    Creating,
    WaitingConnect,
    Connected,
    Failed,
}

impl JobState {
    pub fn finished(self) -> bool {
        matches!(self, JobState::Connected | JobState::Failed)
    }
}

/// A job as `GET /api/ztp/agents` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub management_ip: String,
    pub system_id: Option<String>,
    /// The fabric's name for the device, when it is a declared device.
    pub device: Option<String>,
    pub username: String,
    pub agent_type: String,
    pub platform: Option<String>,
    pub state: JobState,
    /// The controller's agent id, once created.
    pub agent_id: Option<String>,
    /// The agent's last `status.connection_state` seen.
    pub connection_state: Option<String>,
    /// Controller calls that failed so far.
    pub failed_attempts: u32,
    pub last_error: Option<String>,
    /// Asked for with the admin token (an operator), not by the device itself.
    pub by_admin: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// Why a request did not become a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    NoController,
    BadRequest(String),
    Busy,
}

/// The controller as a job needs it; the password only as a [`Secret`].
#[derive(Debug, Clone)]
struct ControllerSpec {
    url: String,
    user: String,
    password: Secret,
    ca_path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct JobSpec {
    id: String,
    ip: String,
    system_id: Option<String>,
    username: String,
    password: Secret,
    /// The controller's create body, without the password.
    body: Map<String, Value>,
    controller: ControllerSpec,
    created_at: String,
    by_admin: bool,
    /// Everything to scrub from what the job shows: the device password, the
    /// controller's, and every other password of the fabric.
    secrets: Vec<Secret>,
}

impl JobSpec {
    fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secrets.iter().collect::<Vec<_>>())
    }
}

struct Entry {
    view: JobView,
    task: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct Jobs {
    map: HashMap<String, Entry>,
    order: VecDeque<String>,
}

pub struct Agents {
    store: Arc<Store>,
    state: Arc<State>,
    base_dir: PathBuf,
    cfg: AgentConfig,
    jobs: Mutex<Jobs>,
    client: Mutex<Option<Arc<Controller>>>,
}

fn new_id() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn same_ip(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x.to_canonical() == y.to_canonical(),
        _ => a == b,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl Agents {
    pub fn new(state: Arc<State>, store: Arc<Store>, base_dir: PathBuf, cfg: AgentConfig) -> Arc<Agents> {
        Arc::new(Agents {
            store,
            state,
            base_dir,
            cfg,
            jobs: Mutex::new(Jobs::default()),
            client: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every job kept, oldest first; only those for `ip` when given.
    pub fn list(&self, ip: Option<&str>) -> Vec<JobView> {
        let j = self.jobs();
        j.order
            .iter()
            .filter_map(|id| j.map.get(id))
            .filter(|e| ip.is_none_or(|ip| same_ip(&e.view.management_ip, ip)))
            .map(|e| e.view.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<JobView> {
        self.jobs().map.get(id).map(|e| e.view.clone())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut JobView)) {
        if let Some(e) = self.jobs().map.get_mut(id) {
            f(&mut e.view);
            e.view.updated_at = now_rfc3339();
        }
    }

    fn set_state(&self, id: &str, s: JobState) {
        self.update(id, |v| v.state = s);
    }

    /// A line in the device's log (events of kind `agent`) and in the server's log.
    async fn event(&self, ip: &str, job: &str, text: String) {
        tracing::info!(ip, job, "{text}");
        let (store, ip) = (self.store.clone(), ip.to_string());
        let res = tokio::task::spawn_blocking(move || store.event(&ip, "agent", &text, None, None)).await;
        if let Ok(Err(e)) = res {
            tracing::warn!(error = %e, "could not record an agent event");
        }
    }

    /// Turn a device's request into a running job; returns it as queued.
    pub async fn submit(
        self: &Arc<Self>,
        req: AgentRequest,
        platform_hint: Option<&str>,
        by_admin: bool,
    ) -> Result<JobView, SubmitError> {
        let ip = req.management_ip.to_canonical();
        let ip_s = ip.to_string();
        let g = self.state.current();
        let Some(ctrl) = g.manifest.controller.as_ref() else {
            self.event(
                &ip_s,
                "-",
                "agent install refused: the fabric declares no controller (add a `controller` block)".into(),
            )
            .await;
            return Err(SubmitError::NoController);
        };
        let controller = ControllerSpec {
            url: ctrl.url.clone(),
            user: ctrl.user.clone(),
            password: Secret::new(ctrl.password.clone()),
            ca_path: ctrl.ca_cert.as_ref().map(|rel| self.base_dir.join(rel)),
        };
        // What the device reported about itself fills what its request leaves out.
        let row = {
            let (store, ip) = (self.store.clone(), ip_s.clone());
            tokio::task::spawn_blocking(move || store.device(&ip)).await.ok().and_then(Result::ok).flatten()
        };
        let reported_platform = row.as_ref().map(|r| r.platform.clone()).filter(|p| !p.is_empty());
        let system_id = req.system_id.clone().or_else(|| row.map(|r| r.system_id).filter(|s| !s.is_empty()));
        let hint = reported_platform.as_deref().or(platform_hint);
        let fs = fabric::settings_for(&g, ip, system_id.as_deref(), hint);
        let mut secrets = fabric::secrets(&g);
        drop(g);

        let mut body = fs.agent_params.clone();
        body.extend(req.fields);
        let agent_type = body.get("agent_type").and_then(Value::as_str).unwrap_or("onbox").to_string();
        body.insert("agent_type".into(), Value::String(agent_type.clone()));
        if agent_type == "offbox" {
            if !body.contains_key("platform") {
                let p = fs.platform.as_deref().map(fabric::controller_platform).ok_or_else(|| {
                    SubmitError::BadRequest(
                        "an offbox agent needs a `platform` (junos, eos, nxos, ...)".into(),
                    )
                })?;
                body.insert("platform".into(), Value::String(p.to_string()));
            }
        } else {
            // The controller takes `platform` for offbox agents only (GOSDK).
            body.remove("platform");
        }
        let username = req.username.or(fs.device_user).ok_or_else(|| {
            SubmitError::BadRequest(
                "no `username` given and the fabric has no device-user for this device".into(),
            )
        })?;
        let password = req.password.or(fs.device_user_password).ok_or_else(|| {
            SubmitError::BadRequest(
                "no `password` given and the fabric has no device-user password for this device".into(),
            )
        })?;
        body.insert("management_ip".into(), Value::String(ip_s.clone()));
        body.insert("username".into(), Value::String(username.clone()));
        let platform = body.get("platform").and_then(Value::as_str).map(str::to_string).or(fs.platform);

        for p in [&password, &controller.password] {
            if !p.is_empty() && !secrets.contains(p) {
                secrets.insert(0, p.clone());
            }
        }
        let now = now_rfc3339();
        let spec = JobSpec {
            id: new_id(),
            ip: ip_s.clone(),
            system_id: system_id.clone(),
            username: username.clone(),
            password,
            body,
            controller,
            created_at: now.clone(),
            by_admin,
            secrets,
        };
        let view = JobView {
            id: spec.id.clone(),
            management_ip: ip_s.clone(),
            system_id,
            device: fs.name,
            username,
            agent_type,
            platform,
            state: JobState::Queued,
            agent_id: None,
            connection_state: None,
            failed_attempts: 0,
            last_error: None,
            by_admin,
            created_at: now.clone(),
            updated_at: now,
        };
        let superseded = {
            let mut j = self.jobs();
            let active: Vec<String> =
                j.map.values().filter(|e| !e.view.state.finished()).map(|e| e.view.id.clone()).collect();
            let others = active
                .iter()
                .filter(|id| j.map.get(*id).is_some_and(|e| !same_ip(&e.view.management_ip, &ip_s)))
                .count();
            if others >= self.cfg.max_active {
                return Err(SubmitError::Busy);
            }
            let mut old = None;
            for id in active {
                if let Some(e) = j.map.get_mut(&id)
                    && same_ip(&e.view.management_ip, &ip_s)
                {
                    if let Some(t) = e.task.take() {
                        t.abort();
                    }
                    e.view.state = JobState::Failed;
                    e.view.last_error = Some(format!("superseded by job {}", spec.id));
                    e.view.updated_at = now_rfc3339();
                    old = Some(id);
                }
            }
            j.map.insert(spec.id.clone(), Entry { view: view.clone(), task: None });
            j.order.push_back(spec.id.clone());
            // Forget the oldest finished jobs beyond the history.
            let mut finished = j.map.values().filter(|e| e.view.state.finished()).count();
            let mut i = 0;
            while finished > self.cfg.history && i < j.order.len() {
                let id = j.order[i].clone();
                if j.map.get(&id).is_some_and(|e| e.view.state.finished()) {
                    j.map.remove(&id);
                    j.order.remove(i);
                    finished -= 1;
                } else {
                    i += 1;
                }
            }
            old
        };
        let who = if by_admin { "an operator (admin token)" } else { "the device" };
        let queued = format!(
            "agent job {} queued, asked by {who}: {} agent for {} as {}",
            spec.id, view.agent_type, ip_s, view.username
        );
        let id = spec.id.clone();
        let me = Arc::clone(self);
        // The device's request is answered without waiting for these log lines: in a
        // boot storm the status database is busy with every device's reports, and a
        // device's HTTP client gives up (curl -m 60) while its answer waits in line. The
        // job writes them first, so the log keeps its order.
        let handle = tokio::spawn(async move {
            if let Some(old) = superseded {
                let text = format!("agent job {old} superseded by a new request (job {})", spec.id);
                me.event(&spec.ip, &old, text).await;
            }
            me.event(&spec.ip, &spec.id, queued).await;
            me.run(spec).await
        });
        let mut j = self.jobs();
        match j.map.get_mut(&id) {
            Some(e) if !e.view.state.finished() => e.task = Some(handle.abort_handle()),
            _ => {}
        }
        Ok(view)
    }

    async fn run(self: Arc<Self>, job: JobSpec) {
        let outcome = self.drive(&job).await;
        let (task, log) = match outcome {
            Ok(agent_id) => {
                self.set_state(&job.id, JobState::Connected);
                self.event(&job.ip, &job.id, format!("agent {agent_id} is connected: the device is ready"))
                    .await;
                ("Device Ready", "Device is ready to be used".to_string())
            }
            Err(msg) => {
                let msg = job.scrub(&msg);
                self.update(&job.id, |v| {
                    v.state = JobState::Failed;
                    v.last_error = Some(msg.clone());
                });
                self.event(&job.ip, &job.id, format!("agent install failed: {msg}")).await;
                ("ZTP Failed", format!("agent install failed: {msg}"))
            }
        };
        self.settle(&job).await;
        let r = Report {
            ip: job.ip.clone(),
            system_id: job.system_id.clone(),
            platform: None,
            task: Some(task.into()),
            log: Some(log),
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.report(&r)).await {
            Ok(Ok(row)) => {
                tracing::info!(ip = %row.ip_addr, status = %row.status, task = %row.task, "agent job done");
                crate::web::live::device(&row);
            }
            Ok(Err(e)) => tracing::warn!(ip = %job.ip, error = %e, "could not record the agent result"),
            Err(_) => {}
        }
        if let Some(e) = self.jobs().map.get_mut(&job.id) {
            e.task = None;
        }
    }

    /// Wait (bounded) for the device's own report that follows its request, so that
    /// the final status is written after it rather than overwritten by it.
    async fn settle(&self, job: &JobSpec) {
        if job.by_admin || self.cfg.settle.is_zero() {
            return;
        }
        let until = Instant::now() + self.cfg.settle;
        let step = (self.cfg.settle / 20).clamp(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            let (store, ip) = (self.store.clone(), job.ip.clone());
            let row = tokio::task::spawn_blocking(move || store.device(&ip))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            if let Some(r) = row
                && (r.task == "ZTP Done" || r.task == "ZTP Failed")
                && r.last_updated_at >= job.created_at
            {
                return;
            }
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep(step).await;
        }
    }

    async fn client(&self, spec: &ControllerSpec) -> Result<Arc<Controller>, CallError> {
        let ca_pem = match &spec.ca_path {
            Some(p) => Some(read_ca(p).await?),
            None => None,
        };
        let settings = client::Settings {
            url: spec.url.clone(),
            user: spec.user.clone(),
            password: spec.password.clone(),
            ca_pem,
        };
        let key = settings.key();
        if let Some(c) = self.client.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && c.key() == key
        {
            return Ok(c.clone());
        }
        let limits = Limits {
            connect: self.cfg.connect_timeout,
            request: self.cfg.request_timeout,
            max_calls: self.cfg.max_calls,
        };
        // Reading the system trust store is file IO: off the async workers.
        let c = tokio::task::spawn_blocking(move || Controller::new(&settings, limits))
            .await
            .map_err(|_| CallError::Config("building the controller client failed".into()))??;
        let c = Arc::new(c);
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// One step with bounded retries; every failed attempt is logged and shown.
    async fn retry<T, F, Fut>(&self, job: &JobSpec, what: &str, mut f: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let n = self.cfg.attempts.max(1);
        for attempt in 1..=n {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let msg = job.scrub(&e.to_string());
                    self.update(&job.id, |v| {
                        v.failed_attempts += 1;
                        v.last_error = Some(msg.clone());
                    });
                    // A status error already names its call ("creating the agent: ...").
                    let msg = if msg.starts_with(what) { msg } else { format!("{what}: {msg}") };
                    if !e.retryable() {
                        return Err(msg);
                    }
                    if attempt == n {
                        return Err(format!("{msg} (gave up after {n} attempts)"));
                    }
                    let wait = self.cfg.backoff(attempt);
                    self.event(
                        &job.ip,
                        &job.id,
                        format!("attempt {attempt}/{n} failed: {msg}; retrying in {}", secs(wait)),
                    )
                    .await;
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(format!("{what}: no attempt made"))
    }

    /// Log in, replace any agent for the address, create it, wait until connected.
    /// Returns the agent id, or why it failed (already scrubbed of secrets).
    async fn drive(&self, job: &JobSpec) -> Result<String, String> {
        self.set_state(&job.id, JobState::LoggingIn);
        self.event(
            &job.ip,
            &job.id,
            format!("logging in to the controller {} as {}", job.controller.url, job.controller.user),
        )
        .await;
        let client = match self.client(&job.controller).await {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                self.update(&job.id, |v| v.last_error = Some(msg.clone()));
                return Err(msg);
            }
        };
        let c = &client;
        self.retry(job, "logging in", || c.token()).await?;

        self.set_state(&job.id, JobState::Creating);
        self.event(
            &job.ip,
            &job.id,
            format!(
                "creating the {} agent for {} on the controller",
                job.body.get("agent_type").and_then(Value::as_str).unwrap_or("onbox"),
                job.ip
            ),
        )
        .await;
        let mut full = job.body.clone();
        full.insert("password".into(), Value::String(job.password.expose().to_string()));
        let full = Value::Object(full);
        let (this, full_ref) = (self, &full);
        let agent_id = self
            .retry(job, "creating the agent", move || async move {
                for a in c.list_agents().await? {
                    if a.management_ips.iter().any(|x| same_ip(x, &job.ip)) {
                        this.event(
                            &job.ip,
                            &job.id,
                            format!("deleting the controller's existing agent {} for {}", a.id, job.ip),
                        )
                        .await;
                        c.delete_agent(&a.id).await?;
                    }
                }
                c.create_agent(full_ref, &job.secrets).await
            })
            .await?;
        drop(full);
        self.update(&job.id, |v| {
            v.agent_id = Some(agent_id.clone());
            v.state = JobState::WaitingConnect;
        });
        self.event(
            &job.ip,
            &job.id,
            format!(
                "agent {agent_id} created; waiting up to {} for it to connect",
                secs(self.cfg.connect_deadline)
            ),
        )
        .await;
        self.wait_connected(job, c, &agent_id).await.map(|()| agent_id)
    }

    async fn wait_connected(&self, job: &JobSpec, c: &Controller, agent_id: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.cfg.connect_deadline;
        let n = self.cfg.attempts.max(1);
        let mut failures = 0u32;
        let mut last_state: Option<String> = None;
        let mut last_job = (String::new(), String::new());
        loop {
            let mut wait = self.cfg.poll_interval;
            match c.agent_status(agent_id).await {
                Ok(s) => {
                    failures = 0;
                    let cs = s.connection_state.clone();
                    if last_state.as_deref() != Some(cs.as_str()) {
                        self.update(&job.id, |v| v.connection_state = Some(cs.clone()));
                        let shown = if cs.is_empty() { "none yet" } else { cs.as_str() };
                        self.event(&job.ip, &job.id, format!("agent {agent_id}: connection state {shown}"))
                            .await;
                        last_state = Some(cs.clone());
                    }
                    match cs.as_str() {
                        "connected" => return Ok(()),
                        "auth_failed" => {
                            return Err(format!(
                                "agent {agent_id}: the controller could not log in to the device as `{}` \
                                 (auth_failed): check the device user and its password in the fabric",
                                job.username
                            ));
                        }
                        _ => {}
                    }
                    let js = (s.job_state, s.job_error);
                    if !js.0.is_empty() && js != last_job {
                        let text = if js.1.is_empty() {
                            format!("agent {agent_id}: controller job {}", js.0)
                        } else {
                            format!("agent {agent_id}: controller job {}: {}", js.0, js.1)
                        };
                        let text = job.scrub(&text);
                        if js.0 == "failed" {
                            self.update(&job.id, |v| v.last_error = Some(text.clone()));
                        }
                        self.event(&job.ip, &job.id, text).await;
                        last_job = js;
                    }
                }
                Err(e) if e.is_not_found() => {
                    return Err(format!("agent {agent_id} disappeared from the controller"));
                }
                Err(e) => {
                    let msg = job.scrub(&e.to_string());
                    failures += 1;
                    self.update(&job.id, |v| {
                        v.failed_attempts += 1;
                        v.last_error = Some(msg.clone());
                    });
                    if !e.retryable() {
                        return Err(format!("reading agent {agent_id}: {msg}"));
                    }
                    if failures >= n {
                        return Err(format!(
                            "reading agent {agent_id}: {msg} ({failures} polls in a row failed)"
                        ));
                    }
                    wait = self.cfg.backoff(failures).max(self.cfg.poll_interval);
                    self.event(
                        &job.ip,
                        &job.id,
                        format!(
                            "reading agent {agent_id}: poll failed ({failures}/{n} in a row): {msg}; retrying in {}",
                            secs(wait)
                        ),
                    )
                    .await;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let last = last_state.filter(|s| !s.is_empty()).unwrap_or_else(|| "none".into());
                return Err(format!(
                    "agent {agent_id} did not connect within {} (last connection state: {last})",
                    secs(self.cfg.connect_deadline)
                ));
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
        }
    }
}

async fn read_ca(p: &Path) -> Result<Vec<u8>, CallError> {
    let shown = p.display().to_string();
    let md = tokio::fs::metadata(p).await.map_err(|e| CallError::Config(format!("ca-cert {shown}: {e}")))?;
    if md.len() > MAX_CA_FILE {
        return Err(CallError::Config(format!("ca-cert {shown} is larger than {MAX_CA_FILE} bytes")));
    }
    tokio::fs::read(p).await.map_err(|e| CallError::Config(format!("ca-cert {shown}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_capped_with_jitter() {
        let c = AgentConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..AgentConfig::default()
        };
        for n in 1..40 {
            let want = (100u64 << (n - 1).min(20)).min(1000);
            let got = c.backoff(n).as_millis() as u64;
            assert!(got >= want / 2 && got <= want, "attempt {n}: {got} ms, cap {want}");
        }
    }

    #[test]
    fn ids_look_like_uuids() {
        let a = new_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_id());
        assert!(same_ip("::ffff:10.0.0.1", "10.0.0.1"));
    }
}
