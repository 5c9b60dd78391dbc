//! Per-NOS rules on every rendered script (reference/nos-dhcp.md, apstra-ztp.md §5):
//! Junos scripts start with `#!`, Junos EVO gets Python 3, NX-OS scripts carry a correct
//! `#md5sum` line and a matching `.md5` file, Cumulus scripts carry the marker.

use std::process::Command;

use ztp_tests::*;

#[test]
fn every_script_follows_its_platform_rules() {
    let mut seen = [0usize; 4];
    for name in examples() {
        let art = artifacts(&name);
        for (path, a) in &art {
            let Some(rel) = path.strip_prefix("tftp/") else { continue };
            let text = String::from_utf8_lossy(&a.bytes);
            let platform_of = |p: &str| rel.starts_with(&format!("ztp-{p}.")) || is_device_of(&art, rel, p);
            assert!(!text.contains('\r'), "{name}: {rel} has CR line ends (Cumulus refuses them)");
            if platform_of("junos") && !rel.ends_with(".md5") {
                assert!(text.starts_with("#!/bin/sh"), "{name}: {rel} must start with #!/bin/sh");
                seen[0] += 1;
            }
            if platform_of("junos-evo") && !rel.ends_with(".md5") {
                assert!(text.starts_with("#!/usr/bin/python3"), "{name}: {rel} must be Python 3");
                seen[1] += 1;
            }
            if platform_of("nxos") && rel.ends_with(".py") {
                let line = text.lines().nth(1).unwrap_or_default();
                let want = md5_without_md5sum_lines(&text);
                assert_eq!(line, format!("#md5sum=\"{want}\""), "{name}: {rel} md5sum line");
                let md5file = String::from_utf8_lossy(&art[&format!("{path}.md5")].bytes).into_owned();
                assert!(md5file.starts_with(&want), "{name}: {rel}.md5 = {md5file}");
                seen[2] += 1;
            }
            if platform_of("cumulus") && !rel.ends_with(".md5") {
                assert!(text.contains("CUMULUS-AUTOPROVISIONING"), "{name}: {rel} lacks the Cumulus marker");
                seen[3] += 1;
            }
        }
    }
    assert!(seen.iter().all(|n| *n >= 3), "too few scripts per platform checked: {seen:?}");
}

/// Is `rel` the device script of a device of platform `p` (per runtime.json)?
fn is_device_of(art: &ztpc::Artifacts, rel: &str, p: &str) -> bool {
    let m: serde_json::Value = serde_json::from_slice(&art["runtime.json"].bytes).expect("manifest");
    m["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .any(|d| d["platform"] == p && d["script"].as_str() == Some(rel))
}

/// The md5 POAP checks, computed by the real tools: `sed '/^#md5sum/d' | md5sum`.
fn md5_without_md5sum_lines(text: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", "sed '/^#md5sum/d' | md5sum"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("sed | md5sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}
