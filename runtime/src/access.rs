//! Who may fetch what. A per-device script (`devices/<name>.*`) has that device's
//! passwords baked in, so only the device's own reserved address may fetch it; any other
//! address gets 403 (TFTP: an access violation), a warning in the log and an event in
//! the owner's device log. Everything else in the tree is for every device.
//!
//! A device without a reserved address (known by serial or location, on a pool address)
//! is not restricted here: which pool address it holds is known only to the DHCP server
//! that leased it, which may be Kea or dhcpd rather than this runtime. SECURITY.md says
//! so.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use crate::generation::Generation;

/// The answer for one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// `path` is `device`'s script and only `owner` may fetch it.
    Refused {
        device: String,
        owner: Ipv4Addr,
    },
}

/// Script path → (device name, reserved address), for one generation.
type Index = HashMap<String, (String, Ipv4Addr)>;

/// The index of the generation last asked about: built once per generation, so a
/// request costs one hash lookup whatever the fabric's size.
static INDEX: Mutex<Option<(String, Arc<Index>)>> = Mutex::new(None);

fn index(g: &Generation) -> Arc<Index> {
    let mut cached = INDEX.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((id, ix)) = cached.as_ref()
        && *id == g.id
    {
        return ix.clone();
    }
    let ix: Index = g
        .manifest
        .devices
        .iter()
        .filter_map(|d| Some((d.script.clone(), (d.name.clone(), d.address?))))
        .collect();
    let ix = Arc::new(ix);
    *cached = Some((g.id.clone(), ix.clone()));
    ix
}

/// May `peer` fetch `clean` (a path that passed [`crate::paths::clean`]) from `g`?
pub fn check(g: &Generation, clean: &str, peer: IpAddr) -> Access {
    // Only device scripts hold per-device secrets; skip the lock for everything else.
    if !clean.starts_with("devices/") {
        return Access::Allowed;
    }
    let ix = index(g);
    let Some((device, owner)) = ix.get(clean) else { return Access::Allowed };
    let peer_v4 = match peer {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    };
    if peer_v4 == Some(*owner) {
        Access::Allowed
    } else {
        Access::Refused { device: device.clone(), owner: *owner }
    }
}

/// Log a refusal and put it in the owner's device log, so that an operator watching
/// that device sees someone else asked for its secrets.
pub fn report(
    state: &crate::state::State,
    proto: &str,
    peer: IpAddr,
    path: &str,
    device: &str,
    owner: Ipv4Addr,
) {
    tracing::warn!(%peer, path, device, %owner, proto, "refused: a device script fetched from another address");
    state.event(crate::events::Event {
        ip: owner.to_string(),
        kind: "security",
        text: format!("{proto}: {path} refused to {peer} (only {owner} may fetch it)"),
        name: Some(device.to_string()),
        mac: None,
    });
}
