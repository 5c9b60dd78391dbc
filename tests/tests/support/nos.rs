//! What each NOS's DHCP client puts in its DISCOVER and REQUEST, and which answer options
//! it reads, from /work/shared/reference/nos-dhcp.md ("seen" facts where there are
//! some; what was not found there is marked inferred below).

use dhcproto::v4::{DhcpOption, OptionCode};
use ztpc::platform::Platform;

/// The identifying part of one device's requests.
#[derive(Debug, Clone)]
pub struct Identity {
    pub chaddr: [u8; 6],
    /// Options 60, 61, 77, 12 and 55, as the NOS sends them.
    pub options: Vec<DhcpOption>,
    /// Junos sets the BOOTP broadcast flag (seen in an MX10003 capture).
    pub broadcast: bool,
}

/// The parameter request list (option 55) of each NOS.
pub fn prl(p: Platform) -> &'static [u8] {
    match p {
        // Seen: an MX10003 DHCPREQUEST. EVO: assumed the same (inferred).
        Platform::Junos | Platform::JunosEvo => &[3, 51, 1, 15, 6, 66, 67, 120, 44, 43, 150, 12, 7, 42],
        // EOS logs that it asks for 67 and 143; the rest is the usual set (inferred).
        Platform::Eos => &[1, 3, 6, 12, 15, 42, 66, 67, 143],
        // POAP asks for 66/150 and 67 (seen); the rest is inferred.
        Platform::Nxos => &[1, 3, 6, 12, 15, 42, 66, 67, 150],
        // Seen without ZTP; the ZTP profile adds 67, 239 and 66 before 224 (inferred).
        Platform::Sonic => &[1, 28, 2, 3, 15, 6, 119, 12, 26, 121, 42, 7, 67, 239, 66, 224, 225, 226],
        // Seen: the Cumulus KB's request list (239 is cumulus-provision-url).
        Platform::Cumulus => &[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42, 239],
    }
}

/// The options a device of `p` reads from an OFFER or ACK: what it asked for in option
/// 55, plus the subnet mask, lease time and server identifier every client uses.
pub fn reads(p: Platform) -> Vec<u8> {
    let mut v: Vec<u8> = prl(p).iter().copied().chain([1, 51, 54]).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The model a device of `p` reports when the fabric names none.
fn default_model(p: Platform) -> &'static str {
    match p {
        Platform::Junos => "QFX5120-48Y",
        Platform::JunosEvo => "QFX5220-32CD",
        Platform::Eos => "DCS-7050SX3-48YC8",
        Platform::Nxos => "N9K-C93180YC-FX3",
        Platform::Sonic => "AS7326-56X",
        Platform::Cumulus => "SN2410",
    }
}

/// The requests of a device of platform `p` with hardware address `mac`, its serial and
/// model (from the fabric, or made up for an unknown device).
pub fn identity(p: Platform, mac: [u8; 6], serial: &str, model: Option<&str>) -> Identity {
    let model = model.unwrap_or(default_model(p));
    let vendor = |v: String| DhcpOption::ClassIdentifier(v.into_bytes());
    let mut options = match p {
        // `Juniper-<model in lower case>-<serial>`, no 61, no 77 (seen).
        Platform::Junos => vec![vendor(format!("Juniper-{}-{serial}", model.to_lowercase()))],
        // Option 60 starts `Juniper` (seen); option 77 ends `-EVO`, the version string
        // (inferred). Sent raw: dhcpd's `suffix` and the runtime look at the raw bytes.
        Platform::JunosEvo => vec![
            vendor(format!("Juniper-{}-{serial}", model.to_lowercase())),
            DhcpOption::UserClass(b"23.4R2-S3.9-EVO".to_vec()),
        ],
        // `Arista;<model>;<hw-rev>;<serial>` (seen); 61 = the system MAC, 6 raw bytes
        // (inferred from CloudVision's reservations).
        Platform::Eos => {
            vec![vendor(format!("Arista;{model};11.00;{serial}")), DhcpOption::ClientIdentifier(mac.to_vec())]
        }
        // 61 = `\0` + serial and 77 `Cisco-POAP` (seen); 60 starts `Cisco` (inferred).
        Platform::Nxos => {
            let mut id = vec![0u8];
            id.extend_from_slice(serial.as_bytes());
            vec![
                vendor(format!("Cisco {model}")),
                DhcpOption::ClientIdentifier(id),
                DhcpOption::UserClass(b"Cisco-POAP".to_vec()),
            ]
        }
        // 61 `SONiC##<product>##<serial>` raw, 77 `SONiC-ZTP`, 12 `sonic`, no 60 (seen).
        Platform::Sonic => vec![
            DhcpOption::ClientIdentifier(format!("SONiC##{model}##{serial}").into_bytes()),
            DhcpOption::UserClass(b"SONiC-ZTP".to_vec()),
            DhcpOption::Hostname("sonic".into()),
        ],
        // `cumulus-linux  x86_64` with two spaces, host name `cumulus` (seen).
        Platform::Cumulus => {
            vec![vendor("cumulus-linux  x86_64".into()), DhcpOption::Hostname("cumulus".into())]
        }
    };
    options.push(DhcpOption::ParameterRequestList(prl(p).iter().map(|c| OptionCode::from(*c)).collect()));
    Identity { chaddr: mac, options, broadcast: p == Platform::Junos }
}
