//! A generation loaded from an artifact directory keeps its shared top-level files in
//! memory and the rest on disk behind the descriptors it checked them through: the old
//! bytes are still served over HTTP (whole and by Range) and TFTP after the directory is
//! deleted (as `ztpc build` deletes the tree it replaced), and a swap serves the new ones.

// Tests may unwrap (clippy.toml allows it in #[test] fns; the helpers here too).
#![allow(clippy::unwrap_used)]

#[path = "files_support.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;

use support::*;
use ztp_runtime::generation::{Generation, LoadError, MEMORY_BUDGET};
use ztp_runtime::state::State;

/// `ztpc build` of a dc1 copy (a 2 MB custom script: over the memory budget) into `out`.
fn build_dir(src: &Path, out: &Path, seed: u64) {
    let dir = dc1_copy(src, 2_000_000, 1000, seed);
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).unwrap();
    let env_text = std::fs::read_to_string(dir.join("demo.env")).unwrap();
    let vars = ztpc::cli::parse_env_file(&env_text);
    let env = move |k: &str| vars.get(k).cloned();
    let host = ztpc::Host { base_dir: dir.clone(), env: &env };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: dir.display().to_string() };
    let o = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!o.diagnostics.has_errors());
    ztpc::emit::emit(&o.artifacts.unwrap(), out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_disk_outlive_their_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (tmp.path().join("out-a"), tmp.path().join("out-b"));
    build_dir(&tmp.path().join("src-a"), &out_a, 1);
    build_dir(&tmp.path().join("src-b"), &out_b, 2);
    let a = Generation::load_dir(&out_a).unwrap();
    let want_a = std::fs::read(out_a.join("tftp").join(BIG_TREE)).unwrap();
    let ztp_a = std::fs::read(out_a.join("tftp/ztp.json")).unwrap();
    assert!(want_a.len() as u64 > MEMORY_BUDGET);
    assert!(on_disk(&a, BIG_TREE), "a file over the budget is kept on disk");
    assert!(!on_disk(&a, "ztp.json"), "shared top-level files stay in memory");
    assert!(on_disk(&a, "SHA256SUMS"), "no device fetches the checksum list: on disk");
    assert!(tree_bytes(&a, BIG_TREE) == want_a);

    let state = State::new(a);
    let (http, tftp) = (start_http(Arc::clone(&state)).await, start_tftp(Arc::clone(&state)).await);
    std::fs::remove_dir_all(&out_a).unwrap();

    let target = format!("/{BIG_TREE}");
    let got = tokio::task::spawn_blocking(move || {
        let whole = http_raw(http, "GET", target.as_bytes(), &[]);
        let part = http_raw(http, "GET", target.as_bytes(), &["Range: bytes=1000000-1000099"]);
        let ztp = http_raw(http, "GET", b"/ztp.json", &[]);
        let t = tftp_read(tftp, BIG_TREE.as_bytes(), Some(1468), || ());
        (whole, part, ztp, t)
    })
    .await
    .unwrap();
    let (whole, part, ztp, t) = got;
    assert_eq!(whole.status, 200);
    assert!(whole.body == want_a, "HTTP: the deleted directory's bytes, whole");
    assert_eq!(part.status, 206);
    assert!(part.body == want_a[1_000_000..1_000_100], "HTTP: a range of them");
    assert!(ztp.body == ztp_a);
    assert!(t.unwrap() == want_a, "TFTP: the deleted directory's bytes");

    // A reload to another directory serves its bytes.
    let want_b = std::fs::read(out_b.join("tftp").join(BIG_TREE)).unwrap();
    assert!(want_b != want_a);
    state.swap(Generation::load_dir(&out_b).unwrap());
    let target = format!("/{BIG_TREE}");
    let (whole, t) = tokio::task::spawn_blocking(move || {
        (http_raw(http, "GET", target.as_bytes(), &[]), tftp_read(tftp, BIG_TREE.as_bytes(), None, || ()))
    })
    .await
    .unwrap();
    assert!(whole.body == want_b && t.unwrap() == want_b, "after the swap: the new bytes");
}

