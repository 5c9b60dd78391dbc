#!/usr/bin/env python3
"""bench/dhcp's report: parse every perfdhcp output, write dhcp.json and dhcp.md.

A run's "drops" are perfdhcp's DISCOVER-OFFER drops plus REQUEST-ACK drops. A rate step
is clean for a server when the median of its runs' drops is 0; the server's figure is the
highest clean step (steps a server ran only for its latency, after it had been stopped by
the 1 % rule, do not count). Latency comes from perfdhcp -x t (the sent and received
timestamps of every completed exchange, at the latency step and below): p50/p99 per run,
then the median over runs. Ratios ours/peer are given for every peer; the issue's target
is judged against Kea's best configuration. Standard library only.
"""
import argparse
import json
import re
import statistics

NAMES = {"ours": "ztp-runtime", "kea": "Kea 2.2 memfile, 1 thread", "kea-mt": "Kea 2.2 memfile, multi-threaded (2)",
         "dhcpd": "ISC dhcpd (lease file)", "dnsmasq": "dnsmasq (lease file)"}
# For the title (the versions are in the tools list).
PRODUCTS = {"ours": "ztp-runtime", "kea": "Kea 2.2", "kea-mt": "Kea 2.2", "dhcpd": "ISC dhcpd", "dnsmasq": "dnsmasq"}
KEA = ("kea", "kea-mt")
SKIP_PCT = 1.0


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def parse(path):
    out = {"exchanges": {}, "latency": {}}
    section, ts = None, None
    num = r"([-0-9.eE+]+)"
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"\*\*\*Statistics for: (\S+)\*\*\*", line)
            if m:
                section, ts = m.group(1), None
                out["exchanges"][section] = {}
                continue
            m = re.match(r"\*\*\*Timestamps for packets: (\S+)\*\*\*", line)
            if m:
                ts, section = m.group(1), None
                out["latency"][ts] = []
                continue
            m = re.match(r"Rate: " + num, line)
            if m:
                out["rate_reported"] = float(m.group(1))
                continue
            if ts is not None:
                m = re.match(r"sent / received: " + num + " / " + num, line)
                if m:
                    out["latency"][ts].append((float(m.group(2)) - float(m.group(1))) * 1000.0)
                continue
            if section is not None:
                m = re.match(r"(sent packets|received packets|drops|drops ratio|orphans|rejected leases|"
                             r"min delay|avg delay|max delay|std deviation): " + num, line)
                if m:
                    out["exchanges"][section][m.group(1).replace(" ", "_")] = float(m.group(2))
    return out


def fmt(x, nd=0):
    if x is None:
        return "–"
    return f"{x:,.{nd}f}"


