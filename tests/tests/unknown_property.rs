//! Inject an unknown property into every node of every example, one at a time, and
//! expect exactly one error, `ztp::schema::unknown-property`, pointing at the injection
//! (the check hickory-dns runs on its TOML).

use kdl::{KdlDocument, KdlEntry, KdlNode};
use ztp_tests::*;
use ztpc::{Code, Host};

const PROBE: &str = "zz-probe";

fn count(doc: &KdlDocument) -> usize {
    doc.nodes().iter().map(|n| 1 + n.children().map(count).unwrap_or(0)).sum()
}

/// Add the probe property to the `target`-th node (depth-first); returns true once done.
fn inject(doc: &mut KdlDocument, target: &mut usize) -> bool {
    for node in doc.nodes_mut() {
        if *target == 0 {
            push_probe(node);
            return true;
        }
        *target -= 1;
        if let Some(ch) = node.children_mut().as_mut()
            && inject(ch, target)
        {
            return true;
        }
    }
    false
}

fn push_probe(node: &mut KdlNode) {
    node.entries_mut().push(KdlEntry::new_prop(PROBE, 1));
}

#[test]
fn unknown_property_on_every_node_is_reported_at_its_span() {
    let mut checked = 0;
    for name in examples() {
        let dir = root().join("examples").join(&name);
        let text = std::fs::read_to_string(dir.join("fabric.kdl")).expect("fabric");
        let doc: KdlDocument = KdlDocument::parse_v2(&text).expect("example parses");
        let env = example_env(&name);
        let lookup = |k: &str| env.get(k).cloned();
        for i in 0..count(&doc) {
            let mut d = doc.clone();
            let mut t = i;
            assert!(inject(&mut d, &mut t));
            let modified = d.to_string();
            let at = modified.find(PROBE).expect("probe in text");
            let host = Host { base_dir: dir.clone(), env: &lookup };
            let out = ztpc::check(&modified, &host);
            let errors: Vec<_> = out.diagnostics.items().iter().filter(|d| d.is_error()).collect();
            assert_eq!(errors.len(), 1, "{name} node #{i}: {errors:#?}");
            assert_eq!(errors[0].code, Code::UnknownProperty, "{name} node #{i}");
            let span = errors[0].span;
            assert!(
                span.offset() <= at && at < span.offset() + span.len(),
                "{name} node #{i}: span {span:?} does not cover the probe at {at}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} nodes checked");
}
