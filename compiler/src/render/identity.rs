//! How the DHCP servers recognise a device and its platform: shared by dhcpd.conf,
//! kea-dhcp4.json and the runtime manifest, so all three give the same answer.

use crate::model::{Device, Location};
use crate::platform::Platform;
use crate::render::{isc_data, kea_data};
use crate::values::Mac;

/// The identity DHCP uses for a device: MAC first (a host reservation), then the relay
/// location (option 82), then a serial where the NOS puts it in its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpIdentity<'a> {
    Mac(Mac),
    Location(&'a Location),
    Serial(&'a str),
    /// Recognised only by the bootstrap script (ztp.json serial section).
    ScriptOnly,
}

pub fn dhcp_identity(d: &Device) -> DhcpIdentity<'_> {
    if let Some(m) = d.mac {
        DhcpIdentity::Mac(m)
    } else if let Some(l) = &d.location {
        DhcpIdentity::Location(l)
    } else if let Some(s) = d.serial.as_deref().filter(|_| d.platform.serial_in_dhcp()) {
        DhcpIdentity::Serial(s)
    } else {
        DhcpIdentity::ScriptOnly
    }
}

/// Whether the device is recognised by a client class (location or serial) rather than
/// a host reservation.
pub fn by_class(d: &Device) -> bool {
    matches!(dhcp_identity(d), DhcpIdentity::Location(_) | DhcpIdentity::Serial(_))
}

pub fn device_class(d: &Device) -> String {
    format!("device-{}", d.name)
}

/// The platform classes' tests (reference/apstra-ztp.md §2.3, nos-dhcp.md), dhcpd form.
///
/// Junos sends no option 77. dhcpd's `and` gives no result at all (rather than false)
/// when its left side is false, so `not (exists user-class and ...)` never matched a
/// Junos device; `=` on a missing option is plain false, so `not (suffix(...) = ...)`
/// is true for it, as Kea's test and the runtime have it (tests/tests/three_way.rs).
pub fn platform_match_isc(p: Platform) -> &'static str {
    match p {
        Platform::Junos => {
            "(substring(option vendor-class-identifier, 0, 7) = \"Juniper\") and\n          not (suffix(option user-class, 4) = \"-EVO\")"
        }
        Platform::JunosEvo => {
            "(substring(option vendor-class-identifier, 0, 7) = \"Juniper\") and\n          (suffix(option user-class, 4) = \"-EVO\")"
        }
        Platform::Eos => "substring(option vendor-class-identifier, 0, 6) = \"Arista\"",
        Platform::Nxos => "substring(option vendor-class-identifier, 0, 5) = \"Cisco\"",
        Platform::Sonic => {
            "(substring(option dhcp-client-identifier, 0, 5) = \"SONiC\") or\n          (substring(option host-name, 0, 5) = \"sonic\")"
        }
        Platform::Cumulus => "substring(option vendor-class-identifier, 0, 13) = \"cumulus-linux\"",
    }
}

/// The same tests in Kea's expression language.
pub fn platform_match_kea(p: Platform) -> &'static str {
    match p {
        Platform::Junos => {
            "(substring(option[60].hex,0,7) == 'Juniper') and (not (substring(option[77].hex,-4,all) == '-EVO'))"
        }
        Platform::JunosEvo => {
            "(substring(option[60].hex,0,7) == 'Juniper') and (substring(option[77].hex,-4,all) == '-EVO')"
        }
        Platform::Eos => "substring(option[60].hex,0,6) == 'Arista'",
        Platform::Nxos => "substring(option[60].hex,0,5) == 'Cisco'",
        Platform::Sonic => {
            "(substring(option[61].hex,0,5) == 'SONiC') or (substring(option[12].hex,0,5) == 'sonic')"
        }
        Platform::Cumulus => "substring(option[60].hex,0,13) == 'cumulus-linux'",
    }
}

