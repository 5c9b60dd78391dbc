#!/usr/bin/env python3
"""Write the fabric that bench/dhcp serves with every server (deterministic, stdlib only).

    dhcp_fabric.py DIR [DEVICES]

DIR/fabric.kdl: one /16 subnet 10.99.0.0/16 whose router, 10.99.0.2, is the relay
address perfdhcp uses (so giaddr selects the subnet in every server without extra
configuration), a pool 10.99.1.0-10.99.255.254 (65,279 addresses) and DEVICES (default
48) reserved devices in 10.99.0.100 and up, identified by MAC (52:54:00:99:xx:xx, never
a perfdhcp MAC), over the six platforms. The ZTP server is 10.99.0.10. Secrets come from
files under DIR/secrets/.
"""
import os
import sys

PLATFORMS = ["junos", "junos-evo", "eos", "nxos", "sonic", "cumulus"]
SECRETS = {"root-password": "bench-root-password", "device-password": "bench-device-password"}


def text(n):
    out = [
        f"// Written by bench/lib/dhcp_fabric.py {n}: the DHCP benchmark's fabric. Do not edit.",
        'fabric "benchdhcp" {',
        '    ztp-server "10.99.0.10" http-port=80',
        "",
        "    dhcp {",
        '        domain-name "bench.example.net"',
        '        dns "10.99.0.53"',
        '        ntp "10.99.0.123"',
        "        lease-time 7200 max=9200",
        "",
        '        subnet "10.99.0.0/16" {',
        '            router "10.99.0.2"',
        '            pool "10.99.1.0" "10.99.255.254"',
        "        }",
        "    }",
        "",
        "    defaults {",
        '        root-password (file)"secrets/root-password"',
        '        device-user "aosadmin" password=(file)"secrets/device-password"',
        "    }",
        "",
    ]
    for i in range(n):
        p = PLATFORMS[i % len(PLATFORMS)]
        out += [
            f'    device "leaf{i:03d}" platform="{p}" {{',
            f'        mac "52:54:00:99:{i >> 8:02x}:{i & 255:02x}"',
            f'        address "10.99.0.{100 + i}"',
            "    }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: dhcp_fabric.py DIR [DEVICES]\n")
        return 2
    d, n = argv[1], int(argv[2]) if len(argv) == 3 else 48
    if not 1 <= n <= 150:
        sys.stderr.write("dhcp_fabric.py: DEVICES must be 1..150\n")
        return 2
    os.makedirs(os.path.join(d, "secrets"), exist_ok=True)
    for name, value in sorted(SECRETS.items()):
        path = os.path.join(d, "secrets", name)
        with open(path, "w", encoding="ascii") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
    with open(os.path.join(d, "fabric.kdl"), "w", encoding="ascii") as f:
        f.write(text(n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
