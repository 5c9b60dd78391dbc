//! Oracles no one here wrote: the real `dhcpd -t`, `kea-dhcp4 -t`, shellcheck, `sh -n`
//! and `python3 -m py_compile` on every example's output.

use std::path::Path;
use std::process::Command;

use ztp_tests::*;

fn write_all(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    ztpc::emit::emit(&artifacts(name), &out).expect("emit");
    dir
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dhcpd_accepts_every_dhcpd_conf() {
    let Some(dhcpd) = oracle("dhcpd") else { return };
    for name in examples() {
        let dir = write_all(&name);
        let conf = dir.path().join("out/dhcpd.conf");
        // -t only parses; the lease file is never opened. No -q: it hides the error text.
        run(
            Command::new(&dhcpd)
                .args(["-t", "-4", "-cf"])
                .arg(&conf)
                .arg("-lf")
                .arg(dir.path().join("leases")),
            &format!("dhcpd -t on {name}"),
        );
    }
}

#[test]
fn kea_accepts_every_kea_config() {
    let Some(kea) = oracle("kea-dhcp4") else { return };
    for name in examples() {
        let dir = write_all(&name);
        let path = dir.path().join("out/kea-dhcp4.json");
        let text = std::fs::read_to_string(&path).expect("kea json");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("kea json parses");
        // `kea-dhcp4 -t` also checks that the named interfaces exist on this machine;
        // interface names are site facts, so they are checked for shape and replaced.
        let ifaces = &mut v["Dhcp4"]["interfaces-config"]["interfaces"];
        assert!(ifaces.as_array().is_some_and(|a| !a.is_empty()), "{name}: no interfaces");
        *ifaces = serde_json::json!(["*"]);
        std::fs::write(&path, serde_json::to_string(&v).expect("json")).expect("write");
        run(
            Command::new(&kea)
                .arg("-t")
                .arg(&path)
                .env("KEA_LOCKFILE_DIR", "none")
                .env("KEA_PIDFILE_DIR", dir.path()),
            &format!("kea-dhcp4 -t on {name}"),
        );
    }
}

fn scripts(tree: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = read_tree(tree)
        .into_keys()
        .filter(|p| p.ends_with(".sh") || p.ends_with(".py"))
        .map(|p| tree.join(p))
        .collect();
    v.sort();
    v
}

#[test]
fn shell_scripts_pass_shellcheck_and_sh_n() {
    let Some(shellcheck) = oracle("shellcheck") else { return };
    let mut n = 0;
    for name in examples() {
        let dir = write_all(&name);
        for s in
            scripts(&dir.path().join("out/tftp")).iter().filter(|p| p.extension().is_some_and(|e| e == "sh"))
        {
            let text = std::fs::read_to_string(s).expect("script");
            let shell = if text.starts_with("#!/bin/bash") { "bash" } else { "sh" };
            run(Command::new(shell).arg("-n").arg(s), &format!("{shell} -n {}", s.display()));
            run(Command::new(&shellcheck).arg(s), &format!("shellcheck {}", s.display()));
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} shell scripts checked");
}

#[test]
fn python_scripts_compile() {
    let Some(python) = oracle("python3") else { return };
    let mut n = 0;
    for name in examples() {
        let dir = write_all(&name);
        for s in
            scripts(&dir.path().join("out/tftp")).iter().filter(|p| p.extension().is_some_and(|e| e == "py"))
        {
            run(
                Command::new(&python).args(["-m", "py_compile"]).arg(s),
                &format!("py_compile {}", s.display()),
            );
            n += 1;
        }
    }
    assert!(n >= 4, "only {n} python scripts checked");
}
