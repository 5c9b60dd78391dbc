//! Device journeys, power-on to completed, with `ztp-emulate` against the real
//! `ztp-runtime` and a fake controller, in network namespaces (root needed; SKIPPED
//! without it unless ZTP_REQUIRE_ORACLES=1). Each platform's run checks the exact
//! commands its real bootstrap script issued to the stubbed NOS.
#![allow(clippy::unwrap_used)]

#[path = "journeys_support.rs"]
mod lab;

use std::time::Duration;

use lab::{Lab, cannot_run, sh, sha256_hex};

pub const JUNOS_IMAGE: &[u8] = b"junos image 23.2R1.14 for the journey tests\n";
pub const EOS_IMAGE: &[u8] = b"EOS-4.30.1F.swi for the journey tests\n";
pub const EVO_IMAGE: &[u8] = b"junos-evo 23.2R1.15-EVO for the journey tests\n";
pub const NXOS_IMAGE: &[u8] = b"nxos64-cs.10.3.3.F.bin for the journey tests\n";
pub const SONIC_IMAGE: &[u8] = b"sonic 202311.1 for the journey tests\n";
pub const CUMULUS_IMAGE: &[u8] = b"cumulus-linux 5.9.1 for the journey tests\n";
/// Custom configs that never end on their own (distinct sleeps, to find them in /proc).
const SLOW: &[u8] = b"#!/bin/sh\nexec sleep 97.31\n";
const SLOW2: &[u8] = b"#!/bin/sh\nexec sleep 97.32\n";

/// Run by every journey, as root in the emulator's sandbox: its writes must stay there.
const CUSTOM: &[u8] = b"#!/bin/sh\n# custom config run by every journey\necho custom-config ran\n\
echo canary > /etc/ztp-journey-canary || exit 1\n\
if echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null; then echo /proc/sys is writable; exit 1; fi\n";

/// The journey fabric: one relay subnet; a known device per platform (by serial,
/// location or MAC) and platform defaults for unknown ones.
fn fabric(controller: &str) -> String {
    let junos_sha = sha256_hex(JUNOS_IMAGE);
    let eos_sha = sha256_hex(EOS_IMAGE);
    let (evo_sha, nxos_sha) = (sha256_hex(EVO_IMAGE), sha256_hex(NXOS_IMAGE));
    let (sonic_sha, cumulus_sha) = (sha256_hex(SONIC_IMAGE), sha256_hex(CUMULUS_IMAGE));
    format!(
        r#"fabric "journeys" {{
    ztp-server "10.77.0.5"
    controller "{controller}" {{
        user "ztp"
        password (file)"secrets/controller"
    }}
    dhcp {{
        lease-time 7200
        subnet "10.77.0.0/24" {{
            router "10.77.0.1"
            pool "10.77.0.100" "10.77.0.199"
        }}
        subnet "10.77.1.0/24" {{
            router "10.77.1.1"
            pool "10.77.1.100" "10.77.1.199"
        }}
    }}
    defaults {{
        root-password (file)"secrets/root"
        device-user "aosadmin" password=(file)"secrets/device"
        agent "onbox" install-requirements=#true
        custom-config "scripts/custom.sh"
    }}
    platform "junos" {{
        versions "23.2R1.14"
        image "images/junos-23.2R1.14.tgz" sha256="{junos_sha}"
    }}
    platform "junos-evo" {{
        versions "23.2R1.15-EVO"
        image "images/junos-evo-23.2R1.15.iso" sha256="{evo_sha}"
    }}
    platform "eos" {{
        versions "4.30.1F"
        image "images/EOS-4.30.1F.swi" sha256="{eos_sha}"
    }}
    platform "nxos" {{
        versions "10.3(3)"
        image "images/nxos64-cs.10.3.3.F.bin" sha256="{nxos_sha}"
    }}
    platform "sonic" {{
        versions "SONiC.202311.1"
        image "images/sonic-202311.1.bin" sha256="{sonic_sha}"
    }}
    platform "cumulus" {{
        versions "5.9.1"
        image "http://10.77.0.5/images/EOS-4.30.1F.swi" sha256="{}"
    }}
    // The model's image wins over the platform's (whose sha256 is wrong on purpose).
    model "MSN2410" {{ image "images/cumulus-linux-5.9.1.bin" sha256="{cumulus_sha}"; }}
    device "leaf1" platform="junos" {{
        serial "JN0001"
        address "10.77.1.21"
        dual-routing-engine #true
    }}
    device "spine1" platform="eos" {{
        mac "52:54:00:77:00:11"
        address "10.77.1.11"
    }}
    device "sonic1" platform="sonic" {{
        serial "SONDEV1"
        address "10.77.1.41"
        model "S5248F-ON"
    }}
    device "cum1" platform="cumulus" {{
        mac "52:54:00:77:00:51"
        address "10.77.1.51"
        versions "5.4.0"
    }}
    device "nx1" platform="nxos" {{
        serial "SALDEV1"
    }}
    device "evo1" platform="junos-evo" {{
        address "10.77.1.61"
        location remote-id="mgmt-sw2" circuit-id="et-0/0/1"
    }}
    device "slow1" platform="sonic" {{
        serial "SLOW1"
        custom-config "scripts/slow.sh"
    }}
    device "slow2" platform="sonic" {{
        serial "SLOW2"
        custom-config "scripts/slow2.sh"
    }}
    device "edge1" platform="junos" {{
        address "10.77.1.31"
        location remote-id="mgmt-sw1" circuit-id="ge-0/0/7"
    }}
}}
"#,
        "0".repeat(64)
    )
}

