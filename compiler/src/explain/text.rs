//! The plain-text form of an [`Explanation`]: titled sections of aligned rows, no colour,
//! stable for golden tests.

use std::fmt::Write;

use crate::explain::Explanation;

/// Render `e` as text.
pub fn render(e: &Explanation) -> String {
    let mut o = String::new();
    let title = match (&e.device, e.platform) {
        (Some(d), _) => format!("device {} ({})", d.name, d.platform),
        (None, Some(p)) => format!("an unknown {p} device"),
        (None, None) => "an unknown client".to_string(),
    };
    let _ = writeln!(o, "fabric \"{}\": {title}", e.fabric);
    let _ = writeln!(o, "query: {}", if e.query == "-" { "a hypothetical DHCP request" } else { &e.query });
    let _ = writeln!(o, "matched: {}", e.matched);

    if let Some(r) = &e.request {
        section(&mut o, "Request");
        let rows: Vec<[String; 3]> = r
            .options
            .iter()
            .map(|x| [format!("option {}", x.code), x.name.clone(), x.value.clone()])
            .collect();
        table(&mut o, "  ", &rows);
        let none = "none".to_string();
        let platform = r.platform_class.as_ref().map(|c| format!("class \"{}\": {}", c.class, c.why));
        let device = r.device_class.as_ref().map(|c| format!("{}: {}", c.class, c.why));
        table(
            &mut o,
            "  ",
            &[
                ["platform class".into(), platform.unwrap_or_else(|| none.clone()), String::new()],
                ["device".into(), device.unwrap_or(none), String::new()],
            ],
        );
    }

    if let Some(d) = &e.device {
        section(&mut o, "Device");
        let mut rows = vec![kv("name", &d.name), kv("platform", d.platform.name())];
        let opt = [
            ("model", d.model.clone()),
            ("mac", d.mac.clone()),
            ("serial", d.serial.clone()),
            ("address", d.address.map(|a| a.to_string())),
            ("location", d.location.clone()),
        ];
        rows.extend(opt.iter().filter_map(|(k, v)| v.as_deref().map(|v| kv(k, v))));
        table(&mut o, "  ", &rows);
    }

    section(&mut o, "DHCP");
    let h = &e.dhcp;
    let mut rows = vec![kv("recognised by", &h.recognised_by)];
    if let Some(b) = &h.block {
        rows.push(kv("answered by", &format!("{b} in dhcpd.conf (the same in kea-dhcp4.json)")));
    }
    if let Some(m) = &h.match_if {
        rows.push(kv("match if", m));
    }
    rows.push(kv("address", &h.address));
    if let Some(s) = &h.subnet {
        rows.push(kv("subnet", s));
    }
    rows.push(kv("options", ""));
    table(&mut o, "  ", &rows);
    let opts: Vec<[String; 3]> =
        h.options.iter().map(|x| [x.code.clone(), x.name.clone(), x.value.clone()]).collect();
    table(&mut o, "    ", &opts);

    if let Some(b) = &e.boot {
        section(&mut o, "Boot");
        table(
            &mut o,
            "  ",
            &[
                kv("option", &format!("{} = \"{}\"", b.option, b.value)),
                kv("script", &b.script),
                kv("", &format!("({})", b.what)),
                kv("fetched by", &b.fetched),
            ],
        );
    }

    if let Some(i) = &e.image {
        section(&mut o, "Image");
        match (&i.image, &i.from) {
            (Some(img), Some(from)) => {
                let mut rows = vec![kv("image", img), kv("from", from)];
                rows.push(kv(
                    "sha256",
                    i.sha256.as_deref().unwrap_or("none declared (the device cannot check the download)"),
                ));
                if let Some(f) = &i.file {
                    let size = i.size.map(|s| format!(", {s} bytes")).unwrap_or_default();
                    rows.push(kv("file", &format!("{f} (beside the fabric file{size})")));
                }
                rows.push(kv("installed", "when the running version is not one of `versions` below"));
                table(&mut o, "  ", &rows);
            }
            _ => table(&mut o, "  ", &[kv("image", "none: ZTP does not upgrade it")]),
        }
    }

    if !e.settings.is_empty() {
        section(&mut o, "Settings (device > model > platform > defaults)");
        let rows: Vec<[String; 3]> = e
            .settings
            .iter()
            .map(|s| {
                [
                    s.key.clone(),
                    s.from.clone().unwrap_or_else(|| "(not set)".into()),
                    s.value.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&mut o, "  ", &rows);
    }

    if let Some(c) = &e.controller {
        section(&mut o, "Controller (installs the system agent)");
        table(&mut o, "  ", &[kv("url", &c.url), kv("user", &c.user), kv("password", &c.password)]);
    }

    if !e.ztp_json_sections.is_empty() {
        section(&mut o, "ztp.json");
        table(&mut o, "  ", &[kv("sections", &e.ztp_json_sections.join(", "))]);
    }

    if !e.notes.is_empty() {
        section(&mut o, "Notes");
        for n in &e.notes {
            let _ = writeln!(o, "  - {n}");
        }
    }
    o
}

fn section(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n{title}");
}

fn kv(k: &str, v: &str) -> [String; 3] {
    [k.to_string(), v.to_string(), String::new()]
}

/// Rows of up to three columns, each column padded to its widest cell; trailing empty
/// cells and trailing spaces dropped.
fn table(o: &mut String, indent: &str, rows: &[[String; 3]]) {
    let mut w = [0usize; 3];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = indent.to_string();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() && r[i + 1..].iter().any(|x| !x.is_empty()) {
                let _ = write!(line, "{c:<width$}  ", width = w[i]);
            } else {
                line.push_str(c);
                break;
            }
        }
        let _ = writeln!(o, "{}", line.trim_end());
    }
}
