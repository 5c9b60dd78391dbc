#!/usr/bin/env python3
"""bench/reload's report: reload latencies (driver), wrk's counters and body checks
(reload_check.lua), and the runtime's own "reloaded" log lines; writes reload.json and
reload.md. Standard library only."""
import argparse
import json
import re
import statistics

from stats import pct  # bench/lib/stats.py (the script's own directory is on sys.path)


def main():
    ap = argparse.ArgumentParser()
    for x in ("index", "tools", "commands", "date", "json", "md"):
        ap.add_argument("--" + x, required=True)
    ap.add_argument("--load", nargs=2, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--quiet", type=int, required=True)
    ap.add_argument("--gap-ms", type=int, required=True)
    a = ap.parse_args()

    fabrics = {}
    with open(a.index) as f:
        for line in f:
            name, drv, wrk, log, hwm, sizes, quiet, quiet_lines = line.rstrip("\n").split("\t")
            d = json.load(open(drv))
            q = json.load(open(quiet))
            qrel = [r["reload_ms"] for r in q["reloads"] if r["reload_ms"] is not None]
            # The runtime's "reloaded" lines: before `quiet_lines`, the reloads without wrk.
            logged = {"quiet": [], "loaded": []}
            rel = [r["reload_ms"] for r in d["reloads"] if r["reload_ms"] is not None]
            build = [r["build_ms"] for r in d["reloads"]]
            w = None
            with open(wrk) as g:
                wtext = g.read()
            m = re.search(r"^RELOAD_CHECK (\{.*\})$", wtext, re.M)
            if m:
                w = json.loads(m.group(1))
            load_ms, refused, reasons = [], 0, {}
            with open(log, errors="replace") as g:
                for i, l in enumerate(g):
                    try:
                        j = json.loads(l)
                    except ValueError:
                        continue
                    msg = j.get("fields", {}).get("message", "")
                    if msg.startswith("reloaded"):
                        if i >= int(quiet_lines):
                            load_ms.append(j["fields"].get("ms"))
                        logged["quiet" if i < int(quiet_lines) else "loaded"].append(j["fields"])
                    elif "refused" in msg and "reload" in msg:
                        refused += 1
                        rs = str(j["fields"].get("reason", "?"))
                        reasons[rs] = reasons.get(rs, 0) + 1
            load_ms = [x for x in load_ms if x is not None]
            failed = None
            if w:
                failed = (w["bad"] + w["connect_errors"] + w["read_errors"] + w["write_errors"]
                          + w["timeouts"] + w["status_errors"])
            fabrics[name] = {
                "reloads": len(d["reloads"]),
                "reloads_seen": len(rel),
                "reload_ms": {"p50": pct(rel, 50), "p99": pct(rel, 99), "max": max(rel) if rel else None,
                              "min": min(rel) if rel else None},
                "quiet_reloads": len(q["reloads"]),
                "quiet_reloads_seen": len(qrel),
                "quiet_reload_ms": {"p50": pct(qrel, 50), "p99": pct(qrel, 99), "max": max(qrel) if qrel else None},
                "quiet_driver_failures": q["failures"],
                "runtime_log_medians": {
                    part: {k: statistics.median([x[k] for x in xs if x.get(k) is not None] or [0])
                           for k in ("ms", "manifest_ms", "files_ms", "hashed", "hashed_kb", "reused")}
                    for part, xs in logged.items()},
                "ztpc_build_ms_median": statistics.median(build) if build else None,
                "runtime_load_ms_logged": {"n": len(load_ms), "p50": pct(load_ms, 50), "p99": pct(load_ms, 99),
                                           "max": max(load_ms) if load_ms else None},
                "refused_reloads_logged": refused,
                "refusal_reasons": reasons,
                "swap_not_seen": sum(1 for r in d["reloads"] if not r.get("swap_seen", True)),
                "bodies_after_switch_ok": sum(1 for r in d["reloads"] if r.get("body_ok")),
                "driver_failures": d["failures"],
                "wrk": w,
                "wrk_requests_per_s": (w["requests"] / (w["duration_us"] / 1e6)) if w and w["duration_us"] else None,
                "failed_or_mixed_responses": failed,
                "server_vmhwm_kib": int(hwm or 0),
                "ztp_json_bytes_a_b": sizes,
                "per_reload": d["reloads"],
            }

    with open(a.tools) as f:
        tools = dict(l.rstrip("\n").split("\t", 1) for l in f if l.strip())
    with open(a.commands) as f:
        commands = [l.rstrip("\n") for l in f if l.strip()]
    targets = {}
    for n, r in fabrics.items():
        targets[n] = {
            "p99_le_100ms": r["reload_ms"]["p99"] is not None and r["reload_ms"]["p99"] <= 100
                            and r["reloads_seen"] == r["reloads"],
            "zero_failed_or_mixed": r["failed_or_mixed_responses"] == 0 and not r["driver_failures"],
        }
    doc = {
        "title": "Reload: artifact rebuild to new generation served, under wrk load",
        "date": a.date,
        "tools": tools,
        "commands": commands,
        "commands_note": "$W is the scratch directory, $NS the network namespace made for the run.",
        "notes": [
            f"{a.count} reloads per fabric, alternating fabric B and A, {a.gap_ms} ms apart; the runtime runs with its "
            "defaults (reload debounce 50 ms, DHCP, TFTP and HTTP enabled) on the namespace's loopback.",
            "Reload latency: from the atomic swap of the served directory (the moment its path names a new inode, "
            "stat polled every 0.5 ms while `ztpc build` runs; ztpc then still deletes the old tree, at nice 19) to the "
            "first GET /api/ztp/services answer naming the new generation (polled every 0.5 ms on one keep-alive "
            "connection: a poller that never sleeps takes a CPU from the reload it times). It includes the runtime's notice of the swap (a rename of the watched directory is loaded at "
            "once, not after the 50 ms debounce), the load and check of the new directory, and the swap; the runtime's "
            "own log gives the load-and-swap part.",
            f"Without load: before wrk starts, {a.quiet} reloads of the same fabrics, the same way, with the CPUs to "
            "the runtime, the driver and ztpc.",
            "Failed or mixed responses: wrk's socket errors and timeouts, plus every response that is not status 200 "
            "with a body byte-identical to fabric A's or B's ztp.json (checked in wrk's Lua response hook), plus "
            "responses whose ETag was seen before with the other body.",
            "wrk, the runtime, the driver and ztpc share the machine's CPUs.",
        ],
        "count": a.count,
        "fabrics": fabrics,
        "targets": targets,
        "load_average_before_after": a.load,
    }
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)

    def ms(x):
        return "–" if x is None else f"{x:.1f}"

    md = [f"{a.count} rebuilds of the served artifact directory under wrk load on GET /ztp.json:", "",
          "| fabric | reload p50 / p99 / max (ms) | runtime load+swap p50 / p99 (ms, its log) | without load: reload p50 / p99 (ms) "
          "| ztpc build (ms, median) | wrk requests (req/s) | failed or mixed responses | bodies A / B | after-switch body right |",
          "|---|---|---|---|---|---|---|---|---|"]
    for n, r in fabrics.items():
        label = "examples/dc1" if n == "dc1" else f"{int(n):,}-device gen-fabric"
        w = r["wrk"] or {}
        rl, lg = r["reload_ms"], r["runtime_load_ms_logged"]
        ql = r["quiet_reload_ms"]
        md.append(f"| {label} | {ms(rl['p50'])} / {ms(rl['p99'])} / {ms(rl['max'])} | {ms(lg['p50'])} / {ms(lg['p99'])} "
                  f"| {ms(ql['p50'])} / {ms(ql['p99'])} | {ms(r['ztpc_build_ms_median'])} | {w.get('requests', 0):,} ({r['wrk_requests_per_s'] or 0:,.0f}) "
                  f"| {r['failed_or_mixed_responses']} | {w.get('body_a', 0):,} / {w.get('body_b', 0):,} "
                  f"| {r['bodies_after_switch_ok']} of {r['reloads_seen']} |")
    md += ["", "Where a load's time goes, from the runtime's log (medians over each run's reloads; runtime.json is "
           "parsed while the tree's directories are read to find the files the generation before checked, then files are hashed or taken over):", ""]
    md += ["| fabric | run | load+swap (ms) | runtime.json and directory pass (ms) | files (ms) | files hashed (kB) | files taken over |",
           "|---|---|---|---|---|---|---|"]
    for n, r in fabrics.items():
        label = "examples/dc1" if n == "dc1" else f"{int(n):,} devices"
        for part, name in (("quiet", "without load"), ("loaded", "under wrk")):
            x = r["runtime_log_medians"][part]
            md.append(f"| {label} | {name} | {ms(x['ms'])} | {ms(x['manifest_ms'])} | {ms(x['files_ms'])} "
                      f"| {x['hashed']:,.0f} ({x['hashed_kb']:,.0f}) | {x['reused']:,.0f} |")
    md += ["", "Failure detail (wrk): " + "; ".join(
        f"{n}: non-200 {(r['wrk'] or {}).get('non200')}, wrong body {((r['wrk'] or {}).get('bad', 0) - (r['wrk'] or {}).get('non200', 0))}, "
        f"ETag mismatches {(r['wrk'] or {}).get('etag_mismatch')}, connect/read/write errors "
        f"{(r['wrk'] or {}).get('connect_errors')}/{(r['wrk'] or {}).get('read_errors')}/{(r['wrk'] or {}).get('write_errors')}, "
        f"timeouts {(r['wrk'] or {}).get('timeouts')}; refused reloads in the log {r['refused_reloads_logged']}"
        for n, r in fabrics.items()) + ".", ""] + [
        f"Refused reloads ({n}): " + "; ".join(f"{c}× {k}" for k, c in r["refusal_reasons"].items()) + "."
        for n, r in fabrics.items() if r["refusal_reasons"]] + ["", "Targets (issue 3 and 5: reload ≤ 100 ms p99, zero failed or mixed responses):", ""]
    for n, t in targets.items():
        r = fabrics[n]
        md.append(f"- {n}: p99 ≤ 100 ms **{'met' if t['p99_le_100ms'] else 'missed'}** ({ms(r['reload_ms']['p99'])} ms); "
                  f"zero failed or mixed **{'met' if t['zero_failed_or_mixed'] else 'missed'}** "
                  f"({r['failed_or_mixed_responses']}{', driver: ' + '; '.join(r['driver_failures']) if r['driver_failures'] else ''}).")
        if not t["p99_le_100ms"]:
            ql, x = r["quiet_reload_ms"], r["runtime_log_medians"]["loaded"]
            md.append(f"  What bounds it: CPU. Without load the same reloads take p50 {ms(ql['p50'])} / p99 {ms(ql['p99'])} ms. "
                      f"Each load hashes the files the edit changed ({x['hashed']:,.0f}, {x['hashed_kb']:,.0f} kB), "
                      f"reads the tree's directories to take over the other {x['reused']:,.0f}, "
                      "and parses runtime.json; under wrk it shares the machine's 2 CPUs with wrk, the "
                      "runtime's own HTTP workers answering wrk, the driver's polling and ztpc.")
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
