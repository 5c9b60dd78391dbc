#!/usr/bin/env python3
"""Derive a dnsmasq configuration from a ztpc build's runtime.json (bench/dhcp only).

    dhcp_dnsmasq.py RUNTIME_JSON OUT_CONF

ztpc writes no dnsmasq configuration, so bench/dhcp derives one from the same build the
other servers serve, with everything that decides an answer (stdlib only):

- per subnet: dhcp-range=set:sN,FIRST,LAST,NETMASK,LEASE for each pool (the lease time
  from runtime.json), and that subnet's router, DNS, domain name, domain search and NTP
  options on tag sN;
- dhcp-lease-max: the pool addresses plus the reservations (dnsmasq's default, 1,000,
  would refuse leases long before the pool is used up);
- the server option 66 (tftp-server-name) for every client;
- each device: dhcp-host=MAC,set:NAME,ADDRESS,NAME and its boot option on tag NAME;
- each platform class: the same test as ztp-runtime's classify.rs where dnsmasq can say it
  (dhcp-match on a prefix of option 60, 61 or 12; "-EVO" is a substring match on option
  77 with dhcp-userclass, where the runtime tests a suffix), its boot option on
  "tag:CLASS,tag:!known" so a reserved device's own option wins.

Boot options: bootfile-name is option 67, provision-url option 239 (text), and
juniper-config-file option 43 holding sub-option 1 (written as hex). Only MAC identity
can be written as dhcp-host; a device identified otherwise stops the derivation.
"""
import ipaddress
import json
import sys

# dnsmasq tests for ztp-runtime's platform classes: (set-tag lines, tags the option needs).
CLASSES = {
    "juniper": (["dhcp-match=set:juniper,60,{Juniper}", "dhcp-userclass=set:evo,-EVO"], ["juniper", "!evo"]),
    "juniper-evo": (["dhcp-match=set:juniper,60,{Juniper}", "dhcp-userclass=set:evo,-EVO"], ["juniper", "evo"]),
    "arista": (["dhcp-match=set:arista,60,{Arista}"], ["arista"]),
    "cisco": (["dhcp-match=set:cisco,60,{Cisco}"], ["cisco"]),
    "sonic": (["dhcp-match=set:sonic,61,{SONiC}", "dhcp-match=set:sonic,12,{sonic}"], ["sonic"]),
    "cumulus": (["dhcp-match=set:cumulus,60,{cumulus-linux}"], ["cumulus"]),
}


def hexbytes(b):
    return ":".join(f"{x:02x}" for x in b)


def prefix(line):
    """Write {TEXT} in a dhcp-match line as the hex prefix dnsmasq compares."""
    start, end = line.index("{"), line.index("}")
    return line[:start] + hexbytes(line[start + 1:end].encode()) + line[end + 1:]


def boot_option(kind, value):
    if kind == "bootfile-name":
        return f"option:bootfile-name,{value}"
    if kind == "provision-url":
        return f'239,"{value}"'
    if kind == "juniper-config-file":
        v = value.encode()
        if len(v) > 255:
            raise ValueError(f"option 43 sub-option 1 longer than 255 bytes: {value}")
        return "43," + hexbytes(bytes([1, len(v)]) + v)
    raise ValueError(f"boot option {kind!r} has no dnsmasq equivalent here")


def derive(rt):
    d = rt["dhcp"]
    lease = int(d["lease-time"])
    out = [f"# Derived by bench/lib/dhcp_dnsmasq.py from runtime.json of fabric {rt['fabric']!r}. Bench use only."]
    pool_size = 0
    for i, s in enumerate(d["subnets"]):
        net = ipaddress.ip_network(s["cidr"])
        for p in s["pools"]:
            out.append(f"dhcp-range=set:s{i},{p['first']},{p['last']},{net.netmask},{lease}")
            pool_size += int(ipaddress.ip_address(p["last"])) - int(ipaddress.ip_address(p["first"])) + 1
        o = s.get("options") or {}
        if s.get("router"):
            out.append(f"dhcp-option=tag:s{i},option:router,{s['router']}")
        if o.get("dns"):
            out.append(f"dhcp-option=tag:s{i},option:dns-server,{','.join(o['dns'])}")
        if o.get("domain-name"):
            out.append(f"dhcp-option=tag:s{i},option:domain-name,{o['domain-name']}")
        if o.get("domain-search"):
            ds = o["domain-search"]
            out.append(f"dhcp-option=tag:s{i},option:domain-search,{','.join(ds if isinstance(ds, list) else [ds])}")
        if o.get("ntp"):
            out.append(f"dhcp-option=tag:s{i},option:ntp-server,{','.join(o['ntp'])}")
    out.append(f"dhcp-lease-max={pool_size + len(rt['devices'])}")
    if d.get("tftp-server-name"):
        out.append(f"dhcp-option=option:tftp-server,{d['tftp-server-name']}")
    seen = set()
    for p in rt["platforms"]:
        if p["class"] not in CLASSES:
            raise ValueError(f"platform class {p['class']!r} has no dnsmasq test here")
        lines, tags = CLASSES[p["class"]]
        for line in lines:
            line = prefix(line) if "{" in line else line
            if line not in seen:
                seen.add(line)
                out.append(line)
        out.append("dhcp-option=" + ",".join(f"tag:{t}" for t in tags + ["!known"]) + ","
                   + boot_option(p["boot-option"], p["boot-value"]))
    kinds = {p["platform"]: p["boot-option"] for p in rt["platforms"]}
    for dev in rt["devices"]:
        if dev.get("dhcp-identity") != "mac" or not dev.get("mac") or not dev.get("address"):
            raise ValueError(f"device {dev['name']}: only MAC reservations can be written as dhcp-host")
        out.append(f"dhcp-host={dev['mac']},set:{dev['name']},{dev['address']},{dev['name']}")
        out.append(f"dhcp-option=tag:{dev['name']}," + boot_option(kinds[dev["platform"]], dev["boot-value"]))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: dhcp_dnsmasq.py RUNTIME_JSON OUT_CONF\n")
        return 2
    with open(argv[1]) as f:
        rt = json.load(f)
    try:
        text = derive(rt)
    except (KeyError, ValueError) as e:
        sys.stderr.write(f"dhcp_dnsmasq.py: {argv[1]}: {e}\n")
        return 1
    with open(argv[2], "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
