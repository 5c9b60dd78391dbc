//! Which platform and which device a request comes from: the same tests, in the same
//! order, as the classes and hosts ztpc writes into dhcpd.conf
//! (compiler/src/render/identity.rs), so that our answer and dhcpd's agree.

use dhcproto::v4::{self, DhcpOption, OptionCode, relay::RelayCode, relay::RelayInfo};
use ztpc::platform::Platform;
use ztpc::render::manifest::{DeviceInfo, IdentityKind};

use crate::dhcp::config::Config;

/// The raw bytes of an option that identifies a client. dhcpd's `substring`/`suffix`
/// compare raw option data, so nothing is parsed out of them (option 77's RFC 3004
/// length bytes included, as `suffix(option user-class, 4)` sees them).
pub fn raw(msg: &v4::Message, code: OptionCode) -> Option<&[u8]> {
    match msg.opts().get(code)? {
        DhcpOption::ClassIdentifier(b) | DhcpOption::ClientIdentifier(b) | DhcpOption::UserClass(b) => {
            Some(b)
        }
        DhcpOption::Hostname(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The relay agent's circuit-id (sub-option 1) and remote-id (sub-option 2), RFC 3046.
fn relay_ids(msg: &v4::Message) -> (Option<&[u8]>, Option<&[u8]>) {
    let Some(DhcpOption::RelayAgentInformation(info)) = msg.opts().get(OptionCode::RelayAgentInformation)
    else {
        return (None, None);
    };
    let circuit = match info.get(RelayCode::AgentCircuitId) {
        Some(RelayInfo::AgentCircuitId(b)) => Some(b.as_slice()),
        _ => None,
    };
    let remote = match info.get(RelayCode::AgentRemoteId) {
        Some(RelayInfo::AgentRemoteId(b)) => Some(b.as_slice()),
        _ => None,
    };
    (circuit, remote)
}

/// dhcpd's platform classes, first match in [`Platform::ALL`] order: dhcpd applies the
/// classes a client matched so that the first declared one wins (identity.rs
/// `platform_match_isc`).
pub fn platform(msg: &v4::Message) -> Option<Platform> {
    let vendor = raw(msg, OptionCode::ClassIdentifier);
    let client_id = raw(msg, OptionCode::ClientIdentifier);
    let user_class = raw(msg, OptionCode::UserClass);
    let host = raw(msg, OptionCode::Hostname);
    let starts = |v: Option<&[u8]>, p: &[u8]| v.is_some_and(|v| v.starts_with(p));
    let evo = user_class.is_some_and(|u| u.ends_with(b"-EVO"));
    Platform::ALL.into_iter().find(|p| match p {
        Platform::Junos => starts(vendor, b"Juniper") && !evo,
        Platform::JunosEvo => starts(vendor, b"Juniper") && evo,
        Platform::Eos => starts(vendor, b"Arista"),
        Platform::Nxos => starts(vendor, b"Cisco"),
        Platform::Sonic => starts(client_id, b"SONiC") || starts(host, b"sonic"),
        Platform::Cumulus => starts(vendor, b"cumulus-linux"),
    })
}

/// The device a request is, if any: a MAC host reservation first (`hardware ethernet`,
/// htype 1), then the device classes in declaration order (location, serial).
pub fn device<'c>(cfg: &'c Config, msg: &v4::Message) -> Option<(usize, &'c DeviceInfo)> {
    if msg.htype() == v4::HType::Eth
        && let Ok(mac) = <[u8; 6]>::try_from(msg.chaddr())
        && let Some(i) = cfg.device_by_mac(&mac)
    {
        return cfg.devices.get(i).map(|d| (i, d));
    }
    let vendor = raw(msg, OptionCode::ClassIdentifier);
    let client_id = raw(msg, OptionCode::ClientIdentifier);
    let (circuit, remote) = relay_ids(msg);
    cfg.classed().find(|(_, d)| match d.dhcp_identity {
        IdentityKind::Location => d.location.as_ref().is_some_and(|l| {
            circuit == Some(l.circuit_id.as_bytes())
                && l.remote_id.as_ref().is_none_or(|r| remote == Some(r.as_bytes()))
        }),
        IdentityKind::Serial => {
            d.serial.as_deref().is_some_and(|s| serial_matches(d.platform, s, vendor, client_id))
        }
        _ => false,
    })
}

/// Where each NOS carries its serial (identity.rs `serial_carrier`): Junos appends
/// `-SERIAL` or `:SERIAL` to option 60, EOS `;SERIAL`; NX-OS sends option 61 as
/// `\0SERIAL` exactly, SONiC as `SONiC##product##SERIAL`. Cumulus sends none.
fn serial_matches(p: Platform, serial: &str, vendor: Option<&[u8]>, client_id: Option<&[u8]>) -> bool {
    let s = serial.as_bytes();
    let suffix = |v: Option<&[u8]>, sep: &[u8]| {
        v.is_some_and(|v| {
            v.len() >= sep.len() + s.len() && v.ends_with(s) && v[..v.len() - s.len()].ends_with(sep)
        })
    };
    match p {
        Platform::Junos | Platform::JunosEvo => suffix(vendor, b"-") || suffix(vendor, b":"),
        Platform::Eos => suffix(vendor, b";"),
        Platform::Nxos => client_id.is_some_and(|c| c.len() == s.len() + 1 && c[0] == 0 && c.ends_with(s)),
        Platform::Sonic => suffix(client_id, b"##"),
        Platform::Cumulus => false,
    }
}
