//! Parsing of the scalar value kinds a fabric uses: IPv4, CIDR, MAC, hostname, sha256.
//!
//! Each parser is pure and returns a short reason on failure; the caller attaches the span.

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

/// An IPv4 network in CIDR form with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn mask(self) -> Ipv4Addr {
        Ipv4Addr::from(mask_bits(self.prefix))
    }
    pub fn first(self) -> u32 {
        u32::from(self.network)
    }
    pub fn last(self) -> u32 {
        self.first() | !mask_bits(self.prefix)
    }
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }
    pub fn contains(self, a: Ipv4Addr) -> bool {
        (u32::from(a) & mask_bits(self.prefix)) == self.first()
    }
    pub fn overlaps(self, other: Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn mask_bits(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

/// Strict dotted-quad IPv4 (no leading zeros, which some tools read as octal).
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse::<Ipv4Addr>().map_err(|_| format!("`{s}` is not an IPv4 address (expected a.b.c.d)"))
}

pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Err(format!("`{s}` is not in CIDR form (expected a.b.c.d/len)"));
    };
    let network = parse_ipv4(addr)?;
    let prefix: u8 = len
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`/{len}` is not a prefix length between 0 and 32"))?;
    let masked = Ipv4Addr::from(u32::from(network) & mask_bits(prefix));
    if masked != network {
        return Err(format!("`{s}` has host bits set; the network is `{masked}/{prefix}`"));
    }
    Ok(Cidr { network, prefix })
}

/// A 48-bit MAC address, shown canonically as lower-case colon-separated hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Accepts the usual notations: `52:54:00:6f:ff:4f`, `52-54-00-6F-FF-4F`,
/// `5254.006f.ff4f` (Cisco) and bare `5254006fff4f`, in any case.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let bad = || {
        format!(
            "`{s}` is not a MAC address (expected 52:54:00:6f:ff:4f, 52-54-00-6f-ff-4f, 5254.006f.ff4f or 5254006fff4f)"
        )
    };
    // The shape decides the notation: separator, group count and group width must all
    // agree, so mixed forms like `52:54-00:...` are refused. No allocation: this runs
    // once per device.
    let b = s.as_bytes();
    let (sep, group) = match b.len() {
        17 if b[2] == b':' => (Some(b':'), 2),
        17 if b[2] == b'-' => (Some(b'-'), 2),
        14 if b[4] == b'.' => (Some(b'.'), 4),
        12 => (None, 12),
        _ => return Err(bad()),
    };
    let mut out = [0u8; 6];
    let mut digits = 0usize;
    let mut nibble = |c: u8| -> Option<()> {
        let v = (c as char).to_digit(16)? as u8;
        out[digits / 2] = (out[digits / 2] << 4) | v;
        digits += 1;
        Some(())
    };
    for (i, &c) in b.iter().enumerate() {
        let is_sep_pos = sep.is_some() && (i + 1) % (group + 1) == 0;
        if is_sep_pos {
            if Some(c) != sep {
                return Err(bad());
            }
        } else if nibble(c).is_none() {
            return Err(bad());
        }
    }
    if digits != 12 {
        return Err(bad());
    }
    Ok(Mac(out))
}

/// RFC 1123 host name: labels of letters, digits and hyphens, 1-63 characters each, not
/// starting or ending with a hyphen, 253 characters in all.
pub fn check_hostname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("`{s}` is not a valid host name (1 to 253 characters)"));
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{s}` is not a valid host name (RFC 1123: letters, digits and inner hyphens, labels of 1 to 63 characters)"
            ));
        }
    }
    Ok(())
}

/// A sha256 digest in hex, normalised to lower case.
pub fn parse_sha256(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not a sha256 digest (64 hexadecimal digits)"))
    }
}

/// Whether a string names a remote resource rather than a local file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_notations_agree() {
        let want = parse_mac("52:54:00:6f:ff:4f").unwrap();
        for s in ["52-54-00-6F-FF-4F", "5254.006f.ff4f", "5254006FFF4F", "52:54:00:6F:ff:4f"] {
            assert_eq!(parse_mac(s).unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "52:54:00:6f:ff:4f");
    }

    #[test]
    fn mac_rejects_bad_shapes() {
        for s in ["52:54:00:6f:ff", "52:54:00:6f:ff:4g", "5254.006f.ff4", "52:54-00:6f:ff:4f", ""] {
            assert!(parse_mac(s).is_err(), "{s}");
        }
    }

    #[test]
    fn cidr_rules() {
        let c = parse_cidr("10.1.101.0/24").unwrap();
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 101, 255));
        assert_eq!(c.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 1, 101, 7)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 102, 7)));
        assert!(parse_cidr("10.1.101.1/24").unwrap_err().contains("host bits"));
        assert!(parse_cidr("10.1.101.0/33").is_err());
        assert!(parse_cidr("10.1.101.0").is_err());
        assert!(parse_cidr("10.0.0.0/8").unwrap().overlaps(c));
    }

    #[test]
    fn hostnames() {
        for ok in ["leaf1", "spine-01", "a.b.c", "x"] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["leaf_1", "-leaf", "leaf-", "", "a..b", &"x".repeat(64)] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_normalises() {
        let up = "2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE";
        assert_eq!(parse_sha256(up).unwrap(), up.to_ascii_lowercase());
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
    }
}
