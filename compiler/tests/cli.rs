//! The `ztpc` binary as a user runs it: exit codes, output streams, atomic writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf()
}

fn ztpc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ztpc"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run ztpc")
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn build_writes_the_tree_and_one_summary_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let o = ztpc(&["build", "examples/lab/fabric.kdl", "-o", out.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(0), "{}", s(&o.stderr));
    assert_eq!(s(&o.stdout).lines().count(), 1, "stdout: {}", s(&o.stdout));
    assert!(s(&o.stdout).contains("6 devices"));
    assert!(s(&o.stderr).is_empty(), "stderr: {}", s(&o.stderr));
    for f in ["dhcpd.conf", "kea-dhcp4.json", "runtime.json", "tftp/ztp.json", "tftp/SHA256SUMS"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let mode = std::fs::metadata(out.join("tftp/ztp.json")).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Rebuilding over our own output is allowed and leaves no staging directories.
    let o = ztpc(&["build", "examples/lab/fabric.kdl", "-o", out.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(0));
    let leftovers: Vec<_> =
        std::fs::read_dir(tmp.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn failed_build_leaves_the_directory_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("never");
    let o = ztpc(&["build", "examples/invalid/bad-mac.kdl", "-o", missing.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(s(&o.stderr).contains("ztp::value::mac"));
    assert!(!missing.exists(), "a failed build created its output directory");

    let out = tmp.path().join("out");
    assert_eq!(
        ztpc(&["build", "examples/lab/fabric.kdl", "-o", out.to_str().expect("utf8")]).status.code(),
        Some(0)
    );
    let before = std::fs::read(out.join("dhcpd.conf")).expect("read");
    let o = ztpc(&["build", "examples/invalid/many-errors.kdl", "-o", out.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(out.join("dhcpd.conf")).expect("read"), before);
}

#[test]
fn refuses_to_replace_a_foreign_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("precious.txt"), "keep").expect("write");
    let o = ztpc(&["build", "examples/lab/fabric.kdl", "-o", tmp.path().to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2), "{}", s(&o.stderr));
    assert!(s(&o.stderr).contains("not a ztpc output"));
    assert!(tmp.path().join("precious.txt").is_file());
}

#[test]
fn exit_codes() {
    assert_eq!(ztpc(&["check", "examples/lab/fabric.kdl"]).status.code(), Some(0));
    assert_eq!(ztpc(&["check", "examples/invalid/unknown-node.kdl"]).status.code(), Some(1));
    assert_eq!(ztpc(&["check", "examples/no-such.kdl"]).status.code(), Some(2));
    assert_eq!(ztpc(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(ztpc(&["check", "examples/dc1/fabric.kdl", "--env-file", "nope.env"]).status.code(), Some(2));
    // A warning alone passes, and fails with --deny-warnings.
    let o = ztpc(&["check", "examples/invalid/literal-secret.kdl"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(s(&o.stderr).contains("ztp::secret::literal"));
    assert_eq!(
        ztpc(&["check", "examples/invalid/literal-secret.kdl", "--deny-warnings"]).status.code(),
        Some(1)
    );
}

#[test]
fn env_file_supplies_secrets_and_the_environment_wins() {
    let o = ztpc(&["check", "examples/dc1/fabric.kdl"]);
    assert_eq!(o.status.code(), Some(1), "dc1 needs its variables");
    assert!(s(&o.stderr).contains("ztp::secret::env-unset"));
    let o = ztpc(&["check", "examples/dc1/fabric.kdl", "--env-file", "examples/dc1/demo.env"]);
    assert_eq!(o.status.code(), Some(0), "{}", s(&o.stderr));
}

#[test]
fn help_explains_each_subcommand_with_an_example() {
    for sub in ["build", "check"] {
        let o = ztpc(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let text = s(&o.stdout);
        assert!(text.contains("Example"), "{sub} --help has no example:\n{text}");
        assert!(text.contains("--deny-warnings"));
    }
    assert!(s(&ztpc(&["--help"]).stdout).contains("Exit codes"));
}

/// Every regular file under `dir`, by path relative to it: (bytes, mode, inode).
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, u32, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut files = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("ls").flatten() {
            let meta = e.metadata().expect("meta");
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).expect("under").to_path_buf();
                files.insert(rel, (std::fs::read(e.path()).expect("read"), meta.mode() & 0o7777, meta.ino()));
            }
        }
    }
    files
}

/// Bytes and modes only, to compare a rebuilt tree with a fresh one.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    tree(dir).into_iter().map(|(p, (b, m, _))| (p, b, m)).collect()
}

#[test]
fn rebuild_rewrites_only_what_changed_and_equals_a_fresh_build() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fabric_dir = tmp.path().join("lab");
    std::fs::create_dir_all(fabric_dir.join("secrets")).expect("mkdir");
    let lab = root().join("examples/lab");
    for rel in ["fabric.kdl", "secrets/root-password", "secrets/device-password"] {
        if lab.join(rel).exists() {
            std::fs::copy(lab.join(rel), fabric_dir.join(rel)).expect("copy");
        }
    }
    let fabric = fabric_dir.join("fabric.kdl");
    let out = tmp.path().join("out");
    let build =
        |to: &Path| ztpc(&["build", fabric.to_str().expect("utf8"), "-o", to.to_str().expect("utf8")]);
    let o = build(&out);
    assert_eq!(o.status.code(), Some(0), "{}", s(&o.stderr));
    let first = tree(&out);

    // The same fabric again: every file is kept, none written.
    let o = build(&out);
    assert_eq!(o.status.code(), Some(0), "{}", s(&o.stderr));
    assert!(s(&o.stdout).contains(&format!("0 written, {} unchanged", first.len())), "{}", s(&o.stdout));
    let same = tree(&out);
    for (rel, (_, _, ino)) in &first {
        assert_eq!(same[rel].2, *ino, "{} was rewritten although nothing changed", rel.display());
    }

    // One device's address changes: its script and the files that list it are written,
    // the other devices' scripts keep their inodes.
    let text = std::fs::read_to_string(&fabric).expect("read");
    assert!(text.contains("\"10.99.0.11\""));
    std::fs::write(&fabric, text.replace("\"10.99.0.11\"", "\"10.99.0.31\"")).expect("write");
    // A hand edit in the output (same length, other bytes) and a changed mode must not survive.
    let hand = out.join("tftp/devices/leaf4.sh");
    let mut bytes = std::fs::read(&hand).expect("read");
    bytes[0] ^= 1;
    std::fs::write(&hand, &bytes).expect("write");
    std::fs::set_permissions(out.join("tftp/devices/leaf3.sh"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let o = build(&out);
    assert_eq!(o.status.code(), Some(0), "{}", s(&o.stderr));
    let after = tree(&out);
    let rewritten: Vec<String> = after
        .iter()
        .filter(|(rel, (_, _, ino))| first.get(*rel).map(|f| f.2) != Some(*ino))
        .map(|(rel, _)| rel.display().to_string())
        .collect();
    for must in [
        "tftp/devices/spine1.sh",
        "dhcpd.conf",
        "kea-dhcp4.json",
        "tftp/devices/leaf4.sh",
        "tftp/devices/leaf3.sh",
    ] {
        assert!(rewritten.contains(&must.to_string()), "{must} not rewritten: {rewritten:?}");
    }
    for kept in ["tftp/devices/spine2.sh", "tftp/devices/leaf1.sh", "tftp/ztp-eos.sh"] {
        assert!(!rewritten.contains(&kept.to_string()), "{kept} rewritten although unchanged");
    }
    assert!(
        s(&o.stdout).contains(&format!("{} written", rewritten.len())),
        "summary {} vs rewritten {rewritten:?}",
        s(&o.stdout)
    );
    // And the result is byte for byte, mode for mode, what a fresh build writes.
    let fresh = tmp.path().join("fresh");
    assert_eq!(build(&fresh).status.code(), Some(0));
    assert_eq!(contents(&out), contents(&fresh));
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    // Files are created with their final mode and fixed afterwards only when the umask
    // narrowed it; under both umasks every file must carry the mode runtime.json records.
    for umask in ["022", "077", "0"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" build examples/dc1/fabric.kdl --env-file examples/dc1/demo.env -o \"$1\""))
            .arg(env!("CARGO_BIN_EXE_ztpc"))
            .arg(&out)
            .current_dir(root())
            .env("NO_COLOR", "1")
            .output()
            .expect("run ztpc");
        assert_eq!(o.status.code(), Some(0), "umask {umask}: {}", s(&o.stderr));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("runtime.json")).expect("read")).expect("json");
        let files = manifest["files"].as_array().expect("files");
        assert!(files.len() > 10);
        let mut seen = std::collections::BTreeSet::new();
        for f in files {
            let path = out.join("tftp").join(f["path"].as_str().expect("path"));
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o7777;
            let want = u32::from_str_radix(f["mode"].as_str().expect("mode"), 8).expect("octal");
            assert_eq!(mode, want, "umask {umask}: {}", path.display());
            seen.insert(want);
        }
        // Scripts (0755), plain files (0644) and secrets (0600) all occur.
        assert!(seen.contains(&0o755) && seen.contains(&0o644) && seen.contains(&0o600), "{seen:?}");
        let mode = std::fs::metadata(out.join("runtime.json")).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "umask {umask}");
    }
}