/// A file kept on disk is served only while it is the file its check vouched for: one
/// written in place after the load (the descriptor pins the inode, so the write shows
/// through it) is hashed again at the request and refused over HTTP and TFTP, rather
/// than sent under the ETag of bytes it no longer holds; once its bytes are back it is
/// served again. A file whose timestamps were too recent at its check is hashed at each
/// request and served while it matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_place_after_its_check_is_not_served() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_dir(&tmp.path().join("src"), &out, 3);
    let p = out.join("tftp").join(BIG_TREE);
    let want = std::fs::read(&p).unwrap();
    // Loaded at once: the build's timestamps are too recent to vouch for its files.
    let fresh = Generation::load_dir(&out).unwrap();
    let ztpc_sha = Some(tree_file(&fresh, BIG_TREE).sha256);
    assert!(on_disk(&fresh, BIG_TREE));
    let state = State::new(fresh);
    let (http, tftp) = (start_http(Arc::clone(&state)).await, start_tftp(Arc::clone(&state)).await);
    let target = format!("/{BIG_TREE}");
    let fetch = move || {
        let t = target.clone();
        tokio::task::spawn_blocking(move || {
            (
                http_raw(http, "GET", t.as_bytes(), &[]),
                tftp_read(tftp, BIG_TREE.as_bytes(), Some(1468), || ()),
            )
        })
    };
    let (h, t) = fetch().await.unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body == want && t.unwrap() == want, "not vouched for by timestamps, but its bytes match");

    // A generation whose check can vouch for the file (loaded well after the build).
    std::thread::sleep(std::time::Duration::from_millis(200));
    state.swap(Generation::load_dir(&out).unwrap());
    let (h, t) = fetch().await.unwrap();
    assert!(h.status == 200 && h.body == want && t.unwrap() == want);
    assert_eq!(h.header("etag").map(|e| e.trim_matches('"').to_string()), ztpc_sha);

    // Written in place, same size, other bytes.
    let mut edited = want.clone();
    edited[1000] ^= 0xff;
    std::fs::write(&p, &edited).unwrap();
    let (h, t) = fetch().await.unwrap();
    assert_eq!(h.status, 503, "an edited file must not be served under its old sha256");
    assert!(h.body != edited && !String::from_utf8_lossy(&h.body).contains("#!"));
    match t {
        Err((_, msg)) => assert!(msg.contains("changed"), "{msg}"),
        Ok(b) => panic!("TFTP served {} bytes of an edited file", b.len()),
    }
    // Grown by a byte: refused too.
    let mut longer = want.clone();
    longer.push(b'\n');
    std::fs::write(&p, &longer).unwrap();
    assert_eq!(fetch().await.unwrap().0.status, 503);

    // The checked bytes back (a new mtime, so hashed at each request): served again.
    std::fs::write(&p, &want).unwrap();
    let (h, t) = fetch().await.unwrap();
    assert!(h.status == 200 && h.body == want && t.unwrap() == want, "the checked bytes again");
}

