//! The six NOS platforms and the facts about each that every renderer shares.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    Junos,
    JunosEvo,
    Eos,
    Nxos,
    Sonic,
    Cumulus,
}

/// How a platform's NOS learns where its bootstrap script is (reference/nos-dhcp.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootOption {
    /// Option 43 sub-option 1 (config-file-name), fetched by TFTP from option 66.
    JuniperConfigFile,
    /// Option 67 (bootfile-name), fetched by TFTP from option 66.
    BootfileName,
    /// Option 239, a full URL (SONiC and Cumulus provisioning URL).
    ProvisionUrl,
}

impl Platform {
    pub const ALL: [Platform; 6] = [
        Platform::Junos,
        Platform::JunosEvo,
        Platform::Eos,
        Platform::Nxos,
        Platform::Sonic,
        Platform::Cumulus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Platform::Junos => "junos",
            Platform::JunosEvo => "junos-evo",
            Platform::Eos => "eos",
            Platform::Nxos => "nxos",
            Platform::Sonic => "sonic",
            Platform::Cumulus => "cumulus",
        }
    }

    pub fn from_name(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Script file extension: Junos EVO 23.2+ has no Python 2 and NX-OS POAP runs Python,
    /// so those two get Python 3 scripts; the rest get shell.
    pub fn script_ext(self) -> &'static str {
        match self {
            Platform::JunosEvo | Platform::Nxos => "py",
            _ => "sh",
        }
    }

    /// The shared bootstrap script of this platform, relative to the TFTP root.
    pub fn script_path(self) -> String {
        format!("ztp-{}.{}", self.name(), self.script_ext())
    }

    /// The bootstrap script of one device of this platform, relative to the TFTP root.
    pub fn device_script_path(self, device: &str) -> String {
        format!("devices/{device}.{}", self.script_ext())
    }

    pub fn boot_option(self) -> BootOption {
        match self {
            Platform::Junos | Platform::JunosEvo => BootOption::JuniperConfigFile,
            Platform::Eos | Platform::Nxos => BootOption::BootfileName,
            Platform::Sonic | Platform::Cumulus => BootOption::ProvisionUrl,
        }
    }

    /// The DHCP class name used in dhcpd.conf and kea-dhcp4.json (Apstra's names).
    pub fn dhcp_class(self) -> &'static str {
        match self {
            Platform::Junos => "juniper",
            Platform::JunosEvo => "juniper-evo",
            Platform::Eos => "arista",
            Platform::Nxos => "cisco",
            Platform::Sonic => "sonic",
            Platform::Cumulus => "cumulus",
        }
    }

    /// Whether the NOS puts its serial number in its DHCP request, so that a serial alone
    /// can pin a reserved address: Junos and EOS append it to option 60, NX-OS and SONiC
    /// send it in option 61. Cumulus sends no serial (nos-dhcp.md).
    pub fn serial_in_dhcp(self) -> bool {
        !matches!(self, Platform::Cumulus)
    }

    /// The prefix of ztp.json version/image keys (`junos-versions`, `eos-image`, ...).
    pub fn ztp_json_prefix(self) -> &'static str {
        self.name()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