def median_or_none(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def latency_at(runs, s, rate):
    """Median over runs of each run's p50/p99/max per exchange, at one step; None without data."""
    lat = [x for x in runs if x["server"] == s and x["rate"] == rate and x.get("latency_ms")]
    if not lat:
        return None
    return {ex: {k: statistics.median(x["latency_ms"][ex][k] for x in lat if ex in x["latency_ms"])
                 for k in ("p50", "p99", "max")}
            for ex in ("DISCOVER-OFFER", "REQUEST-ACK") if any(ex in x["latency_ms"] for x in lat)}


def main():
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "--rerender":
        with open(sys.argv[2]) as f:
            doc = json.load(f)
        render(doc, sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    for a in ("runs", "tools", "commands", "date", "rates", "servers", "json", "md"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--slow", default="")
    ap.add_argument("--wall-seconds", type=int)
    ap.add_argument("--load", nargs=2, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--lat-rate", type=int, required=True)
    a = ap.parse_args()

    rates = [int(x) for x in a.rates.split()]
    servers = a.servers.split()
    slow = [s for s in a.slow.split() if s in servers]
    runs = []
    with open(a.runs) as f:
        for line in f:
            f = line.rstrip("\n").split("\t")
            s, rate, rnd, rc, cpu_ms, hwm, threads, path = f[:8]
            rcvbuf, server_sock, layout, lat_only, wall = (f[8:13] + [""] * 5)[:5]
            p = parse(path)
            do, ra = p["exchanges"].get("DISCOVER-OFFER", {}), p["exchanges"].get("REQUEST-ACK", {})
            acks = ra.get("received_packets", 0)
            run = {
                "server": s, "rate": int(rate), "round": int(rnd), "perfdhcp_exit": int(rc),
                "layout": layout or "lo", "latency_only": lat_only == "1",
                "wall_s": float(wall) if wall else None,
                "server_cpu_ms": int(cpu_ms), "server_vmhwm_kib": int(hwm or 0), "server_threads": int(threads or 0),
                "rate_reported_by_perfdhcp": p.get("rate_reported"),
                "discover_offer": do, "request_ack": ra,
                "drops": int(do.get("drops", 0) + ra.get("drops", 0)),
                "drop_pct": 100.0 * (do.get("drops", 0) + ra.get("drops", 0)) / max(1, do.get("sent_packets", 0) + ra.get("sent_packets", 0)),
                "acks_per_s": acks / a.duration,
                "server_cpu_us_per_exchange": (int(cpu_ms) * 1000.0 / acks) if acks else None,
                # Receive-buffer overflows in the namespaces (any socket), and the server's UDP socket's.
                "rcvbuf_overflows": int(rcvbuf) if rcvbuf.strip() else None,
                "server_socket_drops": int(server_sock) if server_sock.strip() else None,
            }
            for ex, vals in p["latency"].items():
                v = sorted(vals)
                if v:
                    run.setdefault("latency_ms", {})[ex] = {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "max": v[-1]}
            runs.append(run)

    steps = {}
    best = {}
    for s in servers:
        steps[s] = {}
        for r in rates:
            rr = [x for x in runs if x["server"] == s and x["rate"] == r]
            if not rr:
                continue
            d = [x["drops"] for x in rr]
            steps[s][r] = {
                "runs": len(rr),
                "latency_only": all(x["latency_only"] for x in rr),
                "layout": rr[0]["layout"],
                "drops_median": statistics.median(d),
                "drop_pct_median": statistics.median(x["drop_pct"] for x in rr),
                "drop_pct_min": min(x["drop_pct"] for x in rr),
                "drop_pct_max": max(x["drop_pct"] for x in rr),
                "acks_per_s_median": statistics.median(x["acks_per_s"] for x in rr),
                "clean": statistics.median(d) == 0,
                "clean_runs": sum(1 for x in d if x == 0),
                "server_cpu_us_per_exchange_median": median_or_none(x["server_cpu_us_per_exchange"] for x in rr),
            }
        # The climb: steps run under the 1 % rule (not those run for the latency only).
        ran = [r for r in rates if r in steps[s] and not steps[s][r]["latency_only"]]
        clean = [r for r in ran if steps[s][r]["clean"]]
        top = clean[-1] if clean else None
        best[s] = {
            "highest_clean_rate": top,
            "first_unclean_rate": next((r for r in ran if not steps[s][r]["clean"]), None),
            "saturated": any(not steps[s][r]["clean"] for r in ran),
            "stopped_at": next((r for r in ran if steps[s][r]["drop_pct_median"] >= SKIP_PCT), None),
            "clean_below_top": all(steps[s][r]["clean"] for r in ran if top is not None and r <= top),
            "layout": next(iter(steps[s].values()))["layout"] if steps[s] else None,
        }
        lat = latency_at(runs, s, a.lat_rate)
        if lat:
            best[s]["latency_ms_at_%d" % a.lat_rate] = lat
            st = steps[s][a.lat_rate]
            best[s]["at_latency_rate"] = {k: st[k] for k in ("clean", "drop_pct_median", "acks_per_s_median", "latency_only")}
        # A server not clean at the latency step: its latency at its highest clean step too.
        if top and top < a.lat_rate and not (a.lat_rate in steps[s] and steps[s][a.lat_rate]["clean"]):
            lc = latency_at(runs, s, top)
            if lc:
                best[s]["latency_ms_at_highest_clean"] = {"rate": top, "latency": lc}
        best[s]["server_vmhwm_kib_max"] = max((x["server_vmhwm_kib"] for x in runs if x["server"] == s), default=None)
        best[s]["server_threads"] = max((x["server_threads"] for x in runs if x["server"] == s), default=None)

    # CPU per exchange, compared at the highest step every fast server ran clean (the
    # server's idle background CPU is included, so lower rates overstate it); a slow server
    # (which does not reach that step) at its own highest clean step, labelled.
    fast = [s for s in servers if s not in slow] or servers
    common = [r for r in rates if all(r in steps[s] and steps[s][r]["clean"] for s in fast)]
    cpu_rate = common[-1] if common else None
    for s in servers:
        at = cpu_rate if cpu_rate in steps[s] and steps[s][cpu_rate]["clean"] else best[s]["highest_clean_rate"]
        best[s]["cpu_rate"] = at
        best[s]["server_cpu_us_per_exchange"] = steps[s][at]["server_cpu_us_per_exchange_median"] if at else None

    def ratio(x, y):
        return (x / y) if x and y else None

    kea_best_name = max((k for k in KEA if k in best), key=lambda k: best[k]["highest_clean_rate"] or 0, default=None)
    ours = best.get("ours", {}).get("highest_clean_rate")
    ratios = {f"ours/{k}": ratio(ours, best[k]["highest_clean_rate"]) for k in servers if k != "ours"}
    notes_bound = []
    top_rate = max(rates)
    for s in servers:
        if best[s]["highest_clean_rate"] and not best[s]["saturated"]:
            notes_bound.append(f"{NAMES.get(s, s)} was clean at every step it ran, up to {best[s]['highest_clean_rate']:,}/s "
                               f"(the highest step is {top_rate:,}/s), so its figure, and any ratio over it, is a bound.")

    with open(a.tools) as f:
        tools = dict(l.rstrip("\n").split("\t", 1) for l in f if l.strip())
    with open(a.commands) as f:
        commands = [l.rstrip("\n") for l in f if l.strip()]
    products = list(dict.fromkeys(PRODUCTS.get(s, s) for s in servers))
    names = " and ".join(filter(None, [", ".join(products[:-1]), products[-1]]))
    low = [r for r in rates if any(r in steps[s] for s in slow) and not any(r in steps[s] for s in fast)]
    notes = [
        f"Rate steps {', '.join(f'{r:,}' for r in rates)}/s, {a.duration} s each, {a.rounds} rounds; every run has a fresh "
        "server process and a fresh state directory or lease file. Servers alternate within a round "
        "(reversed order on even rounds). A server whose median drop rate over a step's rounds reached 1 % is not run "
        f"at higher steps, except at {a.lat_rate:,}/s, which every server runs for its latency (\"latency only\")."
        + (f" The steps {', '.join(f'{r:,}' for r in low)}/s are run only by the servers that saturate low "
           f"({', '.join(PRODUCTS.get(s, s) for s in slow)})." if low and slow else ""),
        f"perfdhcp acts as a relay (giaddr 10.99.0.2), {a.clients:,} distinct clients (-R); perfdhcp and the server "
        "share the machine's CPUs, so at high rates perfdhcp itself competes for CPU. ztp-runtime and Kea run on one "
        "namespace's loopback; ISC dhcpd (LPF refuses a loopback device) and dnsmasq (it binds 0.0.0.0:67, where the "
        "relay's socket is) run behind a veth pair between two namespaces, with the same addresses.",
        "Drops are perfdhcp's DISCOVER-OFFER plus REQUEST-ACK drops; a step is clean when the median over the runs is 0. "
        "ACKs/s is REQUEST-ACK replies received divided by the sending time; perfdhcp's own \"Rate\" line also counts "
        "the 1 s -W wait at the end, so it reads low.",
        "Every server persists pool leases (ztp-runtime: its state directory; Kea: memfile CSV, lfc-interval 0; "
        "ISC dhcpd: its lease file, appended and fsynced for each lease; dnsmasq: its lease file, truncated, "
        "rewritten and fsynced on every change; both seen with strace -c). Each logs at its configured default: ztp-runtime one JSON line per reply to a file; Kea and ISC "
        "dhcpd to syslog as our configurations say, dnsmasq to syslog, and no syslog daemon runs here, so their "
        "per-lease log lines cost them almost nothing.",
        "ISC dhcpd serves our dhcpd.conf with `ping-check false;` appended, and dnsmasq runs with --no-ping: both "
        "ping an address before offering it by default (a 1 s wait), which Kea and ztp-runtime do not do. dnsmasq's "
        "configuration is derived from the same build's runtime.json by bench/lib/dhcp_dnsmasq.py (ztpc writes none).",
        "Before timing, each server answered a functional probe: a relayed DORA for a reserved device (its address "
        "and boot file) and for an unknown MAC (a pool address and the router), then perfdhcp -n 10 with no drop.",
        "Server CPU per exchange is the server's user+system CPU time over the run (from /proc/PID/stat) divided "
        "by the ACKs, at the highest step every fast server ran clean (a slow server: at its own highest clean step, "
        "as marked); it includes the server's idle background CPU, which weighs more at low rates.",
    ] + notes_bound
    doc = {
        "title": f"DHCP: perfdhcp in relay mode against {names}",
        "date": a.date,
        "tools": tools,
        "commands": commands,
        "commands_note": "$W is the scratch directory, $NS the loopback namespace (ztp-runtime, Kea), $PNS and $CNS the "
                         "server's and perfdhcp's namespaces joined by the veth pair VS-VC (ISC dhcpd, dnsmasq), $CLI "
                         "perfdhcp's namespace ($NS or $CNS), RUN one run's directory; RATE is each rate step.",
        "notes": notes,
        "rounds": a.rounds, "duration_s": a.duration, "clients": a.clients, "latency_rate": a.lat_rate,
        "rates": rates, "slow_servers": slow, "servers": {s: NAMES.get(s, s) for s in servers},
        "best": best, "ratios": ratios, "kea_best_configuration": kea_best_name,
        "load_average_before_after": a.load,
        "wall_seconds": a.wall_seconds,
        "steps": {s: {str(r): v for r, v in st.items()} for s, st in steps.items()},
        "runs": runs,
    }
    render(doc, a.json, a.md)


def render(doc, json_path, md_path):
    """dhcp.json's derived figures and dhcp.md (also run alone: dhcp_report.py --rerender JSON MD).

    Besides each server's highest clean step, the conservative figure: the highest step
    below its first unclean step. The targets are judged on the conservative figures, since
    on this noisy machine a server can be unclean at one step and clean at a higher one."""
    rates, servers = doc["rates"], list(doc["servers"])
    best, steps = doc["best"], doc["steps"]
    lat_rate, rounds = doc["latency_rate"], doc["rounds"]
    name = doc["servers"]
    for s in servers:
        ran = [r for r in rates if str(r) in steps[s] and not steps[s][str(r)].get("latency_only")]
        first_bad = next((r for r in ran if not steps[s][str(r)]["clean"]), None)
        below = [r for r in ran if (first_bad is None or r < first_bad) and steps[s][str(r)]["clean"]]
        best[s]["conservative_clean_rate"] = below[-1] if below else None
        best[s]["not_run_above"] = ran[-1] if ran and ran[-1] != rates[-1] else None
    kea = [k for k in KEA if k in best]
    kea_best_name = max(kea, key=lambda k: best[k]["conservative_clean_rate"] or 0, default=None)
    ours_c = best.get("ours", {}).get("conservative_clean_rate")
    kea_c = best[kea_best_name]["conservative_clean_rate"] if kea_best_name else None
    doc["kea_best_configuration_conservative"] = kea_best_name
    doc["ratios_conservative"] = {f"ours/{k}": (ours_c / best[k]["conservative_clean_rate"])
                                  if ours_c and best[k]["conservative_clean_rate"] else None
                                  for k in servers if k != "ours"}
    doc["targets"] = {
        "issue3_clean_rate_at_least_kea": None if not (ours_c and kea_c) else ours_c >= kea_c,
        "issue5_clean_rate_at_least_1.5x_kea_best": None if not (ours_c and kea_c) else ours_c >= 1.5 * kea_c,
        "judged_on": "conservative figures (highest clean step below the first unclean step), against Kea's best "
                     "configuration; the ratios over ISC dhcpd and dnsmasq are reported, not targets",
    }
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)

    # Table 1: clean rates and ratios.
    md = [f"Highest perfdhcp rate with no drops (a step is clean when the median of its {rounds} runs dropped nothing), "
          "and in brackets the conservative figure (the highest clean step below the server's first unclean step); "
          "ratios ours / this server on both figures:", "",
          "| server | highest clean rate (/s) [conservative] | ours / this [conservative] "
          "| server CPU per exchange (µs) | threads | peak RSS (MiB) |",
          "|---|---|---|---|---|---|"]
    ours = best.get("ours", {})
    for s in servers:
        b = best[s]
        top, cons = b["highest_clean_rate"], b["conservative_clean_rate"]
        tops = (f"{top:,}" if top else "none") + (f" [{cons:,}]" if cons else " [none]")
        if top and not b["saturated"]:
            tops = "≥ " + tops
        if s == "ours":
            rt = "–"
        else:
            r1 = (ours.get("highest_clean_rate") or 0) / top if top else None
            r2 = (ours.get("conservative_clean_rate") or 0) / cons if cons else None
            rt = ("–" if r1 is None else f"{r1:.2f}") + " [" + ("–" if r2 is None else f"{r2:.2f}") + "]"
        cpu = fmt(b.get("server_cpu_us_per_exchange"), 1) + (f" (at {b['cpu_rate']:,}/s)" if b.get("cpu_rate") else "")
        md.append(f"| {name[s]} | {tops} | {rt} | {cpu} | {b['server_threads']} | "
                  f"{fmt((b['server_vmhwm_kib_max'] or 0) / 1024, 1)} |")

    # Table 2: latency at the latency step, with the drops there; and at the highest clean
    # step for a server that is not clean at the latency step.
    md += ["", f"Exchange latency at {lat_rate:,}/s (median over runs of each run's p50 / p99, in ms), with that step's "
           "median drop rate and ACKs/s. A server that cannot sustain it is marked, and its latency at its highest "
           "clean step is given as well (there it answers everything, so the figures compare):", "",
           "| server | at | DISCOVER→OFFER p50 / p99 | REQUEST→ACK p50 / p99 | drops | ACKs/s |",
           "|---|---|---|---|---|---|"]
    for s in servers:
        b = best[s]
        lat = b.get("latency_ms_at_%d" % lat_rate)
        l = lambda L, ex: (f"{L[ex]['p50']:.3f} / {L[ex]['p99']:.3f}" if L and ex in L else "–")
        st = steps[s].get(str(lat_rate))
        if st:
            label = f"{lat_rate:,}/s" + ("" if st["clean"] else (" (not sustained" + (", latency only" if st.get("latency_only") else "") + ")"))
            md.append(f"| {name[s]} | {label} | {l(lat, 'DISCOVER-OFFER')} | {l(lat, 'REQUEST-ACK')} | "
                      f"{st['drop_pct_median']:.2f} % | {st['acks_per_s_median']:,.0f} |")
        hc = b.get("latency_ms_at_highest_clean")
        if hc:
            sc = steps[s][str(hc["rate"])]
            md.append(f"| {name[s]} | {hc['rate']:,}/s (its highest clean step) | {l(hc['latency'], 'DISCOVER-OFFER')} | "
                      f"{l(hc['latency'], 'REQUEST-ACK')} | {sc['drop_pct_median']:.2f} % | {sc['acks_per_s_median']:,.0f} |")

    # Table 3: every step.
    md += ["", "Every step: median drop % (min–max) and median ACKs/s per server; ✗ marks an unclean step; – where "
           "not run (a server whose median drop rate over a step's rounds reached 1 % is not run at higher steps, "
           f"except at {lat_rate:,}/s for its latency, marked L).", "",
           "| offered /s | " + " | ".join(name[s] for s in servers) + " |",
           "|---|" + "---|" * len(servers)]
    for r in rates:
        cells = []
        for s in servers:
            st = steps[s].get(str(r))
            if not st:
                cells.append("–")
                continue
            mark = ("" if st["clean"] else " ✗") + (" L" if st.get("latency_only") else "")
            cells.append(f"{st['drop_pct_median']:.2f} % ({st['drop_pct_min']:.2f}–{st['drop_pct_max']:.2f}), "
                         f"{st['acks_per_s_median']:,.0f}/s{mark}")
        md.append(f"| {r:,} | " + " | ".join(cells) + " |")
    lost = []
    for s in servers:
        rr = [x for x in doc["runs"] if x["server"] == s and x.get("rcvbuf_overflows") is not None]
        if not rr:
            continue
        drops = sum(x["drops"] for x in rr)
        srv = sum(x.get("server_socket_drops") or 0 for x in rr)
        cli = sum(x["rcvbuf_overflows"] for x in rr) - srv
        other = drops - srv - max(cli, 0)
        if s == "dhcpd":
            # dhcpd reads requests from a packet socket (LPF); its UDP socket on :67 gets copies
            # it reads and discards, so that socket's overflows lose nothing.
            lost.append(f"{name[s]}: {drops:,} dropped, {max(cli, 0):,} overflowed perfdhcp's socket (dhcpd receives "
                        "through a packet socket, whose drops are not counted here)")
            continue
        lost.append(f"{name[s]}: {drops:,} dropped, {srv:,} overflowed the server's UDP socket, "
                    f"{max(cli, 0):,} perfdhcp's" + (f", {other:,} neither (lost inside the server, e.g. a full "
                                                     "packet queue, or never answered)" if other > 0 else ""))
    if lost:
        md += ["", "Where the drops happened, over all runs (perfdhcp's drops; the namespaces' UDP receive-buffer "
               "overflows split into the server socket's, from ss -m, and the rest, perfdhcp's own socket): "
               + "; ".join(lost) + "."]
    load = doc.get("load_average_before_after")
    if load:
        md += ["", f"Load average (1/5/15 min) before the run: {load[0]}; after: {load[1]}. Other work shares the "
               "machine's 2 CPUs; perfdhcp does too, and a perfdhcp starved of CPU overflows its own socket, so "
               "on a busy machine the clean rates measure the machine as much as the servers."
               + (f" The benchmark took {doc['wall_seconds'] // 60} min {doc['wall_seconds'] % 60} s "
                  f"({len(doc['runs'])} timed runs)." if doc.get("wall_seconds") else "")]

    md += ["", "Targets (judged on the conservative figures, against Kea's best configuration):", ""]
    if ours_c and kea_c:
        q = ours_c / kea_c
        md.append(f"- Issue 3 (clean rate ≥ Kea's, same run): **{'met' if q >= 1 else 'missed'}**: {ours_c:,}/s against "
                  f"{kea_c:,}/s ({name[kea_best_name]}), ratio {q:.2f}.")
        md.append(f"- Issue 5 (≥ 1.5× Kea's best configuration): **{'met' if q >= 1.5 else 'missed'}** (ratio {q:.2f}).")
    else:
        md.append(f"- No ratio: conservative clean rates ours {ours_c}, Kea {kea_c}.")

    md += ["", "Findings (computed from the figures above):", ""]
    md += findings(doc)
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")


def findings(doc):
    servers, name = list(doc["servers"]), doc["servers"]
    best, steps, lat_rate = doc["best"], doc["steps"], doc["latency_rate"]
    out = []
    ours = best.get("ours", {})
    oc = ours.get("conservative_clean_rate")
    for s in servers:
        if s == "ours":
            continue
        b = best[s]
        c = b["conservative_clean_rate"]
        if oc and c:
            bound = "; a lower bound, since ztp-runtime was clean at every step it ran" if not ours.get("saturated") else ""
            out.append(f"- Against {name[s]}: ztp-runtime's conservative clean rate is {oc / c:.1f}× its, "
                       f"{oc:,}/s against {c:,}/s{bound}.")
        elif oc:
            out.append(f"- {name[s]} had no clean step (lowest step run: "
                       f"{min((int(r) for r in steps[s]), default=0):,}/s); ztp-runtime was clean up to {oc:,}/s.")
    for s in servers:
        b = best[s]
        if b["highest_clean_rate"] and b["conservative_clean_rate"] and b["highest_clean_rate"] != b["conservative_clean_rate"]:
            out.append(f"- {name[s]} was unclean at {b['first_unclean_rate']:,}/s but clean again up to "
                       f"{b['highest_clean_rate']:,}/s: the drops near its limit are noise-sized, so the step figures are "
                       "rough on this machine.")
        stop = b.get("stopped_at")
        if stop and s != "ours":
            st = steps[s][str(stop)]
            out.append(f"- {name[s]} dropped {st['drop_pct_median']:.1f} % (median of the rounds) at {stop:,}/s, "
                       f"answering {st['acks_per_s_median']:,.0f} exchanges/s, and was not run at higher steps"
                       + (f" (except {lat_rate:,}/s for its latency)." if str(lat_rate) in steps[s] and stop < lat_rate else "."))
        at = b.get("at_latency_rate")
        if at and not at["clean"] and s != "ours":
            out.append(f"- At {lat_rate:,}/s {name[s]} dropped {at['drop_pct_median']:.1f} % and completed "
                       f"{at['acks_per_s_median']:,.0f} exchanges/s: its latency there is of the exchanges it answered.")
    # Drops that were the load generator's: replies that overflowed perfdhcp's own socket
    # (the namespaces' receive-buffer overflows less the server socket's).
    for s in servers:
        rr = [x for x in doc["runs"] if x["server"] == s and x.get("rcvbuf_overflows") is not None]
        drops = sum(x["drops"] for x in rr)
        cli = sum(x["rcvbuf_overflows"] for x in rr) - sum(x.get("server_socket_drops") or 0 for x in rr)
        if drops and cli >= 0.9 * drops:
            out.append(f"- {min(cli, drops):,} of {name[s]}'s {drops:,} dropped exchanges ({100 * min(cli, drops) / drops:.0f} %) "
                       "were replies that overflowed perfdhcp's own socket: the load generator, sharing the CPUs, fell "
                       "behind, not the server, so its clean rate here is bounded by the machine.")
    # Latency at the latency step: lowest and highest p99 among the servers clean there.
    for ex, label in (("DISCOVER-OFFER", "DISCOVER→OFFER"), ("REQUEST-ACK", "REQUEST→ACK")):
        p99 = {s: best[s]["latency_ms_at_%d" % lat_rate][ex]["p99"] for s in servers
               if best[s].get("at_latency_rate", {}).get("clean") and ex in best[s].get("latency_ms_at_%d" % lat_rate, {})}
        if len(p99) >= 2:
            lo, hi = min(p99, key=p99.get), max(p99, key=p99.get)
            line = (f"- {label} p99 at {lat_rate:,}/s among the servers clean there: lowest {name[lo]} {p99[lo]:.3f} ms, "
                    f"highest {name[hi]} {p99[hi]:.3f} ms")
            if "ours" in p99 and "ours" not in (lo, hi):
                line += f"; ztp-runtime {p99['ours']:.3f} ms"
            out.append(line + ".")
    cpu = {s: best[s]["server_cpu_us_per_exchange"] for s in servers if best[s].get("server_cpu_us_per_exchange")}
    if "ours" in cpu and len(cpu) > 1:
        o = cpu["ours"]
        others = ", ".join(f"{name[s]} {v:,.0f} µs ({v / o:.1f}×, at {best[s]['cpu_rate']:,}/s)"
                           for s, v in cpu.items() if s != "ours")
        out.append(f"- Server CPU per exchange: ztp-runtime {o:,.0f} µs at {ours['cpu_rate']:,}/s; {others}.")
    return out or ["- None: no server had a clean step."]


if __name__ == "__main__":
    main()