/// A reload takes over what the serving generation checked when the file on disk is
/// provably the same (same inode and sha256 listed; for a file held in memory also the
/// same size and timestamps), and reads and hashes anything else: a file held in memory
/// rewritten in place with the same size is caught by its checksum, and one whose
/// timestamps are too recent to vouch for it is hashed every time. A file served from
/// disk is checked again at each request instead.
#[test]
fn a_reload_hashes_only_what_may_have_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_dir(&tmp.path().join("src"), &out, 1);
    // Well past the racy margin: the build's timestamps can vouch for its files.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (a, s) = Generation::load_dir_reusing(&out, None).unwrap();
    let n = a.file_count();
    assert!(n > 5, "{n} files");
    // Only the shared top-level files (what every device fetches) are held in memory; a
    // device's own script, anything in a subdirectory and the checksum list (no device
    // fetches it) are read from disk on request.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runtime.json")).unwrap()).unwrap();
    let paths: Vec<&str> =
        m["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), n);
    assert!(paths.iter().any(|p| p.starts_with("devices/")), "{paths:?}");
    for p in &paths {
        assert_eq!(on_disk(&a, p), p.contains('/') || *p == "SHA256SUMS", "{p}");
    }
    assert_eq!((s.hashed, s.reused), (n, 0), "a first load hashes every file");

    let (b, s) = Generation::load_dir_reusing(&out, Some(&a)).unwrap();
    assert_eq!((s.hashed, s.reused), (0, n), "nothing changed: nothing hashed");
    assert_eq!(b.id, a.id);
    let want = std::fs::read(out.join("tftp").join(BIG_TREE)).unwrap();
    assert!(tree_bytes(&b, BIG_TREE) == want && on_disk(&b, BIG_TREE));
    assert!(tree_bytes(&b, "ztp.json") == std::fs::read(out.join("tftp/ztp.json")).unwrap());

    // A file held in memory rewritten in place, same size, other bytes: hashed again,
    // and refused.
    let z = out.join("tftp/ztp.json");
    let ztp = std::fs::read(&z).unwrap();
    let mut edited = ztp.clone();
    let at = edited.iter().position(|c| c.is_ascii_lowercase()).unwrap();
    edited[at] = if edited[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&z, &edited).unwrap();
    match Generation::load_dir_reusing(&out, Some(&b)) {
        Err(LoadError::Checksum(f)) => assert_eq!(f, "ztp.json"),
        other => panic!("an edited file must fail its checksum, got {:?}", other.map(|(_, s)| s)),
    }

    // Put back, with a modification time ahead of now: timestamps that cannot rule out
    // a later write in the same clock tick. The file is hashed on every load.
    std::fs::write(&z, &ztp).unwrap();
    let f = std::fs::File::options().write(true).open(&z).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600)).unwrap();
    drop(f);
    let (c, s) = Generation::load_dir_reusing(&out, Some(&b)).unwrap();
    assert_eq!((s.hashed, s.reused), (1, n - 1));
    let (c, s) = Generation::load_dir_reusing(&out, Some(&c)).unwrap();
    assert_eq!((s.hashed, s.reused), (1, n - 1), "a file not vouched for is hashed again");

    // A file served from disk is taken over on its inode (the descriptor held pins it),
    // and checked again at each request instead: rewritten in place, the reload takes
    // it over, and the request's check finds it changed and no longer its sha256
    // (`a_file_written_in_place_after_its_check_is_not_served` serves it).
    let p = out.join("tftp").join(BIG_TREE);
    assert!(tree_file(&c, BIG_TREE).vouched());
    let mut edited = want.clone();
    edited[1000] ^= 0xff;
    std::fs::write(&p, &edited).unwrap();
    let (d, s) = Generation::load_dir_reusing(&out, Some(&c)).unwrap();
    assert_eq!((s.hashed, s.reused), (1, n - 1), "ztp.json, still not vouched for, is hashed again");
    let f = tree_file(&d, BIG_TREE);
    assert!(!f.vouched() && !f.still_matches().unwrap());
    std::fs::write(&p, &want).unwrap();
    assert!(!f.vouched() && f.still_matches().unwrap(), "its bytes back");
    assert!(!f.vouched(), "written too recently for its timestamps to vouch for what was read");
    // Once its timestamps can vouch, a recheck that matched spares later requests the
    // hashing; a later write is still seen.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(f.still_matches().unwrap() && f.vouched());
    assert!(tree_file(&d, BIG_TREE).vouched(), "the same descriptor, the same answer");
    std::fs::write(&p, &edited).unwrap();
    assert!(!f.vouched() && !f.still_matches().unwrap());
}

/// The tree file `path` of `g`.
fn tree_file(g: &Generation, path: &str) -> ztp_runtime::generation::TreeFile {
    match g.get(path) {
        Some(ztp_runtime::generation::Served::Tree(f)) => f,
        _ => panic!("{path} is not a tree file"),
    }
}

