//! Syslog message parsing: RFC 5424, RFC 3164 (BSD), and a bare line without a
//! priority (RFC 3164 §4.3.3: take it as user.notice).
//!
//! Written here rather than taken from a crate: the one crate covering both formats
//! (syslog_loose) accepts any input by design and brings a date library, while the
//! receiver needs little (priority, program, text) and a clear refusal of garbage.
//! Timestamps are kept as text: the device log is stamped on receipt, as Apstra's is.

use std::fmt;

/// RFC 5424 §6.1: a receiver should take at least 2048 octets; we keep up to 8 KiB
/// and the status store clips the text further.
pub const MAX_MESSAGE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub facility: u8,
    pub severity: u8,
    pub format: Format,
    pub timestamp: Option<String>,
    pub hostname: Option<String>,
    /// RFC 5424 APP-NAME, or the RFC 3164 TAG.
    pub app: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// The free-form message, control characters replaced by spaces.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// No `<PRI>`: the whole datagram is the text.
    Bare,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

const SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

impl Message {
    pub fn severity_name(&self) -> &'static str {
        SEVERITIES[usize::from(self.severity & 7)]
    }

    /// The line filed in the device log: `err mgd[1234]: commit failed`.
    pub fn log_line(&self) -> String {
        let mut s = String::from(self.severity_name());
        if let Some(app) = &self.app {
            s.push(' ');
            s.push_str(app);
            if let Some(p) = &self.procid {
                s.push('[');
                s.push_str(p);
                s.push(']');
            }
            s.push(':');
        }
        if !self.text.is_empty() {
            s.push(' ');
            s.push_str(&self.text);
        }
        s
    }
}

pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
    let data = &datagram[..datagram.len().min(MAX_MESSAGE)];
    // Senders often end with a newline or NUL; neither is part of the message.
    let data = trim_end(data);
    if data.is_empty() {
        return Err(ParseError("empty message"));
    }
    if data[0] != b'<' {
        return Ok(Message {
            facility: 1,
            severity: 5,
            format: Format::Bare,
            timestamp: None,
            hostname: None,
            app: None,
            procid: None,
            msgid: None,
            text: clean(data),
        });
    }
    let (pri, rest) = priority(data)?;
    let (facility, severity) = (pri / 8, pri % 8);
    if let Some(r) = rest.strip_prefix(b"1 ") {
        rfc5424(facility, severity, r)
    } else {
        Ok(rfc3164(facility, severity, rest))
    }
}

fn trim_end(mut d: &[u8]) -> &[u8] {
    while let [head @ .., b'\n' | b'\r' | b'\0'] = d {
        d = head;
    }
    d
}

/// `<PRI>`: 1 to 3 digits, no leading zero, at most 191 (facility 23, severity 7).
fn priority(d: &[u8]) -> Result<(u8, &[u8]), ParseError> {
    let end = d.iter().take(5).position(|&c| c == b'>').ok_or(ParseError("no `>` closing the priority"))?;
    let digits = &d[1..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError("the priority is not a number"));
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(ParseError("the priority has a leading zero"));
    }
    let v: u16 = digits.iter().fold(0, |a, &c| a * 10 + u16::from(c - b'0'));
    if v > 191 {
        return Err(ParseError("the priority is over 191"));
    }
    Ok((v as u8, &d[end + 1..]))
}

/// One space-separated header field of RFC 5424; `-` is NILVALUE.
fn field<'a>(d: &'a [u8], max: usize, what: &'static str) -> Result<(Option<String>, &'a [u8]), ParseError> {
    let end = d.iter().position(|&c| c == b' ').ok_or(ParseError(what))?;
    let f = &d[..end];
    if f.is_empty() || f.len() > max || !f.iter().all(|c| (33..=126).contains(c)) {
        return Err(ParseError(what));
    }
    let v = (f != b"-").then(|| String::from_utf8_lossy(f).into_owned());
    Ok((v, &d[end + 1..]))
}

