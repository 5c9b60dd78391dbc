//! A token bucket per client hardware address, checked before a datagram is decoded,
//! so one client (or a tool pretending to be one) cannot take the DHCP server's time
//! or fill its lease journal.
//!
//! A real client sends a handful of packets per exchange and retransmits after seconds
//! (RFC 2131 §4.1: 4 s, then 8 s, ...), so a bucket of [`BURST`] packets refilled at
//! [`PER_SEC`] a second never touches one. Relayed packets are counted by the client's
//! chaddr, not by the relay. The table of buckets is bounded: above [`MAX_TRACKED`]
//! addresses, buckets that have refilled (idle clients) are forgotten, and if every one
//! is busy a new address goes unlimited rather than evicting a limited one (a flood of
//! fresh addresses is a different attack, bounded by the pools, not by this).

use std::collections::HashMap;
use std::time::Instant;

/// Packets one hardware address may send at once.
pub const BURST: f64 = 40.0;
/// Packets per second a hardware address earns back.
pub const PER_SEC: f64 = 10.0;
/// Hardware addresses tracked at most.
pub const MAX_TRACKED: usize = 16_384;

/// Where chaddr starts in a BOOTP message (RFC 2131 §2, figure 1) and its size.
const CHADDR: usize = 28;
const CHADDR_LEN: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The per-address buckets.
#[derive(Debug, Default)]
pub struct RateLimit {
    buckets: HashMap<[u8; CHADDR_LEN], Bucket>,
    /// When the table was last pruned: at most once a second, so that a flood of new
    /// addresses against a full table does not cost a scan per packet.
    pruned: Option<Instant>,
}

impl RateLimit {
    /// Whether the datagram `pkt` may be processed now. Datagrams too short to hold a
    /// chaddr are let through: the decoder drops them anyway.
    pub fn allow(&mut self, pkt: &[u8], now: Instant) -> bool {
        let Some(key) = key(pkt) else { return true };
        if let Some(b) = self.buckets.get_mut(&key) {
            return b.take(now);
        }
        if self.buckets.len() >= MAX_TRACKED {
            if self.pruned.is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1) {
                self.pruned = Some(now);
                self.buckets.retain(|_, b| b.refilled(now) < BURST);
            }
            if self.buckets.len() >= MAX_TRACKED {
                return true;
            }
        }
        let mut b = Bucket { tokens: BURST, at: now };
        let ok = b.take(now);
        self.buckets.insert(key, b);
        ok
    }

    /// Hardware addresses being tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

impl Bucket {
    fn refilled(&self, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + secs * PER_SEC).min(BURST)
    }

    fn take(&mut self, now: Instant) -> bool {
        self.tokens = self.refilled(now);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The chaddr field, cut to hlen (at most 16) and zero-padded.
fn key(pkt: &[u8]) -> Option<[u8; CHADDR_LEN]> {
    let hlen = usize::from(*pkt.get(2)?).min(CHADDR_LEN);
    let ch = pkt.get(CHADDR..CHADDR + CHADDR_LEN)?;
    let mut k = [0u8; CHADDR_LEN];
    k[..hlen].copy_from_slice(&ch[..hlen]);
    Some(k)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pkt(mac: u8) -> Vec<u8> {
        let mut p = vec![0u8; 300];
        p[0] = 1;
        p[2] = 6;
        p[CHADDR..CHADDR + 6].copy_from_slice(&[2, 0, 0, 0, 0, mac]);
        p
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut rl = RateLimit::default();
        let t0 = Instant::now();
        let passed = (0..100).filter(|_| rl.allow(&pkt(1), t0)).count();
        assert_eq!(passed, BURST as usize);
        // Another client is not affected.
        assert!(rl.allow(&pkt(2), t0));
        // One second later, PER_SEC more.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..100).filter(|_| rl.allow(&pkt(1), t1)).count();
        assert_eq!(passed, PER_SEC as usize);
    }

    #[test]
    fn bytes_past_hlen_do_not_make_a_new_client() {
        let mut rl = RateLimit::default();
        let t0 = Instant::now();
        let mut p = pkt(1);
        for i in 0..100u8 {
            p[CHADDR + 10] = i; // padding beyond hlen 6
            rl.allow(&p, t0);
        }
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_clients() {
        let mut rl = RateLimit::default();
        let t0 = Instant::now();
        let mut p = pkt(0);
        for i in 0..(MAX_TRACKED as u32 + 100) {
            p[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
            assert!(rl.allow(&p, t0));
        }
        assert_eq!(rl.tracked(), MAX_TRACKED);
        // Long after, the idle buckets make room.
        let later = t0 + Duration::from_secs(60);
        p[CHADDR + 1] = 0xff;
        assert!(rl.allow(&p, later));
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn short_datagrams_are_left_to_the_decoder() {
        let mut rl = RateLimit::default();
        assert!(rl.allow(&[1, 1, 6], Instant::now()));
        assert_eq!(rl.tracked(), 0);
    }
}
