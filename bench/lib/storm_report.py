#!/usr/bin/env python3
"""bench/storm's report: every emulated device's --record (completed or not, seconds,
platform), the emulators' exit codes, the fake controller's call counts and the
runtime's peak RSS; writes storm.json and storm.md. Standard library only."""
import argparse
import json
import os
import re

from stats import pct  # bench/lib/stats.py (the script's own directory is on sys.path)


def cause(reason):
    """A failure reason with the device's own name and addresses taken out, so that
    devices failing the same way count as one cause."""
    r = re.sub(r"\bdev\d+\b", "devN", reason or "no reason")
    return re.sub(r"\b10\.78\.\d+\.\d+\b", "ADDRESS", r)


def script_tail(r):
    """The last lines the device's script printed (where a "ZTP Failed" comes from)."""
    boots = r.get("boots") or []
    out = (boots[-1].get("output") or "") if boots else ""
    return [line for line in out.splitlines() if line.strip()][-3:]


def main():
    ap = argparse.ArgumentParser()
    for x in ("records", "exits", "tools", "commands", "date", "controller", "json", "md"):
        ap.add_argument("--" + x, required=True)
    ap.add_argument("--load", nargs=2, required=True)
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--wall", type=float, required=True)
    ap.add_argument("--setup", type=float, required=True)
    ap.add_argument("--vmhwm-kib", type=int, required=True)
    ap.add_argument("--vmrss-idle-kib", type=int, required=True)
    a = ap.parse_args()

    exits = {}
    with open(a.exits) as f:
        for line in f:
            dev, rc = line.split()
            exits[dev] = int(rc)
    per_platform, secs, errors = {}, [], []
    for dev in sorted(exits):
        path = os.path.join(a.records, dev + ".json")
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError):
            errors.append({"device": dev, "exit": exits[dev], "reason": "no record"})
            continue
        p = per_platform.setdefault(r["platform"], {"devices": 0, "completed": 0, "seconds": []})
        p["devices"] += 1
        if r.get("completed") and exits[dev] == 0:
            p["completed"] += 1
            p["seconds"].append(r["seconds"])
            secs.append(r["seconds"])
        else:
            errors.append({"device": dev, "exit": exits[dev], "platform": r["platform"], "reason": r.get("reason"),
                           "script_tail": script_tail(r)})
    with open(a.controller) as f:
        ctl = json.load(f)
    for p in per_platform.values():
        s = p.pop("seconds")
        p["p50_s"], p["max_s"] = pct(s, 50), (max(s) if s else None)
    tools = dict(line.rstrip("\n").split("\t", 1) for line in open(a.tools) if "\t" in line)
    commands = [line.rstrip("\n") for line in open(a.commands) if line.strip()]
    completed = len(secs)
    causes = {}
    for e in errors:
        c = cause(e.get("reason"))
        causes[c] = causes.get(c, 0) + 1
    causes = dict(sorted(causes.items(), key=lambda kv: -kv[1]))
    out = {
        "title": "Boot storm: emulated devices of every platform against one runtime",
        "date": a.date,
        "tools": tools,
        "commands": commands,
        "commands_note": "$W is the scratch directory; DEV, GIADDR, ADDRESS, MAC, P, S stand for each device's namespace, "
                         "relay address, address, MAC, platform and serial (device i: platform i mod 6).",
        "notes": [
            "Every device is a ztp-emulate process in its own network namespace, cabled to one bridge: a "
            "relayed DHCP exchange, the boot file over TFTP or HTTP, the real bootstrap script run with "
            "stubbed NOS commands, the agent request; done when the runtime's status API says completed.",
            "All devices are started at once; time to all-completed runs from the start of the first to "
            "the exit of the last. Setup (namespaces, veths) is not counted.",
            "Each emulated device runs its NOS's real script (bash or Python, curl, crypt) on this "
            "machine's %d CPUs, so the time to all-completed measures the emulators as much as the "
            "runtime; the runtime's own cost shows in its peak RSS and in zero errors." % (os.cpu_count() or 0),
            "The devices run under SCHED_IDLE (chrt --idle 0), so the runtime gets the CPU it asks for, as on "
            "a server of its own; each device's bridge port is isolated and has a permanent neighbour entry for "
            "the server, as on a segment of its own behind its relay (see bench/storm).",
            "Machine load before/after: %s / %s." % (a.load[0], a.load[1]),
        ],
        "cpus": os.cpu_count(),
        "devices": a.devices,
        "completed": completed,
        "errors": len(errors),
        "error_causes": causes,
        "error_samples": errors[:20],
        "all_completed_s": a.wall,
        "setup_s": a.setup,
        "device_seconds": {"p50": pct(secs, 50), "p90": pct(secs, 90), "max": max(secs) if secs else None},
        "per_platform": per_platform,
        "runtime_vmhwm_kib": a.vmhwm_kib,
        "runtime_vmrss_idle_kib": a.vmrss_idle_kib,
        "controller_calls": ctl.get("calls", {}),
    }
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    ds = out["device_seconds"]
    f3 = lambda v: "–" if v is None else "%.2f" % v
    md = [
        "| devices | completed | errors | time to all completed | device p50 / p90 / max | runtime peak RSS (idle) |",
        "|---|---|---|---|---|---|",
        "| %d | %d | %d | %.1f s | %s / %s / %s s | %.1f MiB (%.1f MiB) |" % (
            a.devices, completed, len(errors), a.wall, f3(ds["p50"]), f3(ds["p90"]), f3(ds["max"]),
            a.vmhwm_kib / 1024.0, a.vmrss_idle_kib / 1024.0),
        "",
        "| platform | devices | completed | p50 | max |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(per_platform):
        p = per_platform[name]
        md.append("| %s | %d | %d | %s s | %s s |" % (name, p["devices"], p["completed"], f3(p["p50_s"]), f3(p["max_s"])))
    md.append("")
    md.append("Controller calls: " + ", ".join("%s %d" % kv for kv in sorted(out["controller_calls"].items())) + ".")
    if errors:
        md.append("")
        md.append("Errors by cause: " + "; ".join("%d × %s" % (n, c) for c, n in causes.items()) + ".")
        md.append("")
        md.append("First errors: " + "; ".join("%s: %s" % (e["device"], e.get("reason")) for e in errors[:5]) + ".")
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