fn lab_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("images/junos-23.2R1.14.tgz", JUNOS_IMAGE),
        ("images/EOS-4.30.1F.swi", EOS_IMAGE),
        ("images/junos-evo-23.2R1.15.iso", EVO_IMAGE),
        ("images/nxos64-cs.10.3.3.F.bin", NXOS_IMAGE),
        ("images/sonic-202311.1.bin", SONIC_IMAGE),
        ("images/cumulus-linux-5.9.1.bin", CUMULUS_IMAGE),
        ("scripts/custom.sh", CUSTOM),
        ("scripts/slow.sh", SLOW),
        ("scripts/slow2.sh", SLOW2),
    ]
}

async fn lab() -> Lab {
    Lab::start(fabric, &lab_files()).await
}

fn assert_completed(lab: &Lab, run: &lab::Run) {
    assert!(run.ok, "emulator failed:\n{}\nruntime log:\n{}", run.stdout, lab.runtime_log());
    let st = lab.status(&run.address());
    assert_eq!(st["status"], "completed", "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junos_known_dual_re_device_power_on_to_completed() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;
    let run = lab
        .emulate("10.77.1.1", &["--platform", "junos", "--serial", "JN0001", "--version", "23.2R1.14"])
        .await;
    assert_completed(&lab, &run);
    assert_eq!(run.address(), "10.77.1.21");
    assert_eq!(run.boots(), 1);
    assert_eq!(
        run.actions(1),
        vec![
            "cli -c configure; set system root-authentication encrypted-password \"<$6$ hash>\"; \
             set system login user aosadmin class super-user authentication encrypted-password \"<$6$ hash>\"; \
             set system services ssh; set system services netconf ssh; \
             set system commit synchronize; commit synchronize and-quit",
            "cli -c configure; delete chassis auto-image-upgrade; set system commit synchronize; commit synchronize and-quit",
        ]
    );
    let log = lab.device_log("10.77.1.21");
    for want in [
        "Gathering facts",
        "Checking version",
        "Setting passwords",
        "Custom config",
        "ZTP Done",
        "Device Ready",
    ] {
        assert!(log.iter().any(|l| l.contains(want)), "{want} not in {log:#?}");
    }
    assert!(!log.iter().any(|l| l.contains(lab::DEVICE_PW) || l.contains(lab::ROOT_PW)), "{log:#?}");
    // The custom config wrote /etc in the sandbox's overlay, not on this machine.
    assert!(!std::path::Path::new("/etc/ztp-journey-canary").exists());
}

async fn journey(platform: &str, args: &[&str]) -> (Lab, lab::Run) {
    let mut lab = lab().await;
    let mut all = vec!["--platform", platform];
    all.extend_from_slice(args);
    let run = lab.emulate("10.77.1.1", &all).await;
    (lab, run)
}

/// The facts the script gathered last reached the runtime: serial, version, address.
fn assert_facts(lab: &Lab, run: &lab::Run, serial: &str, version: &str) {
    let log = lab.device_log(&run.address());
    let facts =
        log.iter().rev().find(|l| l.contains("Gathering facts")).unwrap_or_else(|| panic!("{log:#?}"));
    for want in [serial, version, run.address().as_str()] {
        assert!(facts.contains(want), "{want} not in {facts}");
    }
    assert!(!log.iter().any(|l| l.contains(lab::DEVICE_PW) || l.contains(lab::ROOT_PW)), "{log:#?}");
}

const JUNOS_PASSWORDS: &str = "cli -c configure; set system root-authentication encrypted-password \"<$6$ hash>\"; \
     set system login user aosadmin class super-user authentication encrypted-password \"<$6$ hash>\"; \
     set system services ssh; set system services netconf ssh; commit and-quit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junos_evo_unknown_device_power_on_to_completed() {
    if cannot_run() {
        return;
    }
    let (lab, run) = journey("junos-evo", &["--serial", "EVO0001", "--version", "23.2R1.15-EVO"]).await;
    assert_completed(&lab, &run);
    assert_facts(&lab, &run, "EVO0001", "23.2R1.15-EVO");
    assert_eq!(run.record["boots"][0]["boot_file"], "tftp://10.77.0.5/ztp-junos-evo.py");
    assert_eq!(
        run.actions(1),
        vec![JUNOS_PASSWORDS, "cli -c configure; delete chassis auto-image-upgrade; commit and-quit"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eos_upgrade_and_reboot_journey() {
    if cannot_run() {
        return;
    }
    let (lab, run) = journey(
        "eos",
        &[
            "--mac",
            "52:54:00:77:00:11",
            "--serial",
            "JPE0001",
            "--version",
            "4.29.2F",
            "--next-version",
            "4.30.1F",
        ],
    )
    .await;
    assert_completed(&lab, &run);
    assert_eq!(run.address(), "10.77.1.11", "spine1's MAC reservation");
    assert_eq!(run.boots(), 2, "{}", run.stdout);
    // Boot 1: the image over HTTP, sha256 checked, "boot system", exit 0 without a
    // startup-config; EOS reboots and ZTP runs the script again on 4.30.1F.
    assert_eq!(
        run.actions(1),
        vec![
            "FastCli -p 15 -c configure\\nboot system flash:EOS-4.30.1F.swi".to_string(),
            format!("image: /mnt/flash/EOS-4.30.1F.swi sha256={}", sha256_hex(EOS_IMAGE)),
        ]
    );
    assert_eq!(run.record["boots"][1]["version"], "4.30.1F");
    assert_eq!(
        run.actions(2),
        vec![
            "FastCli -p 15 -c configure\\nusername admin privilege 15 role network-admin secret sha512 <$6$ hash>\\n\
             username aosadmin privilege 15 role network-admin secret sha512 <$6$ hash>\\n\
             management api http-commands\\nno shutdown\\nend",
            "FastCli -p 15 -c copy running-config startup-config",
        ]
    );
    let log = lab.device_log("10.77.1.11");
    assert!(log.iter().any(|l| l.contains("sha256 verified")), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("running 4.30.1F is accepted")), "{log:#?}");
    assert_facts(&lab, &run, "JPE0001", "4.30.1F");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxos_unknown_device_power_on_to_completed() {
    if cannot_run() {
        return;
    }
    let (lab, run) = journey("nxos", &["--serial", "SAL0001", "--version", "10.3(3)"]).await;
    assert_completed(&lab, &run);
    assert_facts(&lab, &run, "SAL0001", "10.3(3)");
    let ip = run.address();
    assert_eq!(
        run.actions(1),
        vec![
            "cli terminal dont-ask ; copy http://10.77.0.5/ztp.json bootflash:poap_ztpc.json vrf management".to_string(),
            "cli terminal dont-ask ; copy http://10.77.0.5/custom/scripts/custom.sh bootflash:poap_ztpc_custom vrf management".into(),
            "cli terminal dont-ask ; copy bootflash:poap_ztpc.cfg scheduled-config".into(),
            "scheduled-config: username admin password 5 <$5$ hash> role network-admin".into(),
            "scheduled-config: username aosadmin password 5 <$5$ hash> role network-admin".into(),
            "scheduled-config: feature nxapi".into(),
            "scheduled-config: feature bash-shell".into(),
            format!(
                "cli terminal dont-ask ; copy http://10.77.0.5/api/ztp/create_agent?management_ip={ip}&username=aosadmin\
                 &system_id=SAL0001&agent_type=onbox&install_requirements=true bootflash:poap_ztpc_agent.json vrf management"
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sonic_unknown_device_power_on_to_completed() {
    if cannot_run() {
        return;
    }
    let (lab, run) = journey("sonic", &["--serial", "SON0001"]).await;
    assert_completed(&lab, &run);
    assert_facts(&lab, &run, "SON0001", "202311.1");
    assert_eq!(run.record["boots"][0]["boot_file"], "http://10.77.0.5/ztp-sonic.sh", "option 239");
    assert_eq!(
        run.actions(1),
        vec![
            "chpasswd -e root:<$6$ hash>",
            "useradd -m -s /bin/bash -G sudo,docker,redis aosadmin",
            "chpasswd -e aosadmin:<$6$ hash>",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulus_unknown_device_power_on_to_completed() {
    if cannot_run() {
        return;
    }
    let (lab, run) = journey("cumulus", &["--serial", "CUM0001", "--version", "5.9.1"]).await;
    assert_completed(&lab, &run);
    assert_facts(&lab, &run, "CUM0001", "5.9.1");
    assert_eq!(run.record["boots"][0]["boot_file"], "http://10.77.0.5/ztp-cumulus.sh", "option 239");
    assert_eq!(
        run.actions(1),
        vec![
            "chpasswd -e root:<$6$ hash>",
            "nv set system aaa user aosadmin role system-admin",
            "nv set system aaa user aosadmin hashed-password <$6$ hash>",
            "nv config apply -y",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junos_upgrade_reboot_journey() {
    if cannot_run() {
        return;
    }
    // No --next-version: the emulator finds 23.2R1.14 (ztp.json) in the image's name.
    let (lab, run) = journey("junos", &["--serial", "JN0009", "--version", "22.4R1.10"]).await;
    assert_completed(&lab, &run);
    assert_eq!(run.boots(), 2, "{}", run.stdout);
    let add = "request system software add /var/tmp/junos-23.2R1.14.tgz no-validate force-host reboot";
    assert_eq!(
        run.actions(1),
        vec![
            format!("cli -c {add}"),
            format!("image: /var/tmp/junos-23.2R1.14.tgz sha256={}", sha256_hex(JUNOS_IMAGE)),
            format!("reboot: {add}"),
        ]
    );
    assert_eq!(
        run.actions(2),
        vec![JUNOS_PASSWORDS, "cli -c configure; delete chassis auto-image-upgrade; commit and-quit"]
    );
    assert_facts(&lab, &run, "JN0009", "23.2R1.14");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_checksum_mismatch_fails_with_the_reason_in_the_log() {
    if cannot_run() {
        return;
    }
    // Cumulus' image is declared with a sha256 the served file does not have.
    let (lab, run) =
        journey("cumulus", &["--serial", "CUM0002", "--version", "5.8.0", "--next-version", "5.9.1"]).await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stdout.contains("FAILED"), "{}", run.stdout);
    assert_eq!(run.boots(), 1);
    assert_eq!(run.actions(1), Vec::<String>::new(), "nothing installed, no password set");
    let st = lab.status(&run.address());
    assert_eq!(st["status"], "failed", "{st}");
    let log = lab.device_log(&run.address());
    let want =
        format!("sha256 mismatch for http://10.77.0.5/images/EOS-4.30.1F.swi: got {}", sha256_hex(EOS_IMAGE));
    assert!(log.iter().any(|l| l.contains(&want) && l.contains(&"0".repeat(64))), "{log:#?}");
    assert_eq!(
        lab.mock.state.lock().unwrap().count("POST", "/api/system-agents"),
        0,
        "no agent for a failed device"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_down_then_back_completes_after_retries() {
    if cannot_run() {
        return;
    }
    // Nothing listens at the controller's address when the device asks for its agent;
    // the controller comes up 3 s later.
    let mut lab = Lab::start_with(fabric, &lab_files(), true).await;
    let up = lab.controller_up(std::time::Duration::from_secs(3));
    let run = lab.emulate("10.77.1.1", &["--platform", "sonic", "--serial", "SON0002"]).await;
    assert_completed(&lab, &run);
    let mock = up.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    let st = mock.state.lock().unwrap();
    assert_eq!(st.count("POST", "/api/user/login"), 1, "one login once the controller was back");
    assert_eq!(st.count("POST", "/api/system-agents"), 1);
    drop(st);
    let log = lab.device_log(&run.address());
    let refused: Vec<_> = log.iter().filter(|l| l.contains("failed") && l.contains("retrying in")).collect();
    assert!(!refused.is_empty(), "no visible retry while the controller was down: {log:#?}");
    assert!(refused.iter().all(|l| l.contains("cannot reach the controller")), "{refused:#?}");
    assert!(log.iter().any(|l| l.contains("Device Ready")), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains(support_pw())), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_answering_503_then_ok_completes_after_retries() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;
    {
        let mut st = lab.mock.state.lock().unwrap();
        for _ in 0..3 {
            st.fail("login", lab::support::Fail::Status(503, "controller down for maintenance".into()));
        }
    }
    let run = lab.emulate("10.77.1.1", &["--platform", "eos", "--serial", "JPE0002"]).await;
    assert_completed(&lab, &run);
    let st = lab.mock.state.lock().unwrap();
    assert_eq!(st.count("POST", "/api/user/login"), 4, "three refused logins, then one that worked");
    assert_eq!(st.count("POST", "/api/system-agents"), 1);
    drop(st);
    let log = lab.device_log(&run.address());
    let retries = log.iter().filter(|l| l.contains("failed") && l.contains("retrying in")).count();
    assert_eq!(retries, 3, "{log:#?}");
}

fn support_pw() -> &'static str {
    lab::support::CONTROLLER_PW
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_at_another_devices_location_gets_that_locations_identity() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;
    // A Junos box nobody declared (serial, MAC) cabled to edge1's relay port.
    let at_edge1 =
        ["--platform", "junos", "--serial", "JNX999", "--remote-id", "mgmt-sw1", "--circuit-id", "ge-0/0/7"];
    let run = lab.emulate("10.77.1.1", &at_edge1).await;
    assert_completed(&lab, &run);
    assert_eq!(run.address(), "10.77.1.31", "edge1's address");
    assert_eq!(run.record["boots"][0]["hostname"], "edge1");
    assert_eq!(run.record["boots"][0]["boot_file"], "tftp://10.77.0.5/devices/edge1.sh");
    assert_eq!(lab.status("10.77.1.31")["status"], "completed");
    // The same box on another port of that relay is nobody: a pool address and the
    // platform script; never edge1's identity nor a MAC reservation's address.
    let elsewhere =
        ["--platform", "junos", "--serial", "JNX999", "--remote-id", "mgmt-sw1", "--circuit-id", "ge-0/0/8"];
    let run2 = lab.emulate("10.77.1.1", &elsewhere).await;
    assert_completed(&lab, &run2);
    let ip: std::net::Ipv4Addr = run2.address().parse().unwrap();
    assert!((100..=199).contains(&ip.octets()[3]) && ip.octets()[2] == 1, "pool address, got {ip}");
    assert_eq!(run2.record["boots"][0]["boot_file"], "tftp://10.77.0.5/ztp-junos.sh");
    for reserved in ["10.77.1.11", "10.77.1.21", "10.77.1.31"] {
        assert_ne!(run2.address(), reserved);
    }
}

fn nxos_user_config(ip: &str, serial: &str) -> Vec<String> {
    vec![
        "cli terminal dont-ask ; copy http://10.77.0.5/custom/scripts/custom.sh bootflash:poap_ztpc_custom vrf management".into(),
        "cli terminal dont-ask ; copy bootflash:poap_ztpc.cfg scheduled-config".into(),
        "scheduled-config: username admin password 5 <$5$ hash> role network-admin".into(),
        "scheduled-config: username aosadmin password 5 <$5$ hash> role network-admin".into(),
        "scheduled-config: feature nxapi".into(),
        "scheduled-config: feature bash-shell".into(),
        format!(
            "cli terminal dont-ask ; copy http://10.77.0.5/api/ztp/create_agent?management_ip={ip}&username=aosadmin\
             &system_id={serial}&agent_type=onbox&install_requirements=true bootflash:poap_ztpc_agent.json vrf management"
        ),
    ]
}

const SONIC_USERS: [&str; 3] = [
    "chpasswd -e root:<$6$ hash>",
    "useradd -m -s /bin/bash -G sudo,docker,redis aosadmin",
    "chpasswd -e aosadmin:<$6$ hash>",
];
const CUMULUS_USERS: [&str; 4] = [
    "chpasswd -e root:<$6$ hash>",
    "nv set system aaa user aosadmin role system-admin",
    "nv set system aaa user aosadmin hashed-password <$6$ hash>",
    "nv config apply -y",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_journeys_of_evo_nxos_sonic_and_cumulus() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;

    let evo = ["--platform", "junos-evo", "--serial", "EVO0009", "--version", "22.4R3.25-EVO"];
    let run = lab.emulate("10.77.1.1", &[&evo[..], &["--next-version", "23.2R1.15-EVO"]].concat()).await;
    assert_completed(&lab, &run);
    let add = "request system software add /var/tmp/junos-evo-23.2R1.15.iso reboot";
    assert_eq!(
        run.actions(1),
        vec![
            format!("cli -c {add}"),
            format!("image: /var/tmp/junos-evo-23.2R1.15.iso sha256={}", sha256_hex(EVO_IMAGE)),
            format!("reboot: {add}"),
        ]
    );
    assert_eq!(
        run.actions(2),
        vec![JUNOS_PASSWORDS, "cli -c configure; delete chassis auto-image-upgrade; commit and-quit"]
    );

    // NX-OS stages the image and the config in one run; POAP's reload boots both.
    let nxos =
        ["--platform", "nxos", "--serial", "SAL0009", "--version", "10.2(5)", "--next-version", "10.3(3)"];
    let run = lab.emulate("10.77.1.1", &nxos).await;
    assert_completed(&lab, &run);
    assert_eq!(run.boots(), 1, "POAP does not run again after its reload");
    assert!(run.stdout.contains("POAP reloads into 10.3(3)"), "{}", run.stdout);
    let mut want = vec![
        "cli terminal dont-ask ; copy http://10.77.0.5/ztp.json bootflash:poap_ztpc.json vrf management".to_string(),
        "cli terminal dont-ask ; copy http://10.77.0.5/images/nxos64-cs.10.3.3.F.bin bootflash:nxos64-cs.10.3.3.F.bin vrf management".into(),
        "cli configure terminal ; boot nxos bootflash:nxos64-cs.10.3.3.F.bin".into(),
        format!("image: /bootflash/nxos64-cs.10.3.3.F.bin sha256={}", sha256_hex(NXOS_IMAGE)),
        "cli copy running-config startup-config".into(),
    ];
    want.extend(nxos_user_config(&run.address(), "SAL0009"));
    assert_eq!(run.actions(1), want);

    let sonic = ["--platform", "sonic", "--serial", "SON0009", "--version", "SONiC.202205.1"];
    let run = lab.emulate("10.77.1.1", &[&sonic[..], &["--next-version", "SONiC.202311.1"]].concat()).await;
    assert_completed(&lab, &run);
    assert_eq!(
        run.actions(1),
        vec![
            "sonic-installer install -y /host/ztpc-sonic-202311.1.bin".to_string(),
            format!("image: /host/ztpc-sonic-202311.1.bin sha256={}", sha256_hex(SONIC_IMAGE)),
            "reboot: reboot".into(),
        ]
    );
    assert_eq!(run.actions(2), SONIC_USERS);

    // The model section's image (right sha256) wins over the platform's (wrong one).
    let cumulus =
        ["--platform", "cumulus", "--serial", "CUM0009", "--model", "MSN2410", "--version", "5.4.0"];
    let run = lab.emulate("10.77.1.1", &[&cumulus[..], &["--next-version", "5.9.1"]].concat()).await;
    assert_completed(&lab, &run);
    assert_eq!(
        run.actions(1),
        vec![
            "onie-install -fa -i /var/tmp/ztpc-cumulus-linux-5.9.1.bin".to_string(),
            format!("image: /var/tmp/ztpc-cumulus-linux-5.9.1.bin sha256={}", sha256_hex(CUMULUS_IMAGE)),
            "reboot: reboot".into(),
        ]
    );
    assert_eq!(run.actions(2), CUMULUS_USERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_devices_run_their_own_scripts() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;
    let run = lab.emulate("10.77.1.1", &["--platform", "sonic", "--serial", "SONDEV1"]).await;
    assert_completed(&lab, &run);
    assert_eq!(
        (run.address().as_str(), &run.record["boots"][0]["boot_file"]),
        ("10.77.1.41", &"http://10.77.0.5/devices/sonic1.sh".into())
    );
    assert_eq!(run.actions(1), SONIC_USERS);

    // cum1 accepts 5.4.0 (its own versions), so no upgrade.
    let run = lab
        .emulate("10.77.1.1", &["--platform", "cumulus", "--mac", "52:54:00:77:00:51", "--version", "5.4.0"])
        .await;
    assert_completed(&lab, &run);
    assert_eq!(
        (run.address().as_str(), &run.record["boots"][0]["boot_file"]),
        ("10.77.1.51", &"http://10.77.0.5/devices/cum1.sh".into())
    );
    assert_eq!(run.actions(1), CUMULUS_USERS);
    // The script read the MAC from eth0, which the emulator gave the switch's MAC.
    assert_facts(&lab, &run, "EMU770051", "5.4.0");
    let log = lab.device_log("10.77.1.51");
    assert!(
        log.iter().any(|l| l.contains("Gathering facts") && l.contains("mac 52:54:00:77:00:51")),
        "{log:#?}"
    );

    let run = lab.emulate("10.77.1.1", &["--platform", "nxos", "--serial", "SALDEV1"]).await;
    assert_completed(&lab, &run);
    assert_eq!(run.record["boots"][0]["boot_file"], "tftp://10.77.0.5/devices/nx1.py");
    assert_eq!(run.actions(1), nxos_user_config(&run.address(), "SALDEV1"));

    let evo = [
        "--platform",
        "junos-evo",
        "--serial",
        "EVOX1",
        "--remote-id",
        "mgmt-sw2",
        "--circuit-id",
        "et-0/0/1",
    ];
    let run = lab.emulate("10.77.1.1", &evo).await;
    assert_completed(&lab, &run);
    assert_eq!(
        (run.address().as_str(), &run.record["boots"][0]["boot_file"]),
        ("10.77.1.61", &"tftp://10.77.0.5/devices/evo1.py".into())
    );
    assert_eq!(
        run.actions(1),
        vec![JUNOS_PASSWORDS, "cli -c configure; delete chassis auto-image-upgrade; commit and-quit"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_never_ends_is_killed_at_the_timeout() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;
    let run = lab
        .emulate("10.77.1.1", &["--platform", "sonic", "--serial", "SLOW1", "--script-timeout", "3"])
        .await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.record["reason"].as_str().unwrap().contains("did not finish within 3s"), "{}", run.record);
    assert!(lab::pids_running(&["sleep", "97.31"]).is_empty(), "the script's processes outlived the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_emulator_takes_its_script_down() {
    if cannot_run() {
        return;
    }
    let mut lab = lab().await;
    let mut emu = lab.spawn("10.77.1.1", &["--platform", "sonic", "--serial", "SLOW2"]);
    let sleep = ["sleep", "97.32"];
    assert!(
        lab::eventually(Duration::from_secs(30), || !lab::pids_running(&sleep).is_empty()),
        "the custom config never started"
    );
    sh(&format!("kill -s TERM {}", emu.0.id()));
    let status = emu.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(
        lab::eventually(Duration::from_secs(5), || lab::pids_running(&sleep).is_empty()),
        "script left running"
    );
    // Its temporary work directory went too.
    let work = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().starts_with("ztp-emulate.");
    let mine = |e: &std::fs::DirEntry| {
        std::fs::read_to_string(e.path().join("facts.env")).is_ok_and(|f| f.contains("SERIAL='SLOW2'"))
    };
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| work(e) && mine(e));
    assert_eq!(left.count(), 0, "the interrupted emulator left its work directory");
}
