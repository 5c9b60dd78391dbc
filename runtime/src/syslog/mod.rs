//! Syslog receiver (UDP, `--syslog-listen`, off by default): each message is filed
//! into the log of the device it came from, by source address, as Apstra's rsyslog
//! does; it then shows in the web page's log view and `GET /api/ztp/device/IP/log`.
//!
//! Only known devices are logged: an address with a device row (it took a DHCP lease
//! or reported). Messages from any other address are dropped with a debug line and
//! counted (`ztp_syslog_messages_total{result="unknown_source"}`): a bucket for them
//! would be an unbounded sink for anyone on the network, and no device row would ever
//! show it. Unparseable datagrams are dropped and counted as `malformed`.
//!
//! Messages go through the same bounded, non-blocking event sink as the DHCP and file
//! server events, so a syslog flood can drop log lines but never slow DHCP.

pub mod parse;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::metrics::{METRICS, SyslogResult};
use crate::state::State;
use crate::status::Store;

/// How long "this address is a device" is believed before asking the store again.
const KNOWN_TTL: Duration = Duration::from_secs(5);
/// The same for "is no device": short, since a lease can make it one at any moment.
const UNKNOWN_TTL: Duration = Duration::from_secs(1);
/// Addresses remembered at most (the cache is cleared when full).
const KNOWN_MAX: usize = 4096;

/// Receive on `listen` until the future is dropped; `ready` gets the bound address.
pub async fn serve(
    state: Arc<State>,
    store: Arc<Store>,
    listen: SocketAddr,
    ready: oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    let socket = UdpSocket::bind(listen).await?;
    let _ = ready.send(socket.local_addr()?);
    let mut known = Known::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here on some systems; never a reason to stop.
                tracing::debug!(error = %e, "syslog: receive failed");
                continue;
            }
        };
        let msg = match parse::parse(&buf[..n]) {
            Ok(m) => m,
            Err(e) => {
                METRICS.syslog_messages[SyslogResult::Malformed as usize].inc();
                tracing::debug!(%peer, error = %e, "syslog: malformed message dropped");
                continue;
            }
        };
        let ip = canonical(peer.ip());
        if !known.is_device(&store, ip).await {
            METRICS.syslog_messages[SyslogResult::UnknownSource as usize].inc();
            tracing::debug!(%peer, "syslog: message from an address that is no device, dropped");
            continue;
        }
        METRICS.syslog_messages[SyslogResult::Filed as usize].inc();
        state.event(crate::events::Event {
            ip: ip.to_string(),
            kind: "syslog",
            text: msg.log_line(),
            name: None,
            mac: None,
        });
    }
}

/// An IPv4 sender on a dual-stack socket shows as `::ffff:a.b.c.d`; devices are keyed
/// by the IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Default)]
struct Known {
    seen: HashMap<IpAddr, (bool, Instant)>,
}

impl Known {
    async fn is_device(&mut self, store: &Arc<Store>, ip: IpAddr) -> bool {
        if let Some((yes, at)) = self.seen.get(&ip)
            && at.elapsed() < if *yes { KNOWN_TTL } else { UNKNOWN_TTL }
        {
            return *yes;
        }
        let (s, key) = (store.clone(), ip.to_string());
        let yes = matches!(tokio::task::spawn_blocking(move || s.device(&key)).await, Ok(Ok(Some(_))));
        if self.seen.len() >= KNOWN_MAX {
            self.seen.clear();
        }
        self.seen.insert(ip, (yes, Instant::now()));
        yes
    }
}
