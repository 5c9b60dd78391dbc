//! Take on the leased address as a switch configures its management port: add it to the
//! interface that reaches the server and make it the source of traffic to the server,
//! so that the script's fetches and reports come from it (the runtime checks that a
//! report comes from the address it speaks for). Uses `ip` (iproute2); needs
//! CAP_NET_ADMIN in the namespace the emulator runs in.

use std::net::Ipv4Addr;
use std::process::Command;

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The interface (and gateway, if any) the kernel uses to reach `server`.
pub fn route_to(server: Ipv4Addr) -> Result<(String, Option<String>), String> {
    let out = ip(&["-4", "route", "get", &server.to_string()])?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let after =
        |k: &str| words.iter().position(|w| *w == k).and_then(|i| words.get(i + 1)).map(|s| s.to_string());
    let dev = after("dev").ok_or_else(|| format!("no route to {server}: {}", out.trim()))?;
    Ok((dev, after("via")))
}

/// Add `addr/prefix` to `dev` and route `server` from it. Returns what was done.
pub fn take(
    addr: Ipv4Addr,
    prefix: u8,
    server: Ipv4Addr,
    dev: &str,
    via: Option<&str>,
) -> Result<String, String> {
    ip(&["-4", "addr", "replace", &format!("{addr}/{prefix}"), "dev", dev])?;
    let dst = format!("{server}/32");
    let src = addr.to_string();
    let mut args = vec!["-4", "route", "replace", &dst];
    if let Some(v) = via {
        args.extend(["via", v]);
    }
    args.extend(["dev", dev, "src", &src]);
    ip(&args)?;
    Ok(format!(
        "{addr}/{prefix} on {dev}; {server} reached from {addr}{}",
        via.map(|v| format!(" via {v}")).unwrap_or_default()
    ))
}

/// Remove an address an earlier boot took (best effort: it may be gone already).
pub fn forget(addr: Ipv4Addr, dev: &str) {
    let out = ip(&["-4", "-o", "addr", "show", "dev", dev]).unwrap_or_default();
    let with_prefix = out.split_whitespace().find(|w| w.starts_with(&format!("{addr}/"))).map(str::to_string);
    if let Some(a) = with_prefix {
        let _ = ip(&["-4", "addr", "del", &a, "dev", dev]);
    }
}

/// Give `dev` the switch's MAC (the management port's own), unless it has it already:
/// Linux NOS scripts read it from /sys/class/net/eth0/address.
pub fn set_mac(dev: &str, mac: &str) -> Result<bool, String> {
    let now = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).unwrap_or_default();
    if now.trim().eq_ignore_ascii_case(mac) {
        return Ok(false);
    }
    ip(&["link", "set", "dev", dev, "address", mac])?;
    Ok(true)
}