/// A copy of `from` at `to` whose files are hard links to `from`'s, as `ztpc build`
/// carries unchanged files into the tree it swaps in.
fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            link_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::hard_link(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A swapped-in directory whose files are the same inodes (hard links) is taken over
/// whole; a file replaced under its name by another inode, even with the same bytes, is
/// hashed again, and one with other bytes refuses the load.
#[test]
fn a_swapped_tree_takes_over_linked_files_and_hashes_replaced_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_dir(&tmp.path().join("src"), &out, 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (a, _) = Generation::load_dir_reusing(&out, None).unwrap();
    let n = a.file_count();

    let swap = |name: &str| {
        let (new, old) = (tmp.path().join(name), tmp.path().join(format!("{name}-old")));
        link_tree(&out, &new);
        std::fs::rename(&out, &old).unwrap();
        std::fs::rename(&new, &out).unwrap();
        std::fs::remove_dir_all(&old).unwrap();
    };
    swap("b");
    let (b, s) = Generation::load_dir_reusing(&out, Some(&a)).unwrap();
    assert_eq!((s.hashed, s.reused), (0, n), "the same inodes under a new directory");
    assert_eq!(b.id, a.id);

    // Replaced by a new inode with the same bytes (an editor's save by rename): the
    // name no longer leads to the file checked, so it is hashed, and found good.
    let device = "devices/spine1.sh";
    let p = out.join("tftp").join(device);
    let bytes = std::fs::read(&p).unwrap();
    let tmp_file = out.join("tftp/devices/.spine1.sh.new");
    std::fs::write(&tmp_file, &bytes).unwrap();
    std::fs::rename(&tmp_file, &p).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (c, s) = Generation::load_dir_reusing(&out, Some(&b)).unwrap();
    assert_eq!((s.hashed, s.reused), (1, n - 1));
    assert_eq!(tree_bytes(&c, device), bytes);

    // Replaced by a new inode with other bytes: refused, the file named.
    let mut other = bytes.clone();
    other[0] ^= 1;
    std::fs::write(&tmp_file, &other).unwrap();
    std::fs::rename(&tmp_file, &p).unwrap();
    match Generation::load_dir_reusing(&out, Some(&c)) {
        Err(LoadError::Checksum(f)) => assert_eq!(f, device),
        other => panic!("a replaced file must fail its checksum, got {:?}", other.map(|(_, s)| s)),
    }
}

/// In a large runtime.json (over 1 MiB, about 2,000 devices: parsed in parts), the
/// devices list is taken over when its text is unchanged, and parsed again when it
/// changed; a broken device is reported at its line in runtime.json. A small one is
/// parsed whole every time.
#[test]
fn unchanged_devices_are_taken_over_and_changed_ones_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_dir(&tmp.path().join("src"), &out, 1);
    let (a, _) = Generation::load_dir_reusing(&out, None).unwrap();
    let (b, _) = Generation::load_dir_reusing(&out, Some(&a)).unwrap();
    assert!(!Arc::ptr_eq(&a.manifest.devices, &b.manifest.devices), "small: parsed whole");

    // Made large with trailing whitespace (valid JSON, the same manifest).
    let m = out.join("runtime.json");
    let text = std::fs::read_to_string(&m).unwrap() + &" ".repeat(1 << 20);
    std::fs::write(&m, &text).unwrap();
    let (a, _) = Generation::load_dir_reusing(&out, Some(&b)).unwrap();
    let (b, _) = Generation::load_dir_reusing(&out, Some(&a)).unwrap();
    assert!(Arc::ptr_eq(&a.manifest.devices, &b.manifest.devices), "unchanged: taken over");

    let model = a.manifest.devices.iter().find_map(|d| d.model.clone()).expect("a device with a model");
    let edited = text.replacen(&format!("\"model\": \"{model}\""), "\"model\": \"EDITED-9\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&m, &edited).unwrap();
    let (c, _) = Generation::load_dir_reusing(&out, Some(&b)).unwrap();
    assert!(!Arc::ptr_eq(&b.manifest.devices, &c.manifest.devices));
    assert!(c.manifest.devices.iter().any(|d| d.model.as_deref() == Some("EDITED-9")));
    assert_ne!(c.id, b.id);

    // A device whose model is not a string: a parse error at its line in the file,
    // not in the devices list parsed on its own.
    let broken = edited.replacen("\"model\": \"EDITED-9\"", "\"model\": 42", 1);
    let line = broken.lines().position(|l| l.contains("\"model\": 42")).unwrap() + 1;
    std::fs::write(&m, &broken).unwrap();
    let e = Generation::load_dir_reusing(&out, Some(&c)).map(|_| ()).unwrap_err();
    assert!(matches!(e, LoadError::Manifest(_)), "{e}");
    assert!(e.to_string().contains(&format!("line {line} ")), "line {line}: {e}");
}

/// runtime.json of a schema this runtime does not read is refused with the schema named,
/// whether or not the rest of it parses as today's layout.
#[test]
fn an_unknown_schema_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_dir(&tmp.path().join("src"), &out, 1);
    let m = out.join("runtime.json");
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(text.contains("\"schema\": 1,"));
    std::fs::write(&m, text.replace("\"schema\": 1,", "\"schema\": 2,")).unwrap();
    let e = Generation::load_dir(&out).unwrap_err();
    assert!(matches!(e, LoadError::Schema(2)), "{e}");
    std::fs::write(&m, text.replace("\"schema\": 1,", "\"schema\": 7, \"new-field\": true,")).unwrap();
    let e = Generation::load_dir(&out).unwrap_err();
    assert!(matches!(e, LoadError::Schema(7)), "{e}");
    assert!(e.to_string().contains("schema 7"), "{e}");
    // Today's schema with a broken field: a parse error, not a schema one.
    std::fs::write(&m, text.replace("\"fabric\":", "\"fabric\": 5, \"x\":")).unwrap();
    assert!(matches!(Generation::load_dir(&out).unwrap_err(), LoadError::Manifest(_)));
}

