//! Shared helpers of the DHCP tests (included with `#[path]`): a request builder that
//! goes through the real wire decoder, reply option access in wire form, the golden
//! manifests, and what each NOS puts in its requests (reference/nos-dhcp.md).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode, relay};
use dhcproto::{Encodable, Encoder};
use ztp_runtime::dhcp::config::Config;
use ztp_runtime::dhcp::reply::Request;
use ztp_runtime::dhcp::wire;
use ztpc::platform::Platform;
use ztpc::render::manifest::Manifest;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn manifest(fabric: &str) -> Manifest {
    let p = repo().join("golden").join(fabric).join("runtime.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

pub fn config(fabric: &str) -> Config {
    Config::new(&manifest(fabric), "test")
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A request under construction.
#[derive(Clone)]
pub struct Q {
    pub msg: v4::Message,
    pub local: Ipv4Addr,
}

/// A request of type `mt` from hardware address `mac`, arriving on 0.0.0.0 (set with
/// [`Q::local`]) and not relayed.
pub fn q(mt: MessageType, mac: [u8; 6]) -> Q {
    let mut msg = v4::Message::default();
    msg.set_opcode(v4::Opcode::BootRequest)
        .set_chaddr(&mac)
        .set_xid(u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]));
    msg.opts_mut().insert(DhcpOption::MessageType(mt));
    Q { msg, local: Ipv4Addr::UNSPECIFIED }
}

impl Q {
    fn opt(mut self, o: DhcpOption) -> Q {
        self.msg.opts_mut().insert(o);
        self
    }
    pub fn kind(self, mt: MessageType) -> Q {
        self.opt(DhcpOption::MessageType(mt))
    }
    pub fn vendor(self, v: &[u8]) -> Q {
        self.opt(DhcpOption::ClassIdentifier(v.to_vec()))
    }
    pub fn client_id(self, v: &[u8]) -> Q {
        self.opt(DhcpOption::ClientIdentifier(v.to_vec()))
    }
    pub fn user_class(self, v: &[u8]) -> Q {
        self.opt(DhcpOption::UserClass(v.to_vec()))
    }
    pub fn host(self, v: &str) -> Q {
        self.opt(DhcpOption::Hostname(v.to_string()))
    }
    pub fn requested(self, a: Ipv4Addr) -> Q {
        self.opt(DhcpOption::RequestedIpAddress(a))
    }
    pub fn server(self, a: Ipv4Addr) -> Q {
        self.opt(DhcpOption::ServerIdentifier(a))
    }
    pub fn lease(self, t: u32) -> Q {
        self.opt(DhcpOption::AddressLeaseTime(t))
    }
    pub fn prl(self, codes: &[u8]) -> Q {
        self.opt(DhcpOption::ParameterRequestList(codes.iter().map(|c| OptionCode::from(*c)).collect()))
    }
    pub fn ciaddr(mut self, a: Ipv4Addr) -> Q {
        self.msg.set_ciaddr(a);
        self
    }
    pub fn broadcast(mut self) -> Q {
        self.msg.set_flags(v4::Flags::default().set_broadcast());
        self
    }
    pub fn local(mut self, a: Ipv4Addr) -> Q {
        self.local = a;
        self
    }
    /// Through a relay agent at `giaddr`, with option 82 if remote-id or circuit-id given.
    pub fn relay(mut self, giaddr: Ipv4Addr, remote: Option<&str>, circuit: Option<&str>) -> Q {
        self.msg.set_giaddr(giaddr).set_hops(1);
        if remote.is_some() || circuit.is_some() {
            let mut info = relay::RelayAgentInformation::default();
            if let Some(c) = circuit {
                info.insert(relay::RelayInfo::AgentCircuitId(c.as_bytes().to_vec()));
            }
            if let Some(r) = remote {
                info.insert(relay::RelayInfo::AgentRemoteId(r.as_bytes().to_vec()));
            }
            self = self.opt(DhcpOption::RelayAgentInformation(info));
        }
        self
    }
    /// Encode and decode with the server's own decoder, as the socket would.
    pub fn build(&self) -> Request {
        let mut bytes = Vec::new();
        self.msg.encode(&mut Encoder::new(&mut bytes)).unwrap();
        Request { msg: wire::decode(&bytes).expect("the request decodes"), local: self.local }
    }
}

/// A reply's options as they are on the wire: code → data (split options joined).
pub fn wire_opts(m: &v4::Message) -> BTreeMap<u8, Vec<u8>> {
    let mut bytes = Vec::new();
    wire::encode(m, &mut bytes).unwrap();
    raw_opts(&bytes)
}

/// The options of an encoded message, read straight from the bytes.
pub fn raw_opts(bytes: &[u8]) -> BTreeMap<u8, Vec<u8>> {
    assert_eq!(&bytes[236..240], &[99, 130, 83, 99]);
    let mut out: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut i = 240;
    let mut last = None;
    while i < bytes.len() {
        match bytes[i] {
            0 => i += 1,
            255 => break,
            c => {
                let n = bytes[i + 1] as usize;
                out.entry(c).or_default().extend_from_slice(&bytes[i + 2..i + 2 + n]);
                last = Some(c);
                i += 2 + n;
            }
        }
    }
    if out.contains_key(&82) {
        assert_eq!(last, Some(82), "RFC 3046 §2.2: option 82 comes last");
    }
    out
}

pub fn ips(v: &[u8]) -> Vec<Ipv4Addr> {
    v.chunks(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect()
}

/// What a switch of each NOS puts in its DISCOVER (reference/nos-dhcp.md), with an
/// optional serial where the NOS carries one.
pub fn looks_like(q: Q, p: Platform, serial: Option<&str>) -> Q {
    match p {
        // BERNAT / JCFG: option 60 `Juniper-<model>[-<serial>]`, broadcast flag, no 61/77.
        Platform::Junos => {
            let v = match serial {
                Some(s) => format!("Juniper-ex4400-48mp-{s}"),
                None => "Juniper-mx10003".into(),
            };
            q.vendor(v.as_bytes()).broadcast()
        }
        // EVO: option 77 ends `-EVO` (APS); its exact value is inferred.
        Platform::JunosEvo => {
            let v = match serial {
                Some(s) => format!("Juniper:qfx5220-32cd:{s}"),
                None => "Juniper-qfx5220-32cd".into(),
            };
            q.vendor(v.as_bytes()).user_class(b"23.4R2-S3.9-EVO")
        }
        // META: `Arista;<model>;<hw-rev>;<serial>`; 61 = the system MAC, 6 raw bytes.
        Platform::Eos => {
            let v = format!("Arista;DCS-7050SX3-48YC8;11.00;{}", serial.unwrap_or("JPE12345678"));
            q.vendor(v.as_bytes()).client_id(&[0x2c, 0xdd, 0xe9, 0xf6, 0xf9, 0x9b])
        }
        // NXG: 61 = `\0` + serial, 77 `Cisco-POAP`; option 60 starts `Cisco` (inferred).
        Platform::Nxos => {
            let mut id = vec![0u8];
            id.extend_from_slice(serial.unwrap_or("SAL12345678").as_bytes());
            q.vendor(b"Cisco N9K-C93180YC-FX3").client_id(&id).user_class(b"Cisco-POAP")
        }
        // SBI: 61 `SONiC##<product>##<serial>` raw, 77 `SONiC-ZTP`, 12 `sonic`, no 60.
        Platform::Sonic => {
            let id = format!("SONiC##AS7326-56X##{}", serial.unwrap_or("E1031B2F035A17GD020"));
            q.client_id(id.as_bytes()).user_class(b"SONiC-ZTP").host("sonic")
        }
        // CL51: `cumulus-linux  x86_64` (two spaces), host name `cumulus`.
        Platform::Cumulus => q.vendor(b"cumulus-linux  x86_64").host("cumulus"),
    }
}

/// A MAC that no fabric reserves, numbered.
pub fn stranger(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xee, b[0], b[1], b[2], b[3]]
}
