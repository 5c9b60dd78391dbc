//! The emulated switch: its NOS, MAC, serial, model and running version, and what its
//! DHCP client puts on the wire (reference/nos-dhcp.md, "Sent", per NOS).

use dhcproto::v4::{DhcpOption, OptionCode};
use ztpc::platform::Platform;

#[derive(Debug, Clone)]
pub struct Device {
    pub platform: Platform,
    pub mac: [u8; 6],
    pub serial: String,
    pub model: String,
    pub version: String,
}

/// A model and a release each NOS really ships, for a device given without them.
pub fn default_model(p: Platform) -> &'static str {
    match p {
        Platform::Junos => "QFX5120-48Y",
        Platform::JunosEvo => "PTX10001-36MR",
        Platform::Eos => "DCS-7050SX3-48YC8",
        Platform::Nxos => "N9K-C93180YC-FX",
        Platform::Sonic => "S5248F-ON",
        Platform::Cumulus => "MSN2700",
    }
}

pub fn default_version(p: Platform) -> &'static str {
    match p {
        Platform::Junos => "23.2R1.14",
        Platform::JunosEvo => "23.2R1.15-EVO",
        Platform::Eos => "4.30.1F",
        Platform::Nxos => "10.3(3)",
        Platform::Sonic => "SONiC.202311.1",
        Platform::Cumulus => "5.9.1",
    }
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let bad = || format!("`{s}` is not a MAC address (want six hex bytes, e.g. 52:54:00:12:34:56)");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Device {
    /// Junos sets the BOOTP broadcast flag (seen in an MX10003 capture); the others do not.
    pub fn broadcast(&self) -> bool {
        matches!(self.platform, Platform::Junos | Platform::JunosEvo)
    }

    /// The options this NOS's client sends in DISCOVER and REQUEST, besides 53/50/54.
    pub fn dhcp_options(&self) -> Vec<DhcpOption> {
        use OptionCode as C;
        let prl =
            |codes: &[u8]| DhcpOption::ParameterRequestList(codes.iter().map(|c| C::from(*c)).collect());
        match self.platform {
            // Option 60 `Juniper-<model>-<serial>`, model in lower case; no 61, no 77.
            Platform::Junos => vec![
                DhcpOption::ClassIdentifier(
                    format!("Juniper-{}-{}", self.model.to_lowercase(), self.serial).into_bytes(),
                ),
                prl(&[3, 51, 1, 15, 6, 66, 67, 120, 44, 43, 150, 12, 7, 42]),
            ],
            // EVO: the same option 60; option 77 ends "-EVO" (its full value is not
            // public: the running release, which ends "-EVO", is sent).
            Platform::JunosEvo => vec![
                DhcpOption::ClassIdentifier(
                    format!("Juniper-{}-{}", self.model.to_lowercase(), self.serial).into_bytes(),
                ),
                DhcpOption::UserClass(evo_user_class(&self.version).into_bytes()),
                prl(&[3, 51, 1, 15, 6, 66, 67, 120, 44, 43, 150, 12, 7, 42]),
            ],
            // `Arista;<model>;<hw-rev>;<serial>` and the system MAC as client id (6 bytes).
            Platform::Eos => vec![
                DhcpOption::ClassIdentifier(
                    format!("Arista;{};01.00;{}", self.model, self.serial).into_bytes(),
                ),
                DhcpOption::ClientIdentifier(self.mac.to_vec()),
                prl(&[1, 3, 6, 12, 15, 42, 66, 67, 143]),
            ],
            // 61 = NUL + serial, 77 = "Cisco-POAP" (seen). Option 60 is not documented;
            // servers (Apstra, AEON, ztpc) match its prefix "Cisco", so "Cisco" is sent.
            Platform::Nxos => vec![
                DhcpOption::ClassIdentifier(b"Cisco".to_vec()),
                DhcpOption::ClientIdentifier([&[0u8][..], self.serial.as_bytes()].concat()),
                DhcpOption::UserClass(b"Cisco-POAP".to_vec()),
                prl(&[1, 3, 6, 12, 15, 66, 67, 150]),
            ],
            // ZTP mode: 61 `SONiC##<product>##<serial>`, 77 `SONiC-ZTP`, 12 `sonic`; no 60.
            Platform::Sonic => vec![
                DhcpOption::ClientIdentifier(format!("SONiC##{}##{}", self.model, self.serial).into_bytes()),
                DhcpOption::UserClass(b"SONiC-ZTP".to_vec()),
                DhcpOption::Hostname("sonic".into()),
                prl(&[1, 28, 2, 3, 15, 6, 119, 12, 26, 121, 42, 7, 67, 239, 66, 224, 225, 226]),
            ],
            // `cumulus-linux  x86_64` (two spaces, as the 5.x doc prints it), host name.
            Platform::Cumulus => vec![
                DhcpOption::ClassIdentifier(b"cumulus-linux  x86_64".to_vec()),
                DhcpOption::Hostname("cumulus".into()),
                prl(&[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42, 239]),
            ],
        }
    }
}

fn evo_user_class(version: &str) -> String {
    if version.ends_with("-EVO") { version.to_string() } else { format!("{version}-EVO") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(p: Platform) -> Device {
        Device {
            platform: p,
            mac: [0x52, 0x54, 0, 1, 2, 3],
            serial: "SN1".into(),
            model: default_model(p).into(),
            version: default_version(p).into(),
        }
    }

    #[test]
    fn each_nos_is_recognised_by_the_runtime_classes() {
        for p in Platform::ALL {
            let d = dev(p);
            let mut m = dhcproto::v4::Message::default();
            for o in d.dhcp_options() {
                m.opts_mut().insert(o);
            }
            assert_eq!(crate::dhcp::classify::platform(&m), Some(p), "{p}");
        }
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(parse_mac("52:54:00:AB:cd:01").unwrap(), [0x52, 0x54, 0, 0xab, 0xcd, 1]);
        assert!(parse_mac("52:54:00:ab:cd").is_err());
        assert!(parse_mac("52:54:00:ab:cd:zz").is_err());
        assert_eq!(mac_text(&[0x52, 0x54, 0, 0xab, 0xcd, 1]), "52:54:00:ab:cd:01");
    }
}
