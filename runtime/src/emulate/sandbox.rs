//! Run the bootstrap script as the switch would, without touching this machine: in a
//! private mount namespace (`unshare -m`), chrooted into an overlay of `/` whose upper
//! layer is a tmpfs (so the script may write /etc, /host, /mnt/flash, /bootflash ... and
//! every write vanishes with the run), with the device directory (stubs, facts, the
//! record) bound at /run/ztp-emulate. Network namespace, /dev, /proc and /sys are the
//! caller's, with /sys, /proc/sys and /proc/sysrq-trigger read only. Needs root
//! (CAP_SYS_ADMIN) and util-linux `unshare`, `mount`, `chroot`.
//!
//! A reboot stub kills the script's process group, as the box going down would.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ztpc::platform::Platform;

use super::device::{Device, mac_text};

/// Mount the overlay, bind the device directory, exec the script in the chroot.
const WRAPPER: &str = r#"set -e
D=$1; S=$2; shift 2
mount -t tmpfs -o mode=0755 ztp-emulate "$S"
mkdir -p "$S/up" "$S/work" "$S/root"
cp -a "$D/seed/." "$S/up/"
mount -t overlay ztp-emulate -o "lowerdir=/,upperdir=$S/up,workdir=$S/work" "$S/root"
for d in dev proc sys; do mount --rbind "/$d" "$S/root/$d"; done
# What a script could change outside its overlay through /proc and /sys: read only.
for p in sys proc/sys proc/sysrq-trigger; do
    [ -e "$S/root/$p" ] || continue
    mount --bind "$S/root/$p" "$S/root/$p"
    mount -o remount,bind,ro "$S/root/$p"
done
mkdir -p "$S/root/run/ztp-emulate"
mount --bind "$D" "$S/root/run/ztp-emulate"
exec chroot "$S/root" /usr/bin/env -i "$@"
"#;

/// The process group of the sandbox running now (0: none), for [`kill_running`].
static RUNNING: AtomicU32 = AtomicU32::new(0);
/// A temporary work directory to remove if the emulator is interrupted.
static TEMP_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Remember (Some) or forget (None) the temporary work directory.
pub fn temp_dir(dir: Option<PathBuf>) {
    if let Ok(mut d) = TEMP_DIR.lock() {
        *d = dir;
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether [`abandon`] ran (the emulator was interrupted).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// After an interrupt: the script killed, the temporary work directory removed.
pub fn abandon() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    kill_running();
    if let Some(d) = TEMP_DIR.lock().ok().and_then(|mut d| d.take()) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Kill the sandbox that is running, if any: an interrupted emulator must not leave a
/// script running on its own (the sandbox has its own process group, so Ctrl-C does not
/// reach it).
pub fn kill_running() {
    let pgid = RUNNING.swap(0, Ordering::SeqCst);
    if pgid != 0 {
        // "-s KILL -- -PGID": procps' kill ignores a bare "-KILL -PGID".
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]).status();
    }
}

pub enum Ended {
    Exited(i32),
    /// Killed: by a reboot stub, or by us at the deadline (`timed_out`).
    Killed {
        timed_out: bool,
    },
}

/// Files the NOS has before ZTP starts (the overlay's seed).
fn seed(dir: &Path, d: &Device) -> Result<(), String> {
    let s = dir.join("seed");
    for sub in ["var/tmp", "var/log", "tmp", "mnt/flash", "bootflash", "volatile", "host/ztp", "etc/sonic"] {
        std::fs::create_dir_all(s.join(sub)).map_err(|e| e.to_string())?;
    }
    if d.platform == Platform::Cumulus {
        let lsb = format!(
            "DISTRIB_ID=\"Cumulus Linux\"\nDISTRIB_RELEASE={}\nDISTRIB_DESCRIPTION=\"Cumulus Linux {}\"\n",
            d.version, d.version
        );
        std::fs::write(s.join("etc/lsb-release"), lsb).map_err(|e| e.to_string())?;
    }
    if d.platform == Platform::Sonic {
        // SONiC images have the docker and redis groups its users join.
        let mut group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        for (g, gid) in [("docker", 999), ("redis", 998)] {
            if !group.lines().any(|l| l.starts_with(&format!("{g}:"))) {
                group.push_str(&format!("{g}:x:{gid}:\n"));
            }
        }
        std::fs::write(s.join("etc/group"), group).map_err(|e| e.to_string())?;
        let v = format!("build_version: '{}'\n", d.version.trim_start_matches("SONiC."));
        std::fs::write(s.join("etc/sonic/sonic_version.yml"), v).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Run `dir/script` (already fetched) for device `d`; its output goes to `dir/script.out`.
pub fn run(dir: &Path, d: &Device, ip: &str, timeout: Duration) -> Result<Ended, String> {
    seed(dir, d)?;
    let scratch = dir.join("mnt");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let out = std::fs::File::create(dir.join("script.out")).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut env = vec![
        "PATH=/run/ztp-emulate/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "HOME=/root".into(),
        "LANG=C.UTF-8".into(),
        "USER=root".into(),
    ];
    if d.platform == Platform::Nxos {
        let mac = mac_text(&d.mac);
        env.extend([
            "PYTHONPATH=/run/ztp-emulate/py".into(),
            format!("POAP_SERIAL={}", d.serial),
            format!("POAP_MAC={mac}"),
            format!("POAP_MGMT_MAC={mac}"),
            "POAP_INTF=mgmt0".into(),
            "POAP_VRF=management".into(),
            "POAP_PHASE=USB_DHCP".into(),
            format!("POAP_IP={ip}"),
        ]);
    }
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", WRAPPER, "ztp-emulate-sandbox"])
        .arg(dir)
        .arg(&scratch)
        .args(&env)
        .arg("/run/ztp-emulate/script")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    RUNNING.store(child.id(), Ordering::SeqCst);
    let until = Instant::now() + timeout;
    let status: ExitStatus = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > until {
            kill_running();
            let _ = child.wait();
            let _ = std::fs::remove_dir(&scratch);
            return Ok(Ended::Killed { timed_out: true });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    RUNNING.store(0, Ordering::SeqCst);
    let _ = std::fs::remove_dir(&scratch);
    Ok(match status.code() {
        Some(c) => Ended::Exited(c),
        None => Ended::Killed { timed_out: false },
    })
}
