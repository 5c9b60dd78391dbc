//! DHCP: one datagram through the strict decoder, then (if accepted) the reply
//! function against a real generation (examples/lab or examples/dc1, chosen by the low
//! bit of xid), twice, so the second pass sees the lease the first one took; every
//! reply is encoded as the server would send it.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ztp_runtime::dhcp::config::Config;
use ztp_runtime::dhcp::leases::{LeaseTable, Op};
use ztp_runtime::dhcp::reply::{Request, reply};
use ztp_runtime::dhcp::{addressing, wire};

static CONFIGS: LazyLock<[Config; 2]> = LazyLock::new(|| {
    ["lab", "dc1"].map(|n| {
        let g = ztp_fuzz::generation(n);
        Config::new(&g.manifest, &g.id)
    })
});

const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = wire::decode(data) else { return };
    let cfg = &CONFIGS[(msg.xid() & 1) as usize];
    let mut table = LeaseTable::default();
    let mut records = Vec::new();
    // Both ways a request arrives: on the server's address, and on 0.0.0.0.
    let local = if msg.xid() & 2 == 0 { cfg.server_id } else { std::net::Ipv4Addr::UNSPECIFIED };
    let req = Request { msg, local };
    for pass in 0..2u64 {
        let d = reply(cfg, &table, &req, NOW + pass * 10);
        table.apply(d.change, &mut records);
        if let (Some(m), Some(kind)) = (&d.reply, d.kind()) {
            let _ = addressing::destination(&req.msg, kind);
            let _ = addressing::directed_broadcast(m);
            let mut out = Vec::new();
            let _ = wire::encode(m, &mut out);
        }
    }
    // What was journaled must bring back every bound lease after a restart.
    let mut replayed = LeaseTable::default();
    for r in &records {
        replayed.replay(r);
    }
    let back = replayed.snapshot(0);
    for bound in table.snapshot(0).iter().filter(|r| r.op == Op::Bind) {
        assert!(back.contains(bound), "a bound lease is not in the journal: {bound:?}");
    }
});
