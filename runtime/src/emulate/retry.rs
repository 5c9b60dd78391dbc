//! What a NOS does when its boot file download fails: start over (DHCP, then the
//! download) after a pause, or stop ZTP. The pauses are the NOS's (reference/nos-dhcp.md,
//! nos-commands.md); the emulator bounds the ones that are endless on the device.

use std::time::Duration;

use ztpc::platform::Platform;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Cumulus: "Retries seen at +5, +10, +15 s, then failure" (CL51 log).
const CUMULUS: &[Duration] = &[secs(5), secs(10), secs(15)];
/// EOS stays in ZTP "until cancelled or a file is retrieved" (ARDOC); POAP alternates
/// USB/DHCP "until success or abort" (NXG); EVO retries a failed download on other
/// interfaces (JNOTE); SONiC restarts discovery (SZTP, inferred for option 239). All
/// endless on the device: the emulator stops after these pauses (about two minutes).
const UNTIL_RETRIEVED: &[Duration] = &[secs(2), secs(4), secs(8), secs(16), secs(30), secs(30), secs(30)];

/// The pauses before each new DHCP + download after a failed download; empty when the
/// NOS stops ZTP at the first failure (Junos, not EVO: "a failed download stops ZTP",
/// JNOTE).
pub fn download_pauses(p: Platform) -> &'static [Duration] {
    match p {
        Platform::Junos => &[],
        Platform::Cumulus => CUMULUS,
        Platform::JunosEvo | Platform::Eos | Platform::Nxos | Platform::Sonic => UNTIL_RETRIEVED,
    }
}

/// Run `attempt` until it succeeds, pausing `pauses[i]` (plus up to a second of jitter,
/// so that devices failing together do not come back together) after the i-th failure;
/// `on_retry(error, pause)` is told before each pause. The last error is returned, with
/// the number of tries when there was more than one.
pub fn with_pauses<T>(
    pauses: &[Duration],
    mut attempt: impl FnMut() -> Result<T, String>,
    mut on_retry: impl FnMut(&str, Duration),
) -> Result<T, String> {
    let mut tries = 0;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => match pauses.get(tries) {
                Some(p) => {
                    let pause = *p + Duration::from_millis(fastrand::u64(0..1000));
                    on_retry(&e, pause);
                    std::thread::sleep(pause);
                    tries += 1;
                }
                None if tries == 0 => return Err(e),
                None => return Err(format!("{e} (gave up after {} tries)", tries + 1)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Instant;

    use super::*;
    use crate::emulate::bootfile;
    use crate::emulate::device::{Device, default_model, default_version};

    #[test]
    fn junos_stops_at_the_first_failed_download_and_the_others_retry() {
        assert!(download_pauses(Platform::Junos).is_empty());
        assert_eq!(download_pauses(Platform::Cumulus), &[secs(5), secs(10), secs(15)]);
        for p in [Platform::JunosEvo, Platform::Eos, Platform::Nxos, Platform::Sonic] {
            let total: Duration = download_pauses(p).iter().sum();
            assert!(total >= secs(60) && total <= secs(180), "{p}: {total:?}");
        }
    }

    #[test]
    fn pauses_are_taken_in_order_and_bounded() {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        let mut calls = 0;
        let r: Result<(), String> = with_pauses(
            &[Duration::ZERO, Duration::ZERO],
            || {
                calls += 1;
                Err(format!("busy {calls}"))
            },
            |e, _| seen.push(e.to_string()),
        );
        assert_eq!(r.unwrap_err(), "busy 3 (gave up after 3 tries)");
        assert_eq!(seen, ["busy 1", "busy 2"]);
        assert!(t0.elapsed() < secs(3), "two jittered zero pauses take under 2 s");
        let r: Result<(), String> = with_pauses(&[], || Err("no".into()), |_, _| panic!("no retry"));
        assert_eq!(r.unwrap_err(), "no");
    }

    /// A TFTP server on loopback that refuses every odd read request as "server busy"
    /// (TFTP error 0, as ztp-runtime does when all its transfer slots are taken) and
    /// serves every even one: the download retried as the NOS retries gets the file;
    /// the same download tried once fails.
    #[test]
    fn a_busy_tftp_server_is_retried_until_the_file_comes() {
        if std::process::Command::new("curl").arg("--version").output().is_err() {
            if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
                panic!("curl is not installed and ZTP_REQUIRE_ORACLES=1");
            }
            eprintln!("SKIPPED: curl is not installed");
            return;
        }
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(secs(20))).unwrap();
        let port = server.local_addr().unwrap().port();
        let body = b"#!/bin/bash\necho hello\n".to_vec();
        let served = body.clone();
        let fake = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let mut requests = 0;
            while requests < 3 {
                let (n, peer) = server.recv_from(&mut buf).unwrap();
                if n < 2 || buf[1] != 1 {
                    continue; // not a read request
                }
                requests += 1;
                // Each answer comes from a fresh port (a TFTP transfer ID).
                let tid = UdpSocket::bind("127.0.0.1:0").unwrap();
                if requests % 2 == 1 {
                    let mut err = vec![0, 5, 0, 0];
                    err.extend_from_slice(b"server busy, retry later\0");
                    tid.send_to(&err, peer).unwrap();
                    continue;
                }
                let mut data = vec![0, 3, 0, 1];
                data.extend_from_slice(&served);
                tid.send_to(&data, peer).unwrap();
                tid.set_read_timeout(Some(secs(10))).unwrap();
                let (n, _) = tid.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n.min(4)], &[0, 4, 0, 1], "the client acknowledges block 1");
            }
            requests
        });
        let p = Platform::Eos;
        let d = Device {
            platform: p,
            mac: [2, 0, 0, 0, 0, 1],
            serial: "S1".into(),
            model: default_model(p).into(),
            version: default_version(p).into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("script");
        let url = format!("tftp://127.0.0.1:{port}/devices/sw1.sh");
        let from = Ipv4Addr::LOCALHOST;
        let mut retried = Vec::new();
        let size = with_pauses(
            &[Duration::ZERO],
            || bootfile::fetch(&d, &url, from, &dest),
            |e, _| retried.push(e.to_string()),
        )
        .unwrap();
        assert_eq!(size, body.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert_eq!(retried.len(), 1, "{retried:?}");
        assert!(retried[0].contains("curl: (71)"), "a TFTP error, not retried by curl itself: {retried:?}");
        // Tried once (Junos), the refusal is the end.
        let once = with_pauses(&[], || bootfile::fetch(&d, &url, from, &dest), |_, _| {});
        assert!(once.is_err(), "{once:?}");
        assert_eq!(fake.join().unwrap(), 3);
    }
}
