//! Golden: every example builds to exactly the bytes and exec bits under golden/<name>/.
//! `UPDATE_GOLDEN=1` rewrites them for review with `git diff golden/`.

use ztp_tests::*;

#[test]
fn examples_match_golden() {
    let update = std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1");
    let names = examples();
    assert!(names.len() >= 3, "expected at least three examples, found {names:?}");
    let mut problems = Vec::new();
    for name in names {
        let art = artifacts(&name);
        let dir = root().join("golden").join(&name);
        if update {
            ztpc::emit::emit(&art, &dir).expect("write golden");
            continue;
        }
        let have = read_tree(&dir);
        for (path, a) in &art {
            let exec = a.mode & 0o100 != 0;
            match have.get(path) {
                None => problems.push(format!("{name}: missing golden/{name}/{path}")),
                Some((bytes, _)) if *bytes != a.bytes => problems.push(format!("{name}: {path} differs")),
                Some((_, e)) if *e != exec => {
                    problems.push(format!("{name}: {path} exec bit {e}, build gives {exec}"))
                }
                _ => {}
            }
        }
        for path in have.keys().filter(|p| !art.contains_key(*p)) {
            problems.push(format!("{name}: golden/{name}/{path} is not produced by the build"));
        }
    }
    assert!(
        problems.is_empty(),
        "golden mismatch (rerun with UPDATE_GOLDEN=1 and review):\n{}",
        problems.join("\n")
    );
}

#[test]
fn builds_are_deterministic() {
    for name in examples() {
        assert_eq!(artifacts(&name), artifacts(&name), "{name}");
    }
}

#[test]
fn secret_files_are_owner_only() {
    for name in examples() {
        for (path, a) in artifacts(&name) {
            let holds_secret = path == "runtime.json"
                || path == "tftp/ztp.json"
                || (path.starts_with("tftp/devices/") && !path.ends_with(".md5"));
            if holds_secret {
                assert_eq!(a.mode, 0o600, "{name}: {path} holds secrets but is {:o}", a.mode);
            } else {
                assert_eq!(a.mode & 0o077 & 0o022, 0, "{name}: {path} is group/world writable");
            }
        }
    }
}
