//! One device's journey, boot by boot: DHCP through the relay, the address taken on,
//! the boot file fetched and checked, the script run in the sandbox with stubs, then
//! what the NOS does next (reboot into the new image and ZTP again, or done), and the
//! runtime's verdict. Every step is printed; `--record` keeps it all as JSON.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ztpc::platform::Platform;

use super::device::{Device, mac_text};
use super::dhcp::{self, Relay};
use super::records::Record;
use super::sandbox::{self, Ended};
use super::{address, bootfile, retry, status, stubs};

#[derive(Debug, Clone)]
pub struct Options {
    pub server: Ipv4Addr,
    pub http_port: u16,
    pub relay: Relay,
    pub device: Device,
    /// The release an installed image boots into (asked for when an image is installed).
    pub next_version: Option<String>,
    /// The interface to put the address on (default: the one that routes to the server).
    pub interface: Option<String>,
    pub work_dir: Option<PathBuf>,
    pub script_timeout: Duration,
    pub wait: Duration,
    pub max_boots: u32,
    pub record: Option<PathBuf>,
}

/// How the journey ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed(String),
}

pub struct Journey {
    opts: Options,
    started: Instant,
    step: u32,
    boots: Vec<Value>,
    /// The script failed on the device: the runtime's "failed" is due at once.
    script_failed: bool,
}

impl Journey {
    pub fn new(opts: Options) -> Journey {
        Journey { opts, started: Instant::now(), step: 0, boots: Vec::new(), script_failed: false }
    }

    fn say(&mut self, text: impl AsRef<str>) {
        self.step += 1;
        println!("[{:7.2}s] {:>2}. {}", self.started.elapsed().as_secs_f64(), self.step, text.as_ref());
    }

    fn detail(&self, text: impl AsRef<str>) {
        println!("{:16}{}", "", text.as_ref());
    }

    /// Play the device; Ok(outcome) once the runtime has spoken or the journey broke off.
    pub fn run(&mut self) -> Outcome {
        let tmp;
        let dir = match &self.opts.work_dir {
            Some(d) => d.clone(),
            None => match tempfile::Builder::new().prefix("ztp-emulate.").tempdir() {
                Ok(t) => {
                    tmp = t;
                    sandbox::temp_dir(Some(tmp.path().to_path_buf()));
                    tmp.path().to_path_buf()
                }
                Err(e) => {
                    return self
                        .finish(Outcome::Failed(format!("cannot create a work directory: {e}")), None);
                }
            },
        };
        let mut leased = None;
        let outcome = self.boots(&dir, &mut leased);
        sandbox::temp_dir(None);
        let outcome = match (outcome, leased) {
            (Err(e), _) => Outcome::Failed(e),
            (Ok(()), None) => Outcome::Failed("no address was leased".into()),
            (Ok(()), Some(ip)) => self.verdict(ip),
        };
        self.finish(outcome, leased)
    }

    fn api(&self) -> SocketAddr {
        SocketAddr::from((self.opts.server, self.opts.http_port))
    }

