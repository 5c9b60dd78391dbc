//! A hypothetical DHCP request (`--dhcp-request OPT=VALUE`) and the pure matching rules
//! that decide which platform class and which device it is.
//!
//! These mirror `render/identity.rs` (what dhcpd.conf and kea-dhcp4.json test) and the
//! runtime's classifier: platform classes first match in [`Platform::ALL`] order; the
//! device is a MAC host first, then the device classes (location, serial) in the order
//! dhcpd.conf declares them (devices sorted by name).

use crate::model::{Device, Fabric, Location};
use crate::platform::Platform;
use crate::render::identity::{self, DhcpIdentity};
use crate::values::{Mac, parse_mac};

/// The options of a request that identify a client, as raw bytes (dhcpd and Kea compare
/// raw option data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// chaddr (`mac=`), matched against host reservations.
    pub mac: Option<Mac>,
    /// Option 12, host-name.
    pub host_name: Option<Vec<u8>>,
    /// Option 60, vendor-class-identifier.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 61, dhcp-client-identifier.
    pub client_id: Option<Vec<u8>>,
    /// Option 77, user-class.
    pub user_class: Option<Vec<u8>>,
    /// Option 82 sub-option 1, circuit-id.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 sub-option 2, remote-id.
    pub remote_id: Option<Vec<u8>>,
}

/// The option keys `--dhcp-request` accepts, with their names, in display order.
pub const KEYS: [(&str, &str); 7] = [
    ("mac", "chaddr"),
    ("12", "host-name"),
    ("60", "vendor-class-identifier"),
    ("61", "dhcp-client-identifier"),
    ("77", "user-class"),
    ("82.1", "circuit-id"),
    ("82.2", "remote-id"),
];

impl Request {
    /// Parse `OPT=VALUE` items. VALUE is text, or hex as `0x...`; `mac=` takes a MAC in
    /// any notation. OPT may also be the option's name (`vendor-class-identifier`, ...).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Request, String> {
        let mut r = Request::default();
        for item in items {
            let item = item.as_ref();
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!("`{item}` is not OPT=VALUE (for example 60=Juniper-qfx5120-48y)"));
            };
            let key = KEYS
                .iter()
                .find(|(code, name)| key == *code || key == *name)
                .map(|(code, _)| *code)
                .ok_or_else(|| {
                    let known: Vec<&str> = KEYS.iter().map(|(c, _)| *c).collect();
                    format!("unknown option `{key}` (known: {})", known.join(", "))
                })?;
            if key == "mac" {
                r.mac = Some(parse_mac(value)?);
                continue;
            }
            let bytes = parse_value(value)?;
            let slot = match key {
                "12" => &mut r.host_name,
                "60" => &mut r.vendor_class,
                "61" => &mut r.client_id,
                "77" => &mut r.user_class,
                "82.1" => &mut r.circuit_id,
                _ => &mut r.remote_id,
            };
            *slot = Some(bytes);
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        *self == Request::default()
    }

    /// The options as given, `(key, name, shown value)`, in [`KEYS`] order.
    pub fn shown(&self) -> Vec<(&'static str, &'static str, String)> {
        let values = [
            self.mac.map(|m| m.to_string()),
            self.host_name.as_deref().map(show_bytes),
            self.vendor_class.as_deref().map(show_bytes),
            self.client_id.as_deref().map(show_bytes),
            self.user_class.as_deref().map(show_bytes),
            self.circuit_id.as_deref().map(show_bytes),
            self.remote_id.as_deref().map(show_bytes),
        ];
        KEYS.iter().zip(values).filter_map(|((k, n), v)| v.map(|v| (*k, *n, v))).collect()
    }
}

