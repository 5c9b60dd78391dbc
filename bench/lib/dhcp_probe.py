#!/usr/bin/env python3
"""bench/dhcp's functional probe: does a server answer relayed DORA correctly? (stdlib only)

    dhcp_probe.py RUNTIME_JSON RELAY SERVER

Acts as a relay agent on RELAY:67 (giaddr RELAY) and runs two full exchanges against
SERVER:67: one for a reserved device of the fabric (the first with a bootfile-name boot
option, else the first device), which must get its reserved address and its boot file
(option 67, or the BOOTP file field), and one for a MAC the fabric does not know, which
must get an address from a pool of the subnet holding RELAY and that subnet's router.
Both must be ACKed with the offered address. Exits 0 and prints one line per exchange,
or exits 1 saying what was wrong. Run it inside the namespace that holds RELAY.
"""
import ipaddress
import json
import os
import socket
import struct
import sys

MAGIC = b"\x63\x82\x53\x63"
PRL = bytes([1, 3, 6, 15, 42, 43, 66, 67, 239])


def packet(kind, xid, mac, giaddr, extra=()):
    hw = bytes.fromhex(mac.replace(":", ""))
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, xid, 0, 0, bytes(4), bytes(4), bytes(4),
                       socket.inet_aton(giaddr), hw.ljust(16, b"\0"), bytes(64), bytes(128))
    opts = bytes([53, 1, kind, 55, len(PRL)]) + PRL
    for code, value in extra:
        opts += bytes([code, len(value)]) + value
    return head + MAGIC + opts + b"\xff"


def parse(data):
    if len(data) < 240 or data[236:240] != MAGIC:
        return None
    xid = struct.unpack("!I", data[4:8])[0]
    yiaddr = socket.inet_ntoa(data[16:20])
    bootfile = data[108:236].split(b"\0", 1)[0].decode(errors="replace")
    opts, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, n = data[i], data[i + 1]
        opts[code] = opts.get(code, b"") + data[i + 2:i + 2 + n]
        i += 2 + n
    return {"xid": xid, "yiaddr": yiaddr, "file": bootfile, "opts": opts}


def exchange(sock, server, mac, giaddr):
    """DISCOVER/OFFER then REQUEST/ACK; returns (offer, ack) or raises with the reason."""
    xid = int.from_bytes(os.urandom(4), "big")

    def ask(kind, want, extra=()):
        for _ in range(3):
            sock.sendto(packet(kind, xid, mac, giaddr, extra), (server, 67))
            try:
                while True:
                    data, _ = sock.recvfrom(4096)
                    p = parse(data)
                    if p and p["xid"] == xid:
                        got = p["opts"].get(53, b"\0")[0]
                        if got != want:
                            raise RuntimeError(f"{mac}: expected DHCP message type {want}, got {got}")
                        return p
            except socket.timeout:
                continue
        raise RuntimeError(f"{mac}: no answer to message type {kind} from {server}:67 after 3 tries")

    offer = ask(1, 2)
    sid = offer["opts"].get(54)
    if not sid:
        raise RuntimeError(f"{mac}: OFFER without a server identifier (option 54)")
    ack = ask(3, 5, [(50, socket.inet_aton(offer["yiaddr"])), (54, sid)])
    if ack["yiaddr"] != offer["yiaddr"]:
        raise RuntimeError(f"{mac}: ACK for {ack['yiaddr']}, offered {offer['yiaddr']}")
    return offer, ack


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: dhcp_probe.py RUNTIME_JSON RELAY SERVER\n")
        return 2
    with open(argv[1]) as f:
        rt = json.load(f)
    relay, server = argv[2], argv[3]
    kinds = {p["platform"]: p["boot-option"] for p in rt["platforms"]}
    devs = rt["devices"]
    dev = next((d for d in devs if kinds.get(d["platform"]) == "bootfile-name"), devs[0])
    subnet = next(s for s in rt["dhcp"]["subnets"] if ipaddress.ip_address(relay) in ipaddress.ip_network(s["cidr"]))
    pools = [(ipaddress.ip_address(p["first"]), ipaddress.ip_address(p["last"])) for p in subnet["pools"]]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((relay, 67))
    sock.settimeout(2.0)
    try:
        offer, _ = exchange(sock, server, dev["mac"], relay)
        if offer["yiaddr"] != dev["address"]:
            raise RuntimeError(f"reserved {dev['name']} ({dev['mac']}) offered {offer['yiaddr']}, not {dev['address']}")
        if kinds[dev["platform"]] == "bootfile-name":
            # dnsmasq ends option 67 with a NUL, as some PXE clients want; not a difference.
            got = offer["opts"].get(67, b"").rstrip(b"\0").decode(errors="replace") or offer["file"]
            if got != dev["boot-value"]:
                raise RuntimeError(f"reserved {dev['name']}: boot file {got!r}, not {dev['boot-value']!r}")
        print(f"probe: {dev['name']} {dev['mac']} -> {offer['yiaddr']} (reserved), boot file ok")
        mac = "02:00:5e:" + ":".join(f"{b:02x}" for b in os.urandom(3))
        offer, _ = exchange(sock, server, mac, relay)
        a = ipaddress.ip_address(offer["yiaddr"])
        if not any(lo <= a <= hi for lo, hi in pools):
            raise RuntimeError(f"unknown {mac} offered {a}, outside the pools {subnet['pools']}")
        router = offer["opts"].get(3, b"")
        if subnet.get("router") and router[:4] != socket.inet_aton(subnet["router"]):
            raise RuntimeError(f"unknown {mac}: router {router.hex()}, not {subnet['router']}")
        print(f"probe: {mac} -> {a} (pool), router ok")
    except (RuntimeError, OSError) as e:
        sys.stderr.write(f"dhcp_probe.py: {server}: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
