//! TFTP packets as the server reads and writes them (RFC 1350, options RFC 2347-2349,
//! windowsize RFC 7440): requests and ACKs in, DATA, OACK and ERROR out. Pure functions,
//! no I/O.

/// Option values a client asked for. Out-of-range values are dropped while parsing, as
/// RFC 2347 lets a server ignore an option it does not accept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opts {
    pub blksize: Option<u16>,
    pub timeout: Option<u8>,
    pub tsize: Option<u64>,
    pub windowsize: Option<u16>,
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub write: bool,
    pub filename: String,
    pub opts: Opts,
}

/// What a transfer socket receives from its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Ack(u16),
    /// The client gave up (an ERROR packet); its code.
    Error(u16),
    Other,
}

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// Error codes (RFC 1350 §5) the server sends.
pub const ERR_NOT_DEFINED: u16 = 0;
pub const ERR_NOT_FOUND: u16 = 1;
pub const ERR_ACCESS: u16 = 2;

fn nul_str(input: &[u8]) -> Option<(&str, &[u8])> {
    let pos = input.iter().position(|&c| c == 0)?;
    let s = std::str::from_utf8(&input[..pos]).ok()?;
    Some((s, &input[pos + 1..]))
}

/// Parse an RRQ or WRQ. Anything else, a name that is not UTF-8, or a mode other than
/// netascii, octet or mail gives `None`: such packets are dropped unanswered.
pub fn parse_request(p: &[u8]) -> Option<Request> {
    let op = u16::from_be_bytes([*p.first()?, *p.get(1)?]);
    if op != OP_RRQ && op != OP_WRQ {
        return None;
    }
    let (filename, rest) = nul_str(&p[2..])?;
    let (mode, mut rest) = nul_str(rest)?;
    if !["netascii", "octet", "mail"].iter().any(|m| mode.eq_ignore_ascii_case(m)) {
        return None;
    }
    let mut opts = Opts::default();
    while !rest.is_empty() {
        let (name, r) = nul_str(rest)?;
        let (val, r) = nul_str(r)?;
        rest = r;
        if name.eq_ignore_ascii_case("blksize") {
            opts.blksize = val.parse().ok().filter(|v| (8..=65464).contains(v));
        } else if name.eq_ignore_ascii_case("timeout") {
            opts.timeout = val.parse().ok().filter(|&v| v >= 1);
        } else if name.eq_ignore_ascii_case("tsize") {
            opts.tsize = val.parse().ok();
        } else if name.eq_ignore_ascii_case("windowsize") {
            opts.windowsize = val.parse().ok().filter(|&v| v >= 1);
        }
    }
    Some(Request { write: op == OP_WRQ, filename: filename.to_string(), opts })
}

/// Parse what a client sends during a transfer.
pub fn parse_reply(p: &[u8]) -> Reply {
    match p {
        [0, 4, a, b] => Reply::Ack(u16::from_be_bytes([*a, *b])),
        [0, 5, a, b, ..] => Reply::Error(u16::from_be_bytes([*a, *b])),
        _ => Reply::Other,
    }
}

/// An OACK naming the granted options (only those the client asked for).
pub fn oack(o: &Opts) -> Vec<u8> {
    let mut p = vec![0, OP_OACK as u8];
    let mut put = |k: &str, v: String| {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    };
    if let Some(v) = o.blksize {
        put("blksize", v.to_string());
    }
    if let Some(v) = o.timeout {
        put("timeout", v.to_string());
    }
    if let Some(v) = o.tsize {
        put("tsize", v.to_string());
    }
    if let Some(v) = o.windowsize {
        put("windowsize", v.to_string());
    }
    p
}

/// An ERROR packet.
pub fn error(code: u16, msg: &str) -> Vec<u8> {
    let mut p = vec![0, OP_ERROR as u8];
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(msg.as_bytes());
    p.push(0);
    p
}

/// Write a DATA header for `block` into the first four bytes of `buf`.
pub fn data_head(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_options() {
        let p =
            b"\0\x01dir/f.bin\0OCTET\0BlkSize\x001468\0tsize\x000\0windowsize\x0016\0timeout\x002\0x\0y\0";
        let r = parse_request(p).unwrap();
        assert!(!r.write);
        assert_eq!(r.filename, "dir/f.bin");
        assert_eq!(
            r.opts,
            Opts { blksize: Some(1468), timeout: Some(2), tsize: Some(0), windowsize: Some(16) }
        );
        let w = parse_request(b"\0\x02a\0netascii\0").unwrap();
        assert!(w.write && w.opts == Opts::default());
    }

    #[test]
    fn bad_requests_are_dropped_or_options_ignored() {
        assert_eq!(parse_request(b"\0\x01a\0binary\0"), None, "unknown mode");
        assert_eq!(parse_request(b"\0\x01a\0octet"), None, "mode not terminated");
        assert_eq!(parse_request(b"\0\x01\xff\0octet\0"), None, "name not UTF-8");
        assert_eq!(parse_request(b"\0\x03a\0octet\0"), None, "DATA is not a request");
        assert_eq!(parse_request(b"\0"), None);
        assert_eq!(parse_request(b"\0\x01a\0octet\0blksize\0"), None, "option without a value");
        let r = parse_request(b"\0\x01a\0octet\0blksize\x007\0windowsize\x000\0timeout\x00256\0").unwrap();
        assert_eq!(r.opts, Opts::default(), "out-of-range values are ignored");
        let r = parse_request(b"\0\x01a\0octet\0blksize\x0065465\0").unwrap();
        assert_eq!(r.opts.blksize, None);
    }

    #[test]
    fn replies_and_packets() {
        assert_eq!(parse_reply(&[0, 4, 1, 2]), Reply::Ack(258));
        assert_eq!(parse_reply(&[0, 4, 1]), Reply::Other);
        assert_eq!(parse_reply(&[0, 4, 1, 2, 3]), Reply::Other);
        assert_eq!(parse_reply(&[0, 5, 0, 8, b'x', 0]), Reply::Error(8));
        let o = Opts { blksize: Some(1468), timeout: None, tsize: Some(42), windowsize: Some(16) };
        assert_eq!(oack(&o), b"\0\x06blksize\x001468\0tsize\x0042\0windowsize\x0016\0".to_vec());
        assert_eq!(error(ERR_ACCESS, "no"), b"\0\x05\0\x02no\0".to_vec());
        let mut b = [9u8; 6];
        data_head(&mut b, 0x0102);
        assert_eq!(b, [0, 3, 1, 2, 9, 9]);
    }
}