    fn boots(&mut self, dir: &Path, leased: &mut Option<Ipv4Addr>) -> Result<(), String> {
        for boot in 1..=self.opts.max_boots {
            let d = self.opts.device.clone();
            self.say(format!(
                "power on (boot {boot}): {} {} serial {} mac {} running {}",
                d.platform,
                d.model,
                d.serial,
                mac_text(&d.mac),
                d.version
            ));
            let (dev, via) = match &self.opts.interface {
                Some(i) => (i.clone(), address::route_to(self.opts.server).ok().and_then(|r| r.1)),
                None => address::route_to(self.opts.server)?,
            };
            if boot == 1 && address::set_mac(&dev, &mac_text(&d.mac))? {
                self.say(format!("management port {dev} takes the switch's MAC {}", mac_text(&d.mac)));
            }
            let script = dir.join("script");
            // A failed download sends the NOS back to DHCP after its pause (or ends ZTP).
            let (lease, url, size) = retry::with_pauses(
                retry::download_pauses(d.platform),
                || self.lease_and_fetch(&d, &dev, via.as_deref(), &script, leased),
                |e, pause| {
                    println!(
                        "{:16}{e}; {} starts over (DHCP, download) in {:.1} s",
                        "",
                        d.platform,
                        pause.as_secs_f64()
                    )
                },
            )?;
            let body = std::fs::read(&script).map_err(|e| e.to_string())?;
            let checked = bootfile::check(d.platform, &body)?;
            // The NOS saves the file executable and runs it (never through a shell).
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| e.to_string())?;
            self.say(format!("boot file {url}: {size} bytes, {checked}"));
            let hostname = lease.hostname().unwrap_or_default();
            let _ = std::fs::remove_file(dir.join("commands.log"));
            stubs::install(dir, &d, lease.address, lease.prefix, &hostname)?;
            self.say(format!("running the script as {} does, NOS commands stubbed", d.platform));
            let ended = sandbox::run(dir, &d, &lease.address.to_string(), self.opts.script_timeout)?;
            let rec = Record::read(&dir.join("commands.log"));
            for a in rec.actions() {
                self.detail(format!("$ {a}"));
            }
            let out = std::fs::read_to_string(dir.join("script.out")).unwrap_or_default();
            let (ended_text, next) = self.next_step(&d, &ended, &rec)?;
            self.boots.push(json!({
                "boot": boot, "version": d.version, "address": lease.address.to_string(),
                "hostname": hostname, "boot_file": url, "commands": rec.commands, "ended": ended_text,
                "output": out,
            }));
            self.say(&ended_text);
            if let Ended::Exited(c) = ended
                && c != 0
            {
                self.script_failed = true;
                for l in out.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                    self.detail(format!("| {l}"));
                }
            }
            match next {
                Some(v) => self.opts.device.version = v,
                None => return Ok(()),
            }
        }
        Err(format!("still rebooting after {} boots", self.opts.max_boots))
    }

    /// DHCP through the relay, the address taken on, the boot file downloaded to
    /// `script`: (lease, boot file URL, size).
    fn lease_and_fetch(
        &mut self,
        d: &Device,
        dev: &str,
        via: Option<&str>,
        script: &Path,
        leased: &mut Option<Ipv4Addr>,
    ) -> Result<(dhcp::Lease, String, u64), String> {
        let mut lines = Vec::new();
        let lease = dhcp::exchange(d, &self.opts.relay, self.opts.server, |l| lines.push(l));
        for l in lines {
            self.say(l);
        }
        let lease = lease?;
        // A reboot clears the management port: an older lease goes.
        if let Some(old) = leased.filter(|a| *a != lease.address) {
            address::forget(old, dev);
        }
        *leased = Some(lease.address);
        let took = address::take(lease.address, lease.prefix, self.opts.server, dev, via)?;
        self.say(format!("address taken: {took}"));
        let url = bootfile::url(d.platform, &lease)?;
        let size = bootfile::fetch(d, &url, lease.address, script)?;
        Ok((lease, url, size))
    }

    /// What the NOS does after the script: (what happened, Some(version) to boot again).
    fn next_step(&self, d: &Device, ended: &Ended, rec: &Record) -> Result<(String, Option<String>), String> {
        let new_version = || -> Result<String, String> {
            if let Some(v) = &self.opts.next_version {
                return Ok(v.clone());
            }
            let file = rec.image().map(|(f, _)| f.to_string()).unwrap_or_default();
            let ztp_json =
                status::get(self.api(), "/ztp.json").ok().filter(|(c, _)| *c == 200).map(|(_, b)| b);
            infer_version(d.platform, &file, ztp_json.as_deref().unwrap_or("")).ok_or_else(|| {
                format!(
                    "the script installed {}; no release in ztp.json matches its name: pass --next-version",
                    if file.is_empty() { "an image" } else { &file }
                )
            })
        };
        Ok(match ended {
            Ended::Killed { timed_out: true } => {
                return Err(format!("the script did not finish within {:?}", self.opts.script_timeout));
            }
            Ended::Killed { timed_out: false } if rec.rebooted() => {
                let v = new_version()?;
                (format!("the script rebooted the switch; it boots {v} and ZTP starts again"), Some(v))
            }
            Ended::Killed { .. } => return Err("the script was killed".into()),
            // EOS reboots after the script; without a startup-config ZTP runs again.
            Ended::Exited(0)
                if d.platform == Platform::Eos
                    && rec.contains("boot system flash:")
                    && !rec.contains("copy running-config startup-config") =>
            {
                let v = new_version()?;
                (format!("script exited 0 with no startup-config: EOS reboots into {v}, ZTP again"), Some(v))
            }
            // POAP reloads after success and boots the "boot nxos" image; POAP is over.
            Ended::Exited(0) if d.platform == Platform::Nxos && rec.image().is_some() => {
                let v = new_version()?;
                (format!("script exited 0: POAP reloads into {v} and replays the scheduled config"), None)
            }
            Ended::Exited(0) => ("script exited 0: ZTP is over on the device".into(), None),
            Ended::Exited(c) => (format!("script exited {c}: ZTP failed on the device"), None),
        })
    }

    fn verdict(&mut self, ip: Ipv4Addr) -> Outcome {
        let api = self.api();
        self.say(format!(
            "waiting for the runtime's verdict on {ip} (http://{api}/api/ztp/device/status/{ip})"
        ));
        let mut seen = Vec::new();
        let within =
            if self.script_failed { self.opts.wait.min(Duration::from_secs(10)) } else { self.opts.wait };
        let v =
            status::wait(api, ip, within, |v| seen.push(format!("runtime: {} ({})", v["status"], v["task"])));
        for s in seen {
            self.detail(s);
        }
        match v {
            Some(v) if v["status"] == "completed" => Outcome::Completed,
            Some(v) => {
                let log = status::log(api, ip);
                for l in log.iter().rev().take(3).collect::<Vec<_>>().into_iter().rev() {
                    self.detail(format!("log: {l}"));
                }
                Outcome::Failed(format!("the runtime says {} ({})", v["status"], v["task"]))
            }
            None => Outcome::Failed(format!("the runtime did not say completed or failed within {within:?}")),
        }
    }

    fn finish(&mut self, outcome: Outcome, ip: Option<Ipv4Addr>) -> Outcome {
        match &outcome {
            Outcome::Completed => self.say("completed: the runtime says the device is ready"),
            Outcome::Failed(why) => self.say(format!("FAILED: {why}")),
        }
        if let Some(path) = &self.opts.record {
            let doc = json!({
                "platform": self.opts.device.platform.name(),
                "serial": self.opts.device.serial,
                "address": ip.map(|i| i.to_string()),
                "boots": self.boots,
                "completed": outcome == Outcome::Completed,
                "seconds": self.started.elapsed().as_secs_f64(),
                "reason": match &outcome { Outcome::Failed(w) => Value::from(w.as_str()), _ => Value::Null },
            });
            if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default()) {
                eprintln!("ztp-emulate: cannot write --record {}: {e}", path.display());
            }
        }
        outcome
    }
}

