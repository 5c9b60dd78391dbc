//! DHCP on the wire: a strict decoder for requests and the encoder for replies.
//!
//! dhcproto stops parsing options silently at the first one it cannot decode, and a few
//! of its decoders `debug_assert!` or subtract on the option length. So the option area
//! is walked here first (RFC 2132 §2: code, length, data; Pad and End alone), lengths
//! that dhcproto would trip on are refused, and a message whose decoded option count
//! differs from the count on the wire is refused too: a request is either understood
//! completely or dropped, never half-read.

use dhcproto::{Decodable, Decoder, Encodable, Encoder, v4};

/// The server port (RFC 2131 §4.1): requests arrive here and relay agents listen here.
pub const SERVER_PORT: u16 = 67;
/// The client port (RFC 2131 §4.1).
pub const CLIENT_PORT: u16 = 68;

/// The BOOTP header up to the options field (RFC 2131 §2, figure 1).
const FIXED_LEN: usize = 236;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// RFC 1542 §2.1: some relay agents and clients drop BOOTP messages under 300 octets.
const MIN_REPLY_LEN: usize = 300;

/// Why a datagram is not a request we answer. Logged at debug, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Decode a BOOTREQUEST, refusing anything truncated, mis-framed or partly decodable.
pub fn decode(buf: &[u8]) -> Result<v4::Message, Malformed> {
    if buf.len() < FIXED_LEN + MAGIC.len() {
        return Err(Malformed("shorter than a BOOTP header"));
    }
    if buf[0] != 1 {
        return Err(Malformed("op is not BOOTREQUEST"));
    }
    if buf[2] > 16 {
        return Err(Malformed("hlen over 16"));
    }
    if buf[FIXED_LEN..FIXED_LEN + 4] != MAGIC {
        return Err(Malformed("no DHCP magic cookie"));
    }
    let distinct = walk_options(&buf[FIXED_LEN + 4..])?;
    let msg = v4::Message::decode(&mut Decoder::new(buf)).map_err(|_| Malformed("undecodable header"))?;
    if msg.opts().len() != distinct {
        return Err(Malformed("an option has an invalid value"));
    }
    Ok(msg)
}

/// Check the option area's framing and count the distinct option codes in it.
fn walk_options(opts: &[u8]) -> Result<usize, Malformed> {
    let mut seen = [0u64; 4];
    let mut i = 0;
    while i < opts.len() {
        let code = opts[i];
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let len = *opts.get(i + 1).ok_or(Malformed("option cut after its code"))? as usize;
                let data = opts.get(i + 2..i + 2 + len).ok_or(Malformed("option runs past the packet"))?;
                check_len(code, data)?;
                seen[usize::from(code / 64)] |= 1 << (code % 64);
                i += 2 + len;
            }
        }
    }
    Ok(seen.iter().map(|w| w.count_ones() as usize).sum())
}

/// Lengths dhcproto would panic on in a debug build (or wrap in release), and the relay
/// agent sub-options, which it would otherwise drop silently when echoing them.
fn check_len(code: u8, data: &[u8]) -> Result<(), Malformed> {
    let ok = match code {
        80 => data.is_empty(),
        81 => data.len() >= 3,
        94 => data.len() == 3,
        151 => !data.is_empty(),
        152..=155 => data.len() == 4,
        82 => relay_suboptions_ok(data),
        _ => true,
    };
    if ok { Ok(()) } else { Err(Malformed("option with an impossible length")) }
}

/// RFC 3046 §2.0: sub-options are code, length, data, and must fill the option exactly.
fn relay_suboptions_ok(mut d: &[u8]) -> bool {
    while let [code, len, rest @ ..] = d {
        let len = usize::from(*len);
        if rest.len() < len {
            return false;
        }
        // dhcproto reads these at a fixed size whatever the length says.
        let fixed = match code {
            4 | 5 | 11 => Some(4),
            10 => Some(1),
            _ => None,
        };
        if fixed.is_some_and(|f| f != len) {
            return false;
        }
        d = &rest[len..];
    }
    d.is_empty()
}

/// Encode a reply into `buf` (cleared first), padded to the BOOTP minimum.
pub fn encode(msg: &v4::Message, buf: &mut Vec<u8>) -> Result<(), dhcproto::error::EncodeError> {
    buf.clear();
    msg.encode(&mut Encoder::new(buf))?;
    if buf.len() < MIN_REPLY_LEN {
        buf.resize(MIN_REPLY_LEN, 0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(opts: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; FIXED_LEN];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(opts);
        b
    }

    #[test]
    fn accepts_a_plain_discover() {
        let m = decode(&request(&[53, 1, 1, 61, 3, 1, 2, 3, 255])).unwrap();
        assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Discover));
    }

    #[test]
    fn refuses_broken_framing() {
        assert!(decode(&request(&[53, 1, 1])[..200]).is_err(), "truncated header");
        assert!(decode(&request(&[53, 1, 1, 12, 9, b'a'])).is_err(), "option past the end");
        assert!(decode(&request(&[53, 1, 1, 12])).is_err(), "length missing");
        let mut reply = request(&[53, 1, 2, 255]);
        reply[0] = 2;
        assert!(decode(&reply).is_err(), "a BOOTREPLY");
        let mut cookie = request(&[53, 1, 1, 255]);
        cookie[FIXED_LEN] = 0;
        assert!(decode(&cookie).is_err(), "no cookie");
        let mut hlen = request(&[53, 1, 1, 255]);
        hlen[2] = 17;
        assert!(decode(&hlen).is_err(), "hlen 17");
    }

    #[test]
    fn refuses_values_dhcproto_cannot_read_or_would_panic_on() {
        assert!(decode(&request(&[53, 1, 1, 81, 1, 0, 255])).is_err(), "FQDN too short");
        assert!(decode(&request(&[53, 1, 1, 94, 2, 1, 2, 255])).is_err());
        assert!(decode(&request(&[53, 1, 1, 151, 0, 255])).is_err());
        assert!(decode(&request(&[53, 1, 1, 12, 2, 0xff, 0xfe, 255])).is_err(), "host name not UTF-8");
        assert!(decode(&request(&[53, 1, 1, 54, 3, 1, 2, 3, 255])).is_err(), "server id of 3 bytes");
        assert!(decode(&request(&[53, 1, 1, 82, 3, 1, 5, 0, 255])).is_err(), "sub-option overruns");
        assert!(decode(&request(&[53, 1, 1, 82, 4, 5, 2, 0, 0, 255])).is_err(), "link selection of 2");
    }

    #[test]
    fn encodes_to_at_least_300_bytes() {
        let mut m = v4::Message::default();
        m.set_opcode(v4::Opcode::BootReply);
        let mut buf = Vec::new();
        encode(&m, &mut buf).unwrap();
        assert_eq!(buf.len(), MIN_REPLY_LEN);
    }
}
