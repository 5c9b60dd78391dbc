//! Diagnostics: every examples/invalid/<case>.kdl renders (no colour, fixed width) to
//! exactly golden/invalid/<case>.txt. `UPDATE_GOLDEN=1` rewrites them.

use ztp_tests::*;
use ztpc::{Host, RenderStyle};

#[test]
fn invalid_examples_match_golden() {
    let update = std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1");
    let dir = root().join("examples/invalid");
    let golden = root().join("golden/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/invalid")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "expected the full set of invalid cases");
    let mut problems = Vec::new();
    for path in &cases {
        let stem = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).expect("read case");
        // No variables at all: the env-unset case must stay unset whoever runs this.
        let host = Host { base_dir: dir.clone(), env: &|_| None };
        let out = ztpc::check(&text, &host);
        assert!(!out.diagnostics.items().is_empty(), "{stem}: no diagnostic at all");
        let name = format!("examples/invalid/{stem}.kdl");
        let rendered = ztpc::diag::render(&out.diagnostics, &name, &text, RenderStyle::PLAIN);
        let gpath = golden.join(format!("{stem}.txt"));
        if update {
            std::fs::create_dir_all(&golden).expect("mkdir");
            std::fs::write(&gpath, &rendered).expect("write");
            continue;
        }
        match std::fs::read_to_string(&gpath) {
            Ok(want) if want == rendered => {}
            Ok(want) => problems.push(format!("{stem}: differs\n--- golden\n{want}\n--- now\n{rendered}")),
            Err(_) => problems.push(format!("{stem}: golden/invalid/{stem}.txt missing")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each single-problem case reports the code its name promises, and only that problem.
#[test]
fn each_case_has_its_code() {
    use ztpc::Code::*;
    let table = [
        ("kdl-syntax", KdlSyntax),
        ("unknown-node", UnknownNode),
        ("unknown-property", UnknownProperty),
        ("wrong-type", WrongType),
        ("wrong-arity", WrongArity),
        ("missing-node", MissingNode),
        ("duplicate-node", DuplicateNode),
        ("bad-ipv4", BadIpv4),
        ("bad-cidr", BadCidr),
        ("bad-mac", BadMac),
        ("bad-hostname", BadHostname),
        ("bad-sha256", BadSha256),
        ("unknown-platform", UnknownPlatform),
        ("duplicate-device-name", DuplicateDeviceName),
        ("duplicate-mac", DuplicateMac),
        ("duplicate-serial", DuplicateSerial),
        ("duplicate-address", DuplicateAddress),
        ("duplicate-location", DuplicateLocation),
        ("no-identity", NoIdentity),
        ("address-outside-subnets", AddressOutsideSubnets),
        ("address-in-pool", AddressInPool),
        ("address-is-network", AddressReserved),
        ("address-is-broadcast", AddressReserved),
        ("address-is-router", AddressReserved),
        ("pool-outside-subnet", PoolOutsideSubnet),
        ("pool-overlap", PoolOverlap),
        ("pool-reversed", PoolReversed),
        ("subnet-overlap", SubnetOverlap),
        ("missing-custom-config", MissingFile),
        ("missing-image", MissingFile),
        ("missing-ca-cert", MissingFile),
        ("missing-secret-file", MissingFile),
        ("env-unset", EnvUnset),
        ("literal-secret", LiteralSecret),
        ("image-sha256-mismatch", ImageChecksumMismatch),
    ];
    let dir = root().join("examples/invalid");
    for (case, code) in table {
        let text = std::fs::read_to_string(dir.join(format!("{case}.kdl"))).expect(case);
        let host = Host { base_dir: dir.clone(), env: &|_| None };
        let out = ztpc::check(&text, &host);
        let codes: Vec<_> = out.diagnostics.items().iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![code], "{case}");
        let is_error = out.diagnostics.has_errors();
        assert_eq!(is_error, code != LiteralSecret, "{case}: severity");
    }
    let text = std::fs::read_to_string(dir.join("many-errors.kdl")).expect("many-errors");
    let host = Host { base_dir: dir.clone(), env: &|_| None };
    assert_eq!(
        ztpc::check(&text, &host).diagnostics.error_count(),
        5,
        "many-errors reports all five at once"
    );
}
