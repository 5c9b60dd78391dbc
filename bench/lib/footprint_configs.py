#!/usr/bin/env python3
"""bench/footprint's configs for the peers, from one ztpc build's kea-dhcp4.json.

    footprint_configs.py KEA_JSON SERVER_IP RELAY_IP WORKDIR

Writes WORKDIR/kea.json (our kea-dhcp4.json, changed only in interfaces-config
lo/SERVER_IP with UDP sockets, and the memfile lease file path with lfc-interval 0),
WORKDIR/dnsmasq.args (one dnsmasq argument per line: every subnet's unclassified pool
as a dhcp-range with the subnet's router, and every MAC reservation as a dhcp-host; the
closest dnsmasq equivalent: it has no serial or option-82 identities and no per-platform
options), and prints "POOL_SIZE" of the pool in the subnet holding RELAY_IP, so the load
uses no more distinct clients than it has addresses. Standard library only.
"""
import ipaddress
import json
import sys


def main(kea_json, server, relay, w):
    with open(kea_json) as f:
        doc = json.load(f)
    d4 = doc["Dhcp4"]
    d4["interfaces-config"] = {"interfaces": [f"lo/{server}"], "dhcp-socket-type": "udp"}
    db = dict(d4.get("lease-database", {}))
    db.update({"type": "memfile", "persist": True, "lfc-interval": 0, "name": f"{w}/kea-leases.csv"})
    d4["lease-database"] = db
    with open(f"{w}/kea.json", "w") as f:
        json.dump(doc, f, indent=1)

    args, pool_size = [], 0
    valid = d4.get("valid-lifetime", 7200)
    relay_ip = ipaddress.ip_address(relay)
    hosts = list(d4.get("reservations", []))
    for tag, s in enumerate(d4["subnet4"]):
        net = ipaddress.ip_network(s["subnet"])
        router = next((o["data"] for o in s.get("option-data", []) if o.get("name") == "routers"), None)
        for p in s.get("pools", []):
            if p.get("client-class", "ztp-unreserved") != "ztp-unreserved":
                continue
            lo, hi = [x.strip() for x in p["pool"].split("-")]
            args.append(f"--dhcp-range=set:s{tag},{lo},{hi},{net.netmask},{valid}")
            if relay_ip in net:
                pool_size += int(ipaddress.ip_address(hi)) - int(ipaddress.ip_address(lo)) + 1
        if router:
            args.append(f"--dhcp-option=tag:s{tag},option:router,{router}")
        hosts += s.get("reservations", [])
    for h in hosts:
        if "hw-address" in h and "ip-address" in h:
            args.append(f"--dhcp-host={h['hw-address']},{h['ip-address']}")
    with open(f"{w}/dnsmasq.args", "w") as f:
        f.write("\n".join(args) + "\n")
    print(pool_size)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.stderr.write("usage: footprint_configs.py KEA_JSON SERVER_IP RELAY_IP WORKDIR\n")
        sys.exit(2)
    main(*sys.argv[1:])
