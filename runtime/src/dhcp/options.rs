//! The configuration options of an OFFER or ACK: the subnet's, the device's and the
//! platform's, chosen the way dhcpd chooses them for the generated dhcpd.conf.
//!
//! Scopes (dhcpd `execute_statements_in_scope` order): global < group (option 66) <
//! subnet < platform class < device class or host. The manifest already merges global
//! into subnet options; a device's boot option replaces its platform's only when both
//! use the same option code, exactly as two dhcpd scopes setting different options both
//! apply.
//!
//! Which options go out follows dhcpd's `cons_options`: with a parameter request list
//! (option 55), only the options listed there, plus the subnet mask in answers to
//! DISCOVER and REQUEST (clients rely on it); without one, everything configured.
//! dhcproto encodes options in code order rather than the list's order (RFC 2132 §9.8
//! only asks a server to try); clients look options up by code.

use dhcproto::v4::{DhcpOption, DhcpOptions, OptionCode, UnknownOption};
use ztpc::platform::Platform;

use crate::dhcp::config::{Boot, Config, Subnet, code, platform_index};

/// The option codes a client asked for (option 55), or all of them.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    bits: [u64; 4],
    listed: bool,
}

impl Wanted {
    pub fn of(opts: &DhcpOptions) -> Wanted {
        match opts.get(OptionCode::ParameterRequestList) {
            Some(DhcpOption::ParameterRequestList(list)) if !list.is_empty() => {
                let mut bits = [0u64; 4];
                for c in list {
                    let c = u8::from(*c);
                    bits[usize::from(c / 64)] |= 1 << (c % 64);
                }
                Wanted { bits, listed: true }
            }
            _ => Wanted { bits: [u64::MAX; 4], listed: false },
        }
    }

    pub fn has(&self, code: u8) -> bool {
        self.bits[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    /// Whether the client sent a parameter request list at all.
    pub fn listed(&self) -> bool {
        self.listed
    }
}

/// Who the answer is for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'c> {
    pub subnet: &'c Subnet,
    pub device: Option<usize>,
    pub platform: Option<Platform>,
}

/// Insert the configuration options (not the lease and protocol ones) into `out`.
/// `mask_always`: the answer is to a DISCOVER or REQUEST (see the module comment).
pub fn fill(out: &mut DhcpOptions, cfg: &Config, t: Target<'_>, wanted: &Wanted, mask_always: bool) {
    let s = t.subnet;
    if mask_always || wanted.has(1) {
        out.insert(DhcpOption::SubnetMask(s.mask));
    }
    if let Some(r) = s.router.filter(|_| wanted.has(3)) {
        out.insert(DhcpOption::Router(vec![r]));
    }
    if !s.dns.is_empty() && wanted.has(6) {
        out.insert(DhcpOption::DomainNameServer(s.dns.clone()));
    }
    if let Some(d) = s.domain_name.as_ref().filter(|_| wanted.has(15)) {
        out.insert(DhcpOption::DomainName(d.clone()));
    }
    if let Some(d) = s.domain_search.as_ref().filter(|d| !d.is_empty() && wanted.has(code::DOMAIN_SEARCH)) {
        out.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::DomainSearch, d.clone())));
    }
    if !s.ntp.is_empty() && wanted.has(42) {
        out.insert(DhcpOption::NtpServers(s.ntp.clone()));
    }
    if wanted.has(code::TFTP_SERVER_NAME) {
        out.insert(DhcpOption::TFTPServerName(cfg.tftp_server_name.clone()));
    }
    if let Some(p) = t.platform
        && let Some(b) = &cfg.platform_boot[platform_index(p)]
    {
        boot(out, b, wanted);
    }
    if let Some(i) = t.device {
        if let Some(d) = cfg.devices.get(i).filter(|_| wanted.has(12)) {
            out.insert(DhcpOption::Hostname(d.name.clone()));
        }
        if let Some(b) = cfg.device_boot.get(i) {
            boot(out, b, wanted);
        }
    }
}

fn boot(out: &mut DhcpOptions, b: &Boot, wanted: &Wanted) {
    if !wanted.has(b.code) {
        return;
    }
    out.insert(match b.code {
        code::VENDOR_SPECIFIC => DhcpOption::VendorExtensions(b.data.clone()),
        code::BOOTFILE_NAME => DhcpOption::BootfileName(b.data.clone()),
        c => DhcpOption::Unknown(UnknownOption::new(OptionCode::from(c), b.data.clone())),
    });
}