fn rfc5424(facility: u8, severity: u8, d: &[u8]) -> Result<Message, ParseError> {
    let (timestamp, d) = field(d, 64, "RFC 5424: bad or missing TIMESTAMP")?;
    let (hostname, d) = field(d, 255, "RFC 5424: bad or missing HOSTNAME")?;
    let (app, d) = field(d, 48, "RFC 5424: bad or missing APP-NAME")?;
    let (procid, d) = field(d, 128, "RFC 5424: bad or missing PROCID")?;
    // MSGID is followed by a space and STRUCTURED-DATA, which may end the message.
    let (msgid, d) = field(d, 32, "RFC 5424: bad or missing MSGID")?;
    let rest = structured_data(d)?;
    let msg = match rest {
        [] => &[][..],
        [b' ', m @ ..] => m.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(m),
        _ => return Err(ParseError("RFC 5424: no space after STRUCTURED-DATA")),
    };
    Ok(Message {
        facility,
        severity,
        format: Format::Rfc5424,
        timestamp,
        hostname,
        app,
        procid,
        msgid,
        text: clean(msg),
    })
}

/// Skip STRUCTURED-DATA (`-` or `[id k="v" ...]...`, with `\"`, `\\` and `\]` escaped
/// in values); returns what follows it.
fn structured_data(d: &[u8]) -> Result<&[u8], ParseError> {
    if let Some(r) = d.strip_prefix(b"-") {
        return Ok(r);
    }
    let bad = ParseError("RFC 5424: malformed STRUCTURED-DATA");
    if d.first() != Some(&b'[') {
        return Err(bad);
    }
    let mut i = 0;
    while d.get(i) == Some(&b'[') {
        i += 1;
        let mut quoted = false;
        loop {
            match d.get(i) {
                None => return Err(bad),
                Some(b'\\') if quoted => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1;
                }
                Some(b']') if !quoted => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    Ok(d.get(i..).unwrap_or(&[]))
}

/// RFC 3164: `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: text`. Every part is optional in
/// practice (senders differ), so this never fails: what is not recognised is text.
fn rfc3164(facility: u8, severity: u8, d: &[u8]) -> Message {
    let mut m = Message {
        facility,
        severity,
        format: Format::Rfc3164,
        timestamp: None,
        hostname: None,
        app: None,
        procid: None,
        msgid: None,
        text: String::new(),
    };
    let mut rest = d;
    if let Some(ts) = bsd_timestamp(d) {
        m.timestamp = Some(String::from_utf8_lossy(ts).into_owned());
        rest = &d[ts.len()..];
        rest = rest.strip_prefix(b" ").unwrap_or(rest);
        // A hostname follows the timestamp, unless the next word is already the tag.
        if let Some(sp) = rest.iter().position(|&c| c == b' ')
            && sp > 0
            && !rest[..sp].contains(&b':')
            && !rest[..sp].contains(&b'[')
        {
            m.hostname = Some(String::from_utf8_lossy(&rest[..sp]).into_owned());
            rest = &rest[sp + 1..];
        }
    }
    // TAG: up to 48 printable characters (RFC 3164 says 32; real senders exceed it),
    // then `[pid]` and/or `:`.
    let tag_end = rest.iter().take(49).position(|&c| c == b'[' || c == b':' || c == b' ');
    if let Some(end) = tag_end
        && end > 0
        && rest[..end].iter().all(|c| (33..=126).contains(c))
    {
        let (tag, mut after) = (&rest[..end], &rest[end..]);
        let mut pid = None;
        if after.first() == Some(&b'[')
            && let Some(close) = after.iter().take(130).position(|&c| c == b']')
        {
            pid = Some(String::from_utf8_lossy(&after[1..close]).into_owned());
            after = &after[close + 1..];
        }
        if let Some(text) = after.strip_prefix(b":") {
            m.app = Some(String::from_utf8_lossy(tag).into_owned());
            m.procid = pid;
            rest = text.strip_prefix(b" ").unwrap_or(text);
        }
    }
    m.text = clean(rest);
    m
}

/// `Mmm dd hh:mm:ss` (the day space-padded), as the first 15 bytes.
fn bsd_timestamp(d: &[u8]) -> Option<&[u8]> {
    const MONTHS: [&[u8]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let t = d.get(..15)?;
    let digit = |i: usize| t[i].is_ascii_digit();
    let ok = MONTHS.contains(&&t[..3])
        && t[3] == b' '
        && (t[4] == b' ' || digit(4))
        && digit(5)
        && t[6] == b' '
        && digit(7)
        && digit(8)
        && t[9] == b':'
        && digit(10)
        && digit(11)
        && t[12] == b':'
        && digit(13)
        && digit(14);
    ok.then_some(t)
}

/// Lossy UTF-8 with control characters (a stray newline, an escape sequence) as spaces,
/// so one message stays one log line.
fn clean(d: &[u8]) -> String {
    String::from_utf8_lossy(d).chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_examples() {
        // RFC 5424 §6.5, example 1 (with its BOM).
        let m = parse(
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
        )
        .unwrap();
        assert_eq!((m.facility, m.severity, m.format), (4, 2, Format::Rfc5424));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(
            (m.app.as_deref(), m.procid.as_deref(), m.msgid.as_deref()),
            (Some("su"), None, Some("ID47"))
        );
        assert_eq!(m.text, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.log_line(), "crit su: 'su root' failed for lonvick on /dev/pts/8");
        // Example 3: structured data with an escaped quote and bracket, then a message.
        let m = parse(
            br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App\"li\]cation" eventID="1011"][examplePriority@32473 class="high"] An application event"#,
        )
        .unwrap();
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.text, "An application event");
        // Example 4: structured data and no message at all.
        let m = parse(br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"]"#)
            .unwrap();
        assert_eq!(m.text, "");
        // All NILVALUEs, a process id.
        let m = parse(b"<14>1 - - mgd 4242 - - commit complete\n").unwrap();
        assert_eq!((&m.timestamp, &m.hostname), (&None, &None));
        assert_eq!(m.log_line(), "info mgd[4242]: commit complete");
    }

    #[test]
    fn rfc3164_variants() {
        // RFC 3164 §5.4, example 1.
        let m =
            parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8").unwrap();
        assert_eq!((m.facility, m.severity, m.format), (4, 2, Format::Rfc3164));
        assert_eq!(m.timestamp.as_deref(), Some("Oct 11 22:14:15"));
        assert_eq!((m.hostname.as_deref(), m.app.as_deref()), (Some("mymachine"), Some("su")));
        assert_eq!(m.text, "'su root' failed for lonvick on /dev/pts/8");
        // Junos style, with a pid and a space-padded day.
        let m =
            parse(b"<28>Nov  5 01:02:03 leaf1 mgd[5678]: UI_COMMIT: User 'root' requested 'commit'").unwrap();
        assert_eq!(
            (m.hostname.as_deref(), m.app.as_deref(), m.procid.as_deref()),
            (Some("leaf1"), Some("mgd"), Some("5678"))
        );
        assert_eq!(m.log_line(), "warning mgd[5678]: UI_COMMIT: User 'root' requested 'commit'");
        // No hostname after the timestamp (as local sockets send it).
        let m = parse(b"<13>Jan  1 00:00:00 ztp[77]: starting").unwrap();
        assert_eq!((m.hostname, m.app.as_deref(), m.text.as_str()), (None, Some("ztp"), "starting"));
        // No timestamp and no tag: all text.
        let m = parse(b"<190>just words here").unwrap();
        assert_eq!((m.facility, m.severity, m.app, m.text.as_str()), (23, 6, None, "just words here"));
        // Not a timestamp: a wrong month, so it is text.
        let m = parse(b"<13>Foo 11 22:14:15 host app: x").unwrap();
        assert_eq!((m.timestamp, m.hostname), (None, None));
    }

    #[test]
    fn bare_and_malformed_input() {
        let m = parse(b"no priority at all").unwrap();
        assert_eq!((m.format, m.facility, m.severity), (Format::Bare, 1, 5));
        for bad in [
            &b""[..],
            b"\n\0",
            b"<",
            b"<>x",
            b"<12",
            b"<1234>x",
            b"<192>x",
            b"<012>x",
            b"<1a>x",
            b"<-1>x",
            b"<13>1 ",
            b"<13>1 2003-10-11T22:14:15Z host",
            b"<13>1 2003-10-11T22:14:15Z host app 1 ID [unterminated",
            b"<13>1 2003-10-11T22:14:15Z host app 1 ID [a b=\"c\\]\"",
            b"<13>1 2003-10-11T22:14:15Z host app 1 ID x",
            b"<13>1 2003-10-11T22:14:15Z host app 1 ID -x",
            b"<13>1  host app 1 ID - x",
        ] {
            assert!(parse(bad).is_err(), "accepted {:?}", String::from_utf8_lossy(bad));
        }
        // Invalid UTF-8 and control characters become replacement characters and spaces.
        let m = parse(b"<13>1 - - app - - - a\xffb\x1b[31mc\nd").unwrap();
        assert_eq!(m.text, "a\u{fffd}b [31mc d");
        // Over-long input is cut, not refused.
        let mut long = b"<13>".to_vec();
        long.extend(std::iter::repeat_n(b'x', 3 * MAX_MESSAGE));
        assert_eq!(parse(&long).unwrap().text.len(), MAX_MESSAGE - 4);
    }
}