/// The release an image boots, when the user did not say: the accepted version (any
/// `<nos>-versions` list in ztp.json) whose letters and digits appear in the image's
/// file name (`EOS-4.30.1F.swi` -> 4.30.1F, `nxos64-cs.10.3.3.F.bin` -> 10.3(3)); the
/// longest match wins, as "5.9.1" must beat "5.9".
pub fn infer_version(p: Platform, image: &str, ztp_json: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(ztp_json).ok()?;
    let key = format!("{}-versions", p.ztp_json_prefix());
    let norm = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase();
    let name = norm(image.rsplit('/').next().unwrap_or(image));
    let mut best: Option<(usize, String)> = None;
    for section in doc.as_object()?.values() {
        let versions = match &section[&key] {
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Value::String(v) => vec![v.clone()],
            _ => Vec::new(),
        };
        for v in versions {
            // SONiC's "SONiC." prefix and EVO's "-EVO" suffix are not in image names.
            let core = norm(&v).trim_start_matches("sonic").trim_end_matches("evo").to_string();
            if !core.is_empty() && name.contains(&core) && best.as_ref().is_none_or(|(n, _)| core.len() > *n)
            {
                best = Some((core.len(), v));
            }
        }
    }
    best.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_of_an_image_is_read_from_ztp_json() {
        let doc = r#"{"defaults": {}, "eos": {"eos-versions": ["4.29.2F", "4.30.1F"]},
            "nxos": {"nxos-versions": ["10.3(3)"]}, "sonic": {"sonic-versions": ["SONiC.202311.1"]},
            "junos-evo": {"junos-evo-versions": ["23.2R1.15-EVO"]},
            "cumulus": {"cumulus-versions": ["5.9", "5.9.1"]}}"#;
        let f = |p, i| infer_version(p, i, doc);
        assert_eq!(f(Platform::Eos, "/mnt/flash/EOS-4.30.1F.swi").as_deref(), Some("4.30.1F"));
        assert_eq!(f(Platform::Nxos, "/bootflash/nxos64-cs.10.3.3.F.bin").as_deref(), Some("10.3(3)"));
        assert_eq!(f(Platform::Sonic, "/host/ztpc-sonic-202311.1.bin").as_deref(), Some("SONiC.202311.1"));
        assert_eq!(
            f(Platform::JunosEvo, "/var/tmp/junos-evo-23.2R1.15.iso").as_deref(),
            Some("23.2R1.15-EVO")
        );
        assert_eq!(f(Platform::Cumulus, "/var/tmp/cumulus-linux-5.9.1.bin").as_deref(), Some("5.9.1"));
        assert_eq!(f(Platform::Eos, "/mnt/flash/EOS-4.31.0F.swi"), None, "no listed release in the name");
        assert_eq!(infer_version(Platform::Eos, "EOS-4.30.1F.swi", "not json"), None);
    }
}
