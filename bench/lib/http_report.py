#!/usr/bin/env python3
"""bench/http's report: per case and server the median, min and max over the rounds,
the ratio ours/nginx, server CPU, and the issue 5 targets; writes http.json and http.md.
Standard library only."""
import argparse
import json
import re
import statistics

NAMES = {"ours": "ztp-runtime", "peer": "nginx"}
UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def parse_wrk(text):
    """wrk's summary: requests, seconds, bytes read, requests/s, errors."""
    out = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s), ([\d.]+)([KMGT]?B) read", text)
    if m:
        secs = float(m.group(2)) * (0.001 if m.group(3) == "ms" else 1)
        out.update(requests=int(m.group(1)), seconds=secs, bytes=float(m.group(4)) * UNITS[m.group(5)])
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"client-cpu-s ([\d.]+) ([\d.]+)", text)
    if m:
        out["client_cpu_s"] = float(m.group(1)) + float(m.group(2))
    return out


def fmt(x, nd=1):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    for x in ("runs", "tools", "commands", "date", "json", "md", "small"):
        ap.add_argument("--" + x, required=True)
    ap.add_argument("--load", nargs=2, required=True)
    ap.add_argument("--cgroup", required=True)
    for x in ("rounds", "seconds", "big-bytes", "small-bytes"):
        ap.add_argument("--" + x, type=int, required=True)
    a = ap.parse_args()

    runs = []
    with open(a.runs) as f:
        for line in f:
            case, server, rnd, rc, cpu_us, output = line.rstrip("\n").split("\t", 5)
            text = output.replace("|", "\n")
            cpu_s = int(cpu_us) / 1e6 if cpu_us else None
            r = {"case": case, "server": server, "round": int(rnd), "exit": int(rc), "server_cpu_s": cpu_s,
                 "value": None, "errors": 0}
            if case == "image":
                m = re.search(r"size=(\d+) time=([\d.]+) code=(\d+)", text)
                if m and rc == "0" and int(m.group(1)) == a.big_bytes and m.group(3) == "200":
                    r.update(bytes=int(m.group(1)), seconds=float(m.group(2)),
                             value=int(m.group(1)) / float(m.group(2)) / 1e6)
                else:
                    r["errors"] = 1
            else:
                w = parse_wrk(text)
                r.update(w)
                r["errors"] = w.get("socket_errors", 0) + w.get("non_2xx", 0)
                if rc == "0" and "seconds" in w:
                    r["value"] = w["bytes"] / w["seconds"] / 1e6 if case == "image100" else w.get("rps")
            if r.get("bytes") and cpu_s is not None:
                r["server_cpu_ms_per_GiB"] = cpu_s * 1000 / (r["bytes"] / 1024 ** 3)
            if case == "script" and r.get("requests") and cpu_s is not None:
                r["server_cpu_us_per_request"] = cpu_s * 1e6 / r["requests"]
            if case == "script" and r.get("requests") and r.get("client_cpu_s") is not None:
                r["client_cpu_us_per_request"] = r["client_cpu_s"] * 1e6 / r["requests"]
            runs.append(r)

    cases = ["image", "image100", "script"]
    summary = {}
    for c in cases:
        summary[c] = {}
        for s in NAMES:
            rr = [r for r in runs if r["case"] == c and r["server"] == s]
            if not rr:
                continue
            v = [r["value"] for r in rr if r["value"] is not None]
            cpu_key = "server_cpu_us_per_request" if c == "script" else "server_cpu_ms_per_GiB"
            cpu = [r[cpu_key] for r in rr if r.get(cpu_key) is not None]
            summary[c][s] = {"runs": len(rr), "failed_runs": sum(1 for r in rr if r["value"] is None),
                             "errors": sum(r["errors"] for r in rr),
                             "median": statistics.median(v) if v else None,
                             "min": min(v) if v else None, "max": max(v) if v else None,
                             "cpu_median": statistics.median(cpu) if cpu else None, "cpu_unit": cpu_key}
        o, p = summary[c].get("ours"), summary[c].get("peer")
        if o and p and o["median"] and p["median"]:
            per_round = []
            for rnd in range(1, a.rounds + 1):
                x = [r["value"] for r in runs if r["case"] == c and r["round"] == rnd and r["server"] == "ours"]
                y = [r["value"] for r in runs if r["case"] == c and r["round"] == rnd and r["server"] == "peer"]
                if x and y and x[0] and y[0]:
                    per_round.append(x[0] / y[0])
            summary[c]["ratio"] = o["median"] / p["median"]
            summary[c]["ratio_per_round_min_max"] = [min(per_round), max(per_round)] if per_round else None

    ratio = lambda c: summary[c].get("ratio")
    targets = {
        "image_throughput_ge_1x_nginx": (ratio("image") or 0) >= 1.0,
        "image_throughput_ratio": ratio("image"),
        "image100_ratio": ratio("image100"),
        "script_rps_ge_2x_nginx": (ratio("script") or 0) >= 2.0,
        "script_rps_ratio": ratio("script"),
    }
    gib = a.big_bytes / 1024 ** 3
    what = {
        "image": (f"one download of the {gib:g} GiB image (curl)", "MB/s", "CPU ms per GiB"),
        "image100": (f"100 downloads of the image at once (wrk -c100, {a.seconds} s)", "MB/s", "CPU ms per GiB"),
        "script": (f"GET /{a.small} ({a.small_bytes:,} bytes), wrk -c50, {a.seconds} s", "requests/s", "CPU µs per request"),
    }
    md = [f"Median of {a.rounds} rounds and (min–max); ratio = median ztp-runtime / median nginx, with the range of "
          "the per-round ratios; server CPU (user + system, from a cpuacct cgroup per server) per unit of work, median. "
          "MB/s is 10^6 bytes per second.", "",
          "| case | unit | ztp-runtime | nginx | ours / nginx [per round] | server CPU ours / nginx | errors ours / nginx |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for c in cases:
        o, p = summary[c].get("ours"), summary[c].get("peer")
        cell = lambda x: f"{fmt(x['median'])} ({fmt(x['min'])}–{fmt(x['max'])})" if x else "–"
        pr = summary[c].get("ratio_per_round_min_max")
        rtxt = f"{ratio(c):.2f} [{pr[0]:.2f}–{pr[1]:.2f}]" if ratio(c) and pr else "–"
        title, unit, cpu_unit = what[c]
        md.append(f"| {title} | {unit} | {cell(o)} | {cell(p)} | {rtxt} | "
                  f"{fmt((o or {}).get('cpu_median'))} / {fmt((p or {}).get('cpu_median'))} ({cpu_unit}) | "
                  f"{(o or {}).get('errors', '–')} / {(p or {}).get('errors', '–')} |")
    md += ["", "Targets (issue 5):", ""]
    for key, c, want, name in (("image_throughput_ge_1x_nginx", "image", 1.0, "HTTP image throughput ≥ 1.0× nginx"),
                               ("script_rps_ge_2x_nginx", "script", 2.0, "small-file requests/s ≥ 2× nginx")):
        r = ratio(c)
        md.append(f"- {name}: **{'met' if targets[key] else 'missed'}** "
                  f"({'ratio ' + format(r, '.2f') if r else 'no figure'}).")
    if ratio("image100"):
        md.append(f"- 100 concurrent image downloads (no target): ratio {ratio('image100'):.2f}.")
    spread = [(summary[c][s]["max"] / summary[c][s]["min"], c, s) for c in cases for s in NAMES
              if summary[c].get(s) and summary[c][s]["min"]]
    if spread:
        sp, c, s = max(spread)
        if sp > 1.5:
            md.append(f"- The machine was noisy: the widest spread was {sp:.1f}× between the slowest and fastest run "
                      f"({NAMES[s]}, {c}). The servers alternate within each round, so the ratios (and the per-round "
                      "ratios) compare runs made under the same load; CPU per unit of work depends less on it.")
    # The bound on the small-file ratio: server and wrk share 2 CPUs, so when the CPUs are
    # the limit, requests/s ≈ 2 CPUs / (server + client CPU per request).
    def med(server, key):
        v = [r[key] for r in runs if r["case"] == "script" and r["server"] == server and r.get(key) is not None]
        return statistics.median(v) if v else None
    so, sp = med("ours", "server_cpu_us_per_request"), med("peer", "server_cpu_us_per_request")
    co, cp = med("ours", "client_cpu_us_per_request"), med("peer", "client_cpu_us_per_request")
    if so and sp and co and cp:
        need = (sp + cp) / 2 - co
        summary["script"]["cpu_bound"] = {"server_us": [so, sp], "client_us": [co, cp], "ours_needed_for_2x_us": need}
        md.append(f"- What bounds the small-file ratio: per request, ztp-runtime used {so:.1f} µs of CPU and nginx "
                  f"{sp:.1f} µs, and wrk itself {co:.1f} µs against ours and {cp:.1f} µs against nginx, on the same 2 "
                  f"CPUs. With the CPUs the limit, requests/s ≈ 2 CPUs / (server + client µs), so 2× nginx needs ours "
                  f"at ≤ {need:.1f} µs per request" + (" — less than nothing: out of reach on this machine whatever "
                  "the server does." if need <= 0 else f", {so / need:.1f}× less than now."))
    failed = [r for r in runs if r["value"] is None]
    if failed:
        md.append(f"- {len(failed)} runs failed (see `bench/results/http.log`); first: {failed[0]['case']} against "
                  f"{NAMES[failed[0]['server']]} (exit {failed[0]['exit']}).")

    with open(a.tools) as f:
        tools = dict(l.rstrip("\n").split("\t", 1) for l in f if l.strip())
    with open(a.commands) as f:
        commands = [l.rstrip("\n") for l in f if l.strip()]
    doc = {
        "title": "HTTP: ztp-runtime against nginx (sendfile)",
        "date": a.date, "tools": tools, "commands": commands,
        "commands_note": "$W is the scratch directory (the tree: bench/lib/files_tree.sh), $NS the network namespace "
                         "made for the run.",
        "notes": [
            f"{a.rounds} rounds; in each, every case runs against ztp-runtime and nginx one after the other "
            "(ztp-runtime first in odd rounds, nginx first in even ones). Both servers run for the whole benchmark "
            "on their own address of one namespace's loopback; curl and wrk run in the same namespace and share the "
            "machine's 2 CPUs with the server, so the client's own cost is part of every figure.",
            "nginx: sendfile on, tcp_nopush on, access_log off, keepalive_requests 100000, worker_processes auto "
            "(one per CPU), the stock mime.types; no open_file_cache: per request nginx opens, stats, sendfiles and "
            "closes the file and logs nothing. ztp-runtime: its defaults (tree files from memory, images streamed "
            "from disk); per request it also files a device event (a row in its SQLite store, written in batches "
            "by one writer off the request path) and counts the request in /metrics.",
            "Before timing, each server's copy of the image and of the script was downloaded and compared byte for "
            "byte with the file. wrk counts bytes of unfinished downloads too, so the 100-download figure is the "
            "aggregate rate over the run; its errors column counts socket errors and non-2xx answers.",
            "Server CPU is user + system time from a cpuacct cgroup made for each server (every thread; nginx's "
            "master and workers)" + ("." if a.cgroup == "yes" else ": not available on this machine, so not shown."),
            f"Load average (1/5/15 min) before: {a.load[0]}; after: {a.load[1]}. The machine is shared with other "
            "work (compilers, tests): treat single figures as rough and compare within a round.",
        ],
        "runs": runs, "summary": summary, "targets": targets,
    }
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