/// Where each NOS carries its serial (nos-dhcp.md): Junos appends `-SERIAL` (or
/// `:SERIAL`) to option 60, EOS `;SERIAL`; NX-OS sends `\0SERIAL` in option 61 and
/// SONiC `SONiC##product##SERIAL`.
enum SerialCarrier {
    VendorSuffix(&'static [&'static str]),
    ClientIdExact(&'static str),
    ClientIdSuffix(&'static str),
}

fn serial_carrier(p: Platform) -> Option<SerialCarrier> {
    match p {
        Platform::Junos | Platform::JunosEvo => Some(SerialCarrier::VendorSuffix(&["-", ":"])),
        Platform::Eos => Some(SerialCarrier::VendorSuffix(&[";"])),
        Platform::Nxos => Some(SerialCarrier::ClientIdExact("\0")),
        Platform::Sonic => Some(SerialCarrier::ClientIdSuffix("##")),
        Platform::Cumulus => None,
    }
}

pub fn serial_match_isc(p: Platform, serial: &str) -> String {
    match serial_carrier(p) {
        Some(SerialCarrier::VendorSuffix(seps)) => seps
            .iter()
            .map(|sep| {
                let v = format!("{sep}{serial}");
                format!("(suffix(option vendor-class-identifier, {}) = {})", v.len(), isc_data(&v))
            })
            .collect::<Vec<_>>()
            .join(" or "),
        Some(SerialCarrier::ClientIdExact(prefix)) => {
            let v = format!("{prefix}{serial}");
            format!("option dhcp-client-identifier = {}", isc_data(&v))
        }
        Some(SerialCarrier::ClientIdSuffix(sep)) => {
            let v = format!("{sep}{serial}");
            format!("suffix(option dhcp-client-identifier, {}) = {}", v.len(), isc_data(&v))
        }
        None => "false".into(),
    }
}

pub fn serial_match_kea(p: Platform, serial: &str) -> String {
    match serial_carrier(p) {
        Some(SerialCarrier::VendorSuffix(seps)) => seps
            .iter()
            .map(|sep| {
                let v = format!("{sep}{serial}");
                format!("(substring(option[60].hex,-{},all) == {})", v.len(), kea_data(v.as_bytes()))
            })
            .collect::<Vec<_>>()
            .join(" or "),
        Some(SerialCarrier::ClientIdExact(prefix)) => {
            format!("option[61].hex == {}", kea_data(format!("{prefix}{serial}").as_bytes()))
        }
        Some(SerialCarrier::ClientIdSuffix(sep)) => {
            let v = format!("{sep}{serial}");
            format!("substring(option[61].hex,-{},all) == {}", v.len(), kea_data(v.as_bytes()))
        }
        None => "false".into(),
    }
}

pub fn location_match_isc(l: &Location) -> String {
    let circuit = format!("option agent.circuit-id = {}", isc_data(&l.circuit_id));
    match &l.remote_id {
        Some(r) => format!("(option agent.remote-id = {}) and ({circuit})", isc_data(r)),
        None => circuit,
    }
}

/// relay4[1] is the circuit-id and relay4[2] the remote-id sub-option of option 82.
pub fn location_match_kea(l: &Location) -> String {
    let circuit = format!("relay4[1].hex == {}", kea_data(l.circuit_id.as_bytes()));
    match &l.remote_id {
        Some(r) => format!("(relay4[2].hex == {}) and ({circuit})", kea_data(r.as_bytes())),
        None => circuit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_matches_follow_each_nos() {
        assert_eq!(
            serial_match_isc(Platform::Eos, "JPE1"),
            "(suffix(option vendor-class-identifier, 5) = \";JPE1\")"
        );
        assert_eq!(
            serial_match_isc(Platform::Nxos, "SAL1"),
            "option dhcp-client-identifier = 00:53:41:4c:31"
        );
        assert_eq!(serial_match_kea(Platform::Sonic, "S"), "substring(option[61].hex,-3,all) == 0x232353");
        assert!(serial_match_kea(Platform::Junos, "WS1").contains(" or "));
    }
}