/// `0x...` is hex; anything else is the text's bytes.
fn parse_value(v: &str) -> Result<Vec<u8>, String> {
    let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) else {
        return Ok(v.as_bytes().to_vec());
    };
    let hex: String = hex.chars().filter(|c| *c != ':').collect();
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{v}` is not hex (0x followed by pairs of hex digits)"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Printable ASCII as a quoted string, anything else as `0x...`.
pub fn show_bytes(b: &[u8]) -> String {
    if b.iter().all(|c| (0x20..0x7f).contains(c)) {
        format!("\"{}\"", String::from_utf8_lossy(b))
    } else {
        format!("0x{}", crate::validate::hex(b))
    }
}

fn starts(v: &Option<Vec<u8>>, prefix: &[u8]) -> bool {
    v.as_deref().is_some_and(|v| v.starts_with(prefix))
}

/// Whether `p`'s platform class matches (identity.rs `platform_match_isc`).
pub fn platform_matches(p: Platform, r: &Request) -> bool {
    let evo = r.user_class.as_deref().is_some_and(|u| u.ends_with(b"-EVO"));
    match p {
        Platform::Junos => starts(&r.vendor_class, b"Juniper") && !evo,
        Platform::JunosEvo => starts(&r.vendor_class, b"Juniper") && evo,
        Platform::Eos => starts(&r.vendor_class, b"Arista"),
        Platform::Nxos => starts(&r.vendor_class, b"Cisco"),
        Platform::Sonic => starts(&r.client_id, b"SONiC") || starts(&r.host_name, b"sonic"),
        Platform::Cumulus => starts(&r.vendor_class, b"cumulus-linux"),
    }
}

/// Why a platform class matches, in words (for the explanation).
pub fn platform_reason(p: Platform) -> &'static str {
    match p {
        Platform::Junos => "option 60 starts with \"Juniper\" and option 77 does not end with \"-EVO\"",
        Platform::JunosEvo => "option 60 starts with \"Juniper\" and option 77 ends with \"-EVO\"",
        Platform::Eos => "option 60 starts with \"Arista\"",
        Platform::Nxos => "option 60 starts with \"Cisco\"",
        Platform::Sonic => "option 61 starts with \"SONiC\" or option 12 starts with \"sonic\"",
        Platform::Cumulus => "option 60 starts with \"cumulus-linux\"",
    }
}

/// The platform class whose answer the client gets: the first that matches.
pub fn platform_of(r: &Request) -> Option<Platform> {
    Platform::ALL.into_iter().find(|p| platform_matches(*p, r))
}

/// Whether a request carries `serial` where `p`'s NOS puts it (identity.rs
/// `serial_carrier`): Junos `-SERIAL`/`:SERIAL` and EOS `;SERIAL` at the end of option
/// 60, NX-OS option 61 exactly `\0SERIAL`, SONiC option 61 ending `##SERIAL`.
pub fn serial_matches(p: Platform, serial: &str, r: &Request) -> bool {
    let s = serial.as_bytes();
    let suffix = |v: &Option<Vec<u8>>, sep: &[u8]| {
        v.as_deref().is_some_and(|v| {
            v.len() >= sep.len() + s.len() && v.ends_with(s) && v[..v.len() - s.len()].ends_with(sep)
        })
    };
    match p {
        Platform::Junos | Platform::JunosEvo => {
            suffix(&r.vendor_class, b"-") || suffix(&r.vendor_class, b":")
        }
        Platform::Eos => suffix(&r.vendor_class, b";"),
        Platform::Nxos => {
            r.client_id.as_deref().is_some_and(|c| c.len() == s.len() + 1 && c[0] == 0 && c.ends_with(s))
        }
        Platform::Sonic => suffix(&r.client_id, b"##"),
        Platform::Cumulus => false,
    }
}

/// Whether option 82 names this location (circuit-id, and remote-id when the device has one).
pub fn location_matches(l: &Location, r: &Request) -> bool {
    r.circuit_id.as_deref() == Some(l.circuit_id.as_bytes())
        && l.remote_id.as_ref().is_none_or(|id| r.remote_id.as_deref() == Some(id.as_bytes()))
}

/// How a request was recognised as a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// chaddr equals the device's MAC: its `host` block / Kea reservation.
    Mac,
    /// option 82 matched its location class.
    Location,
    /// the request carried its serial where its NOS does.
    Serial,
}

/// The device a request is, if any: MAC host first, then device classes in order.
pub fn device_of<'f>(f: &'f Fabric, r: &Request) -> Option<(&'f Device, MatchedBy)> {
    if let Some(mac) = r.mac
        && let Some(d) = f.devices.iter().find(|d| identity::dhcp_identity(d) == DhcpIdentity::Mac(mac))
    {
        return Some((d, MatchedBy::Mac));
    }
    f.devices.iter().find_map(|d| match identity::dhcp_identity(d) {
        DhcpIdentity::Location(l) if location_matches(l, r) => Some((d, MatchedBy::Location)),
        DhcpIdentity::Serial(s) if serial_matches(d.platform, s, r) => Some((d, MatchedBy::Serial)),
        _ => None,
    })
}

