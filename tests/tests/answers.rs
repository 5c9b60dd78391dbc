//! Every file that a DHCP answer (dhcpd.conf, kea-dhcp4.json, runtime.json) or ztp.json
//! names exists in the served tree, or, for images, in the runtime's image list.

use serde_json::Value;
use ztp_tests::*;

/// Map a boot value (a path in the tree, or a URL on this server) to a tree path.
fn tree_path(value: &str, base: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix(base) {
        return Some(rest.trim_start_matches('/').to_string());
    }
    (!value.contains("://")).then(|| value.to_string())
}

fn walk_kea(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(n)), Some(Value::String(d))) = (m.get("name"), m.get("data"))
                && ["config-file-name", "boot-file-name", "ztp-provision-url"].contains(&n.as_str())
            {
                out.push(d.clone());
            }
            m.values().for_each(|x| walk_kea(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| walk_kea(x, out)),
        _ => {}
    }
}

#[test]
fn every_named_file_exists() {
    for name in examples() {
        let art = artifacts(&name);
        let text = |p: &str| String::from_utf8(art[p].bytes.clone()).expect("utf8");
        let manifest: Value = serde_json::from_str(&text("runtime.json")).expect("runtime.json");
        let base = manifest["server"]["base-url"].as_str().expect("base-url").to_string();
        let mut named: Vec<(String, String)> = Vec::new();
        for line in text("dhcpd.conf").lines() {
            let l = line.trim();
            for opt in
                ["option JUNIPER.config-file-name ", "option bootfile-name ", "option ztp-provision-url "]
            {
                if let Some(v) = l.strip_prefix(opt).filter(|v| !v.starts_with("code ")) {
                    named.push(("dhcpd.conf".into(), v.trim_end_matches(';').trim_matches('"').to_string()));
                }
            }
        }
        let mut kea = Vec::new();
        walk_kea(&serde_json::from_str(&text("kea-dhcp4.json")).expect("kea"), &mut kea);
        named.extend(kea.into_iter().map(|v| ("kea-dhcp4.json".to_string(), v)));
        // The manifest parses back into the runtime's own types, unchanged.
        let typed: ztpc::render::manifest::Manifest =
            serde_json::from_value(manifest.clone()).expect("runtime.json matches the Manifest type");
        assert_eq!(serde_json::to_value(&typed).expect("to value"), manifest);
        if let Some(c) = &typed.controller {
            assert!(
                !format!("{typed:?}").contains(&c.password),
                "{name}: Debug shows the controller password"
            );
        }
        for p in manifest["platforms"].as_array().expect("platforms") {
            named.push(("runtime.json".into(), p["boot-value"].as_str().expect("boot").to_string()));
        }
        for d in manifest["devices"].as_array().expect("devices") {
            named.push(("runtime.json".into(), d["boot-value"].as_str().expect("boot").to_string()));
        }
        assert!(named.len() >= 12, "{name}: too few answers found ({})", named.len());
        for (from, v) in &named {
            let path =
                tree_path(v, &base).unwrap_or_else(|| panic!("{name}: {from} names {v}, not on this server"));
            assert!(
                art.contains_key(&format!("tftp/{path}")),
                "{name}: {from} names {v}, missing from tftp/"
            );
        }
        // ztp.json: custom-config paths are in the tree; local images are in the manifest.
        let ztp: Value = serde_json::from_str(&text("tftp/ztp.json")).expect("ztp.json");
        let images: Vec<&str> = manifest["images"]
            .as_array()
            .expect("images")
            .iter()
            .filter_map(|i| i["path"].as_str())
            .collect();
        for (section, keys) in ztp.as_object().expect("object") {
            for (k, v) in keys.as_object().expect("section") {
                let Some(v) = v.as_str() else { continue };
                if k == "custom-config" && !v.contains("://") {
                    assert!(
                        art.contains_key(&format!("tftp/{v}")),
                        "{name}: {section}.custom-config {v} missing"
                    );
                }
                if k.ends_with("-image")
                    && let Some(p) = v.strip_prefix(&format!("{base}/"))
                {
                    assert!(images.contains(&p), "{name}: {section}.{k} {v} not in runtime.json images");
                }
            }
        }
        // SHA256SUMS covers every other file of the tree, with the right digests.
        let sums = text("tftp/SHA256SUMS");
        let tree: Vec<&String> =
            art.keys().filter(|k| k.starts_with("tftp/") && *k != "tftp/SHA256SUMS").collect();
        assert_eq!(sums.lines().count(), tree.len(), "{name}: SHA256SUMS size");
        for line in sums.lines() {
            let (sum, path) = line.split_once("  ").expect("sum line");
            let a = &art[&format!("tftp/{path}")];
            assert_eq!(sum, ztpc::render::sha256_hex(&a.bytes), "{name}: {path}");
        }
    }
}