/// A tree with many device files (checked on several threads): all are served, and a
/// bad or missing one anywhere among them refuses the load, naming it.
#[test]
fn many_files_are_all_checked() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_dir(&tmp.path().join("src"), &out, 1);
    let mpath = out.join("runtime.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let listed = m["files"].as_array().unwrap().len();
    let extra = 700;
    for i in 0..extra {
        let path = format!("devices/extra{i:04}.sh");
        let bytes = pattern(3000 + i, i as u64);
        std::fs::write(out.join("tftp").join(&path), &bytes).unwrap();
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let entry = serde_json::json!({"path": path, "sha256": sha, "size": bytes.len(), "mode": "0644"});
        m["files"].as_array_mut().unwrap().push(entry);
    }
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let (g, s) = Generation::load_dir_reusing(&out, None).unwrap();
    assert_eq!((g.file_count(), s.hashed), (listed + extra, listed + extra));
    for i in [0, 349, 699] {
        let path = format!("devices/extra{i:04}.sh");
        assert!(tree_bytes(&g, &path) == pattern(3000 + i, i as u64), "{path}");
        assert!(on_disk(&g, &path));
    }
    let bad = out.join("tftp/devices/extra0500.sh");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    match Generation::load_dir(&out) {
        Err(LoadError::Checksum(f)) => assert_eq!(f, "devices/extra0500.sh"),
        other => panic!("a bad file must be named, got {:?}", other.map(|g| g.file_count())),
    }
    std::fs::remove_file(&bad).unwrap();
    match Generation::load_dir(&out) {
        Err(LoadError::MissingFile(f)) => assert_eq!(f, "devices/extra0500.sh"),
        other => panic!("a missing file must be named, got {:?}", other.map(|g| g.file_count())),
    }
}
