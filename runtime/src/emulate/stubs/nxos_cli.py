"""Stub of NX-OS POAP's `cli` module (cli, clid, clip), for ztp-emulate.

Shows answer from the device's facts; `copy URL bootflash:/volatile:` really fetches
over HTTP; configuration, boot variables and the scheduled config are recorded in
commands.log (password hashes blanked).
"""
import hashlib
import json
import os
import re
import urllib.request

Z = "/run/ztp-emulate"
with open(os.path.join(Z, "facts.json")) as _f:
    FACTS = json.load(_f)


class cli_syntax_error(Exception):
    pass


class cmd_exec_error(Exception):
    pass


def _rec(text):
    text = re.sub(r"\$([0-9])\$[./A-Za-z0-9$]+", r"<$\1$ hash>", text).replace("\n", "\\n")
    with open(os.path.join(Z, "commands.log"), "a") as f:
        f.write(text + "\n")


def _path(dest):
    fs, _, name = dest.partition(":")
    if fs not in ("bootflash", "volatile") or not name or "/" in name.strip("/"):
        raise cmd_exec_error("% Invalid destination " + dest)
    os.makedirs("/" + fs, exist_ok=True)
    return "/%s/%s" % (fs, name.strip("/"))


def _one(cmd):
    cmd = cmd.strip()
    if cmd in ("terminal dont-ask", "configure terminal", "end"):
        return ""
    if cmd == "show version":
        return json.dumps({"nxos_ver_str": FACTS["version"], "proc_board_id": FACTS["serial"],
                           "chassis_id": "Nexus9000 %s Chassis" % FACTS["model"].replace("N9K-", "")})
    if cmd == "show inventory":
        return json.dumps({"TABLE_inv": {"ROW_inv": [{"name": "Chassis", "productid": FACTS["model"],
                                                      "serialnum": FACTS["serial"]}]}})
    if cmd == "show interface mgmt0":
        return json.dumps({"TABLE_interface": {"ROW_interface": {
            "interface": "mgmt0", "eth_ip_addr": FACTS["ip"], "eth_ip_mask": FACTS["prefix"],
            "eth_hw_addr": FACTS["mac"]}}})
    m = re.match(r"^copy (\S+) (\S+)(?: vrf \S+)?$", cmd)
    if m:
        src, dest = m.groups()
        if src.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(src, timeout=60) as r:
                    body = r.read()
            except Exception as exc:
                raise cmd_exec_error("%% Copy failed: %s" % exc)
            with open(_path(dest), "wb") as f:
                f.write(body)
            return "Copy complete."
        if dest == "scheduled-config":
            with open(_path(src)) as f:
                for line in f.read().splitlines():
                    _rec("scheduled-config: " + line)
            return "Copy complete."
        if src == "running-config" and dest == "startup-config":
            return "Copy complete."
        raise cmd_exec_error("% Invalid copy " + cmd)
    m = re.match(r"^boot nxos (bootflash:\S+)$", cmd)
    if m:
        path = _path(m.group(1))
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else "missing"
        _rec("image: %s sha256=%s" % (path, digest))
        return ""
    m = re.match(r"^show file (bootflash:\S+) (md5|sha256)sum$", cmd)
    if m:
        with open(_path(m.group(1)), "rb") as f:
            return hashlib.new(m.group(2), f.read()).hexdigest()
    if cmd.startswith(("username ", "feature ")):
        return ""
    raise cli_syntax_error("% Invalid command at '^' marker: " + cmd)


def cli(command):
    # Report and agent URLs carry only facts; they are recorded like any command.
    _rec("cli " + command)
    return "\n".join(_one(c) for c in command.split(" ; "))


def clid(command):
    _rec("clid " + command)
    return _one(command)


def clip(command):
    print(cli(command))
