//! What one generation answers over DHCP, prepared once per generation: device indexes
//! (MAC, classed identities, reserved addresses) and option values already in wire form,
//! so that answering a packet is lookups and copies, not parsing and formatting.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ztpc::platform::{BootOption, Platform};
use ztpc::render::manifest::{DeviceInfo, IdentityKind, Manifest};
use ztpc::values::Cidr;

/// Option codes the ZTP answers use (RFC 2132, RFC 3397, and the NOS conventions in
/// reference/nos-dhcp.md).
pub mod code {
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const TFTP_SERVER_NAME: u8 = 66;
    pub const BOOTFILE_NAME: u8 = 67;
    pub const DOMAIN_SEARCH: u8 = 119;
    pub const PROVISION_URL: u8 = 239;
}

/// A boot option in wire form: the code and the option's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub code: u8,
    pub data: Vec<u8>,
}

impl Boot {
    /// How dhcpd.conf carries each kind (compiler/src/render/dhcpd.rs `boot`): Junos reads
    /// option 43 with sub-option 1 (config-file-name, `encapsulate JUNIPER`), EOS and
    /// NX-OS option 67, SONiC and Cumulus option 239, all as text.
    pub fn new(kind: BootOption, value: &str) -> Boot {
        match kind {
            BootOption::JuniperConfigFile => {
                // A sub-option holds at most 255 bytes; dhcpd would not send more either.
                let v = &value.as_bytes()[..value.len().min(255)];
                let mut data = Vec::with_capacity(v.len() + 2);
                data.push(1);
                data.push(v.len() as u8);
                data.extend_from_slice(v);
                Boot { code: code::VENDOR_SPECIFIC, data }
            }
            BootOption::BootfileName => Boot { code: code::BOOTFILE_NAME, data: value.as_bytes().to_vec() },
            BootOption::ProvisionUrl => Boot { code: code::PROVISION_URL, data: value.as_bytes().to_vec() },
        }
    }
}

/// One served subnet with its effective options (the subnet's own over the global).
#[derive(Debug, Clone)]
pub struct Subnet {
    pub cidr: Cidr,
    pub mask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    /// Inclusive ranges, as u32 so that scanning is arithmetic.
    pub pools: Vec<(u32, u32)>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    /// Option 119 data: the names in RFC 1035 §3.1 form (RFC 3397 §2).
    pub domain_search: Option<Vec<u8>>,
}

impl Subnet {
    pub fn in_pool(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        self.pools.iter().any(|&(f, l)| f <= a && a <= l)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The generation this was prepared from (its id), for logs.
    pub generation: String,
    /// Option 54: the ZTP server's address from the fabric.
    pub server_id: Ipv4Addr,
    pub lease_time: u32,
    pub max_lease_time: u32,
    /// Option 66 as dhcpd.conf's group sends it: the server address as text.
    pub tftp_server_name: Vec<u8>,
    pub subnets: Vec<Subnet>,
    /// The manifest's device list, shared with the generation.
    pub devices: Arc<Vec<DeviceInfo>>,
    /// Each device's own boot option, same index as `devices`.
    pub device_boot: Vec<Boot>,
    /// The platform classes' boot options, in [`Platform::ALL`] order.
    pub platform_boot: [Option<Boot>; 6],
    by_mac: HashMap<[u8; 6], usize>,
    /// Devices recognised by a class (location or serial), in dhcpd.conf's class order.
    classed: Vec<usize>,
    reserved: HashMap<Ipv4Addr, usize>,
}

pub fn platform_index(p: Platform) -> usize {
    Platform::ALL.iter().position(|q| *q == p).unwrap_or(0)
}

impl Config {
    pub fn new(m: &Manifest, generation: &str) -> Config {
        let mut platform_boot: [Option<Boot>; 6] = Default::default();
        for p in &m.platforms {
            platform_boot[platform_index(p.platform)] = Some(Boot::new(p.boot_option, &p.boot_value));
        }
        let mut by_mac = HashMap::new();
        let mut classed = Vec::new();
        let mut reserved = HashMap::new();
        for (i, d) in m.devices.iter().enumerate() {
            match d.dhcp_identity {
                IdentityKind::Mac => {
                    if let Some(mac) = d.mac {
                        by_mac.entry(mac.0).or_insert(i);
                    }
                }
                IdentityKind::Location | IdentityKind::Serial => classed.push(i),
                IdentityKind::ScriptOnly => {}
            }
            if let Some(a) = d.address {
                reserved.entry(a).or_insert(i);
            }
        }
        let subnets = m
            .dhcp
            .subnets
            .iter()
            .map(|s| Subnet {
                cidr: s.cidr,
                mask: s.cidr.mask(),
                router: s.router,
                pools: s.pools.iter().map(|p| (u32::from(p.first), u32::from(p.last))).collect(),
                dns: s.options.dns.clone().unwrap_or_default(),
                ntp: s.options.ntp.clone().unwrap_or_default(),
                domain_name: s.options.domain_name.clone(),
                domain_search: s.options.domain_search.as_deref().map(encode_names),
            })
            .collect();
        Config {
            generation: generation.to_string(),
            server_id: m.server.address,
            lease_time: m.dhcp.lease_time,
            max_lease_time: m.dhcp.max_lease_time.max(m.dhcp.lease_time),
            tftp_server_name: m.dhcp.tftp_server_name.to_string().into_bytes(),
            subnets,
            device_boot: m
                .devices
                .iter()
                .map(|d| Boot::new(d.platform.boot_option(), &d.boot_value))
                .collect(),
            devices: Arc::clone(&m.devices),
            platform_boot,
            by_mac,
            classed,
            reserved,
        }
    }

    pub fn device_by_mac(&self, mac: &[u8; 6]) -> Option<usize> {
        self.by_mac.get(mac).copied()
    }

    pub fn classed(&self) -> impl Iterator<Item = (usize, &DeviceInfo)> {
        self.classed.iter().filter_map(|&i| self.devices.get(i).map(|d| (i, d)))
    }

    /// The device an address is reserved for, if any.
    pub fn reserved_for(&self, a: Ipv4Addr) -> Option<usize> {
        self.reserved.get(&a).copied()
    }

    /// The subnet that contains `a`.
    pub fn subnet_of(&self, a: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.cidr.contains(a))
    }
}

/// RFC 1035 §3.1 names, uncompressed (compression is optional, RFC 3397 §2). Labels
/// over 63 bytes and names over 255 cannot be encoded and are left out.
pub fn encode_names(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        let n = n.trim_end_matches('.');
        let labels: Vec<&str> = n.split('.').filter(|l| !l.is_empty()).collect();
        let len: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        if labels.iter().any(|l| l.len() > 63) || len > 255 {
            continue;
        }
        for l in labels {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_use_rfc1035_labels() {
        let v = encode_names(&["eng.apple.com".into(), "apple.com.".into()]);
        let want: Vec<u8> =
            [&[3u8][..], b"eng", &[5], b"apple", &[3], b"com", &[0], &[5], b"apple", &[3], b"com", &[0]]
                .concat();
        assert_eq!(v, want);
        assert!(encode_names(&["a".repeat(64)]).is_empty());
    }

    #[test]
    fn junos_boot_is_a_sub_option_one() {
        let b = Boot::new(BootOption::JuniperConfigFile, "ztp-junos.sh");
        assert_eq!(b.code, 43);
        assert_eq!(&b.data[..2], &[1, 12]);
        assert_eq!(&b.data[2..], b"ztp-junos.sh");
    }
}
