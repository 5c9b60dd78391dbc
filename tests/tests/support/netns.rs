//! A pair of network namespaces this test makes and removes: the server's, whose end of a
//! veth pair is named `eth1` and holds the ZTP server's address, and the relay's, whose
//! end holds one relay address (giaddr) per served subnet. The server reaches the
//! subnets it does not sit on through the relay's address on its own subnet, as a
//! routed fabric would. Nothing leaves these namespaces.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The server's interface inside its namespace (the name examples/campus gives Kea).
pub const SERVER_IF: &str = "eth1";

pub struct Pair {
    pub server_ns: String,
    pub relay_ns: String,
}

fn ip(args: &str) {
    let st = Command::new("ip").args(args.split_whitespace()).status().expect("run ip");
    assert!(st.success(), "ip {args} failed");
}

impl Pair {
    /// `tag` makes the names unique (the test's PID and the example's index).
    /// `server`: address/prefix. `relays`: giaddr/prefix, the first on the server's
    /// subnet. `routed`: the other subnets, reached via the first relay address.
    pub fn new(
        tag: &str,
        server: (Ipv4Addr, u8),
        relays: &[(Ipv4Addr, u8)],
        routed: &[(Ipv4Addr, u8)],
    ) -> Pair {
        let pair =
            Pair { server_ns: format!("ztp-agree-{tag}-srv"), relay_ns: format!("ztp-agree-{tag}-rly") };
        for ns in [&pair.server_ns, &pair.relay_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            // `ip netns exec` bind-mounts this over /etc/resolv.conf: the machine's own
            // file is never touched by anything running inside.
            std::fs::create_dir_all(format!("/etc/netns/{ns}")).expect("/etc/netns");
            std::fs::write(format!("/etc/netns/{ns}/resolv.conf"), "# test namespace: no DNS\n")
                .expect("resolv.conf");
            ip(&format!("netns add {ns}"));
            ip(&format!("-n {ns} link set lo up"));
        }
        let (s, r) = (&pair.server_ns, &pair.relay_ns);
        // Short unique names for the pair while it is in the root namespace.
        let (vs, vr) = (format!("ag{tag}s"), format!("ag{tag}r"));
        ip(&format!("link add {vs} type veth peer name {vr}"));
        ip(&format!("link set {vs} netns {s}"));
        ip(&format!("link set {vr} netns {r}"));
        ip(&format!("-n {s} link set {vs} name {SERVER_IF}"));
        ip(&format!("-n {s} addr add {}/{} dev {SERVER_IF}", server.0, server.1));
        ip(&format!("-n {s} link set {SERVER_IF} up"));
        for (a, p) in relays {
            ip(&format!("-n {r} addr add {a}/{p} dev {vr}"));
        }
        ip(&format!("-n {r} link set {vr} up"));
        // Clients on the server's link broadcast to 255.255.255.255, which needs a route
        // out of the relay namespace; the veth is its only way out.
        ip(&format!("-n {r} route add default dev {vr}"));
        let via = relays.first().expect("a relay address on the server's subnet").0;
        for (net, p) in routed {
            ip(&format!("-n {s} route add {net}/{p} via {via}"));
        }
        pair
    }
}

impl Drop for Pair {
    /// Stop whatever still runs in our namespaces (processes this test started, found
    /// by PID), then remove the namespaces, which removes the veth pair.
    fn drop(&mut self) {
        for ns in [&self.relay_ns, &self.server_ns] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }
}