/// Devices whose serial the request carries although DHCP does not recognise them by it
/// (their DHCP identity is a MAC or location, or the NOS sends no serial): the bootstrap
/// script may still find them in ztp.json by serial.
pub fn serial_only_in_script<'f>(f: &'f Fabric, r: &Request) -> Vec<&'f Device> {
    f.devices
        .iter()
        .filter(|d| !matches!(identity::dhcp_identity(d), DhcpIdentity::Serial(_)))
        .filter(|d| {
            d.serial.as_deref().is_some_and(|s| {
                Platform::ALL.into_iter().any(|p| p.serial_in_dhcp() && serial_matches(p, s, r))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(items: &[&str]) -> Request {
        Request::parse(items).unwrap()
    }

    #[test]
    fn parses_text_hex_names_and_mac() {
        let r = req(&["60=Juniper-x", "61=0x00:41", "remote-id=sw1", "mac=5254.006f.ff4f"]);
        assert_eq!(r.vendor_class.as_deref(), Some(&b"Juniper-x"[..]));
        assert_eq!(r.client_id.as_deref(), Some(&[0u8, 0x41][..]));
        assert_eq!(r.remote_id.as_deref(), Some(&b"sw1"[..]));
        assert_eq!(r.mac.unwrap().to_string(), "52:54:00:6f:ff:4f");
        assert!(Request::parse(&["99=x"]).unwrap_err().contains("unknown option"));
        assert!(Request::parse(&["61=0x0"]).is_err());
        assert!(Request::parse(&["60"]).is_err());
        assert_eq!(show_bytes(&[0, 0x41]), "0x0041");
    }

    /// The same cases as identity.rs's serial tests, as requests.
    #[test]
    fn serial_carriers_follow_each_nos() {
        assert!(serial_matches(Platform::Eos, "JPE1", &req(&["60=Arista;DCS;JPE1"])));
        assert!(!serial_matches(Platform::Eos, "JPE1", &req(&["60=Arista-JPE1"])));
        assert!(serial_matches(Platform::Nxos, "SAL1", &req(&["61=0x0053414c31"])));
        assert!(!serial_matches(Platform::Nxos, "SAL1", &req(&["61=SAL1"])));
        assert!(serial_matches(Platform::Sonic, "S", &req(&["61=SONiC##x##S"])));
        assert!(serial_matches(Platform::Junos, "WS1", &req(&["60=Juniper-qfx-WS1"])));
        assert!(serial_matches(Platform::Junos, "WS1", &req(&["60=Juniper:qfx:WS1"])));
        assert!(!serial_matches(Platform::Junos, "WS1", &req(&["60=Juniper-qfxWS1"])));
        assert!(!serial_matches(Platform::Cumulus, "C1", &req(&["60=cumulus-linux-C1"])));
    }

    #[test]
    fn platform_classes() {
        assert_eq!(platform_of(&req(&["60=Juniper-qfx"])), Some(Platform::Junos));
        assert_eq!(platform_of(&req(&["60=Juniper-qfx", "77=23.2R1-EVO"])), Some(Platform::JunosEvo));
        assert_eq!(platform_of(&req(&["60=Arista;x"])), Some(Platform::Eos));
        assert_eq!(platform_of(&req(&["60=Cisco N9K"])), Some(Platform::Nxos));
        assert_eq!(platform_of(&req(&["12=sonic"])), Some(Platform::Sonic));
        assert_eq!(platform_of(&req(&["61=SONiC##p##s"])), Some(Platform::Sonic));
        assert_eq!(platform_of(&req(&["60=cumulus-linux x86_64"])), Some(Platform::Cumulus));
        assert_eq!(platform_of(&req(&["60=MSFT 5.0"])), None);
    }

    #[test]
    fn locations() {
        let l = Location { remote_id: Some("sw1".into()), circuit_id: "ge-0/0/1".into() };
        assert!(location_matches(&l, &req(&["82.1=ge-0/0/1", "82.2=sw1"])));
        assert!(!location_matches(&l, &req(&["82.1=ge-0/0/1"])));
        let any = Location { remote_id: None, circuit_id: "ge-0/0/1".into() };
        assert!(location_matches(&any, &req(&["82.1=ge-0/0/1", "82.2=other"])));
    }
}
