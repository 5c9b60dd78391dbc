//! Device journeys, power-on to completed, with `ztp-emulate` against the real
//! `ztp-runtime` and a fake controller, in network namespaces (root needed; SKIPPED
//! without it unless ZTP_REQUIRE_ORACLES=1). Each platform's run checks the exact
//! commands its real bootstrap script issued to the stubbed NOS.
#![allow(clippy::unwrap_used)]

#[path = "journeys_support.rs"]
mod lab;

use lab::{Lab, cannot_run, sha256_hex};

pub const JUNOS_IMAGE: &[u8] = b"junos image 23.2R1.14 for the journey tests\n";
pub const EOS_IMAGE: &[u8] = b"EOS-4.30.1F.swi for the journey tests\n";
const CUSTOM: &[u8] = b"#!/bin/sh\n# custom config run by every journey\necho custom-config ran\n";

/// The journey fabric: one relay subnet; a known device per platform (by serial,
/// location or MAC) and platform defaults for unknown ones.
fn fabric(controller: &str) -> String {
    let junos_sha = sha256_hex(JUNOS_IMAGE);
    let eos_sha = sha256_hex(EOS_IMAGE);
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
    platform "junos-evo" {{ versions "23.2R1.15-EVO"; }}
    platform "eos" {{
        versions "4.30.1F"
        image "images/EOS-4.30.1F.swi" sha256="{eos_sha}"
    }}
    platform "nxos" {{ versions "10.3(3)"; }}
    platform "sonic" {{ versions "SONiC.202311.1"; }}
    platform "cumulus" {{
        versions "5.9.1"
        image "http://10.77.0.5/images/EOS-4.30.1F.swi" sha256="{}"
    }}
    device "leaf1" platform="junos" {{
        serial "JN0001"
        address "10.77.1.21"
        dual-routing-engine #true
    }}
    device "spine1" platform="eos" {{
        mac "52:54:00:77:00:11"
        address "10.77.1.11"
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

async fn lab() -> Lab {
    Lab::start(
        fabric,
        &[
            ("images/junos-23.2R1.14.tgz", JUNOS_IMAGE),
            ("images/EOS-4.30.1F.swi", EOS_IMAGE),
            ("scripts/custom.sh", CUSTOM),
        ],
    )
    .await
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
}
