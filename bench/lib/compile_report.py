#!/usr/bin/env python3
"""compile.json -> derived figures (added to the JSON) and the compile.md fragment.

    python3 bench/lib/compile_report.py RESULTS/compile.json RESULTS/compile.md

Reads only the measurements bench/compile wrote, so the report can be regenerated (or
changed) without measuring again. Every sentence with a number is computed here.
"""

import json
import math
import sys

# "Clearly superlinear": t ~ N^k with k above this from the second-largest to the largest
# fabric (above 12.6x the time for 10x the devices).
SUPERLINEAR = 1.1
# A command whose slowest run took this many times its fastest is called noisy.
NOISY = 2.0


def cpu(r):
    return r["user_s"] + r["system_s"]


def ms(s):
    return f"{s * 1e3:,.1f}" if s < 0.1 else f"{s * 1e3:,.0f}"


def t(s):
    """A duration in seconds, written in s or ms."""
    return f"{s:.2f} s" if s >= 1 else f"{ms(s)} ms"


def exponent(ratio, size_ratio):
    return math.log(ratio) / math.log(size_ratio)


def keys(doc):
    """The commands measured, in the order they were run."""
    return list(doc["sizes"][0]["results"])


def derive(doc):
    sizes = doc["sizes"]
    for s in sizes:
        r = s["results"]
        s["ratios"] = {
            "check_over_dhcpd_median": r["ztpc check"]["median_s"] / r["dhcpd -t"]["median_s"],
            "check_over_dhcpd_min": r["ztpc check"]["min_s"] / r["dhcpd -t"]["min_s"],
            "check_over_kea_median": r["ztpc check"]["median_s"] / r["kea-dhcp4 -t"]["median_s"],
            "build_over_check_median": r["ztpc build"]["median_s"] / r["ztpc check"]["median_s"],
            "check_us_per_device": r["ztpc check"]["median_s"] / s["devices"] * 1e6,
        }
    growth = {}
    for a, b in zip(sizes, sizes[1:]):
        k = b["devices"] / a["devices"]
        g = {}
        for name in keys(doc):
            ra, rb = a["results"][name], b["results"][name]
            g[name] = {
                "median_ratio": rb["median_s"] / ra["median_s"],
                "min_ratio": rb["min_s"] / ra["min_s"],
                "cpu_ratio": cpu(rb) / cpu(ra),
                "rss_ratio": rb["peak_rss_kib"] / ra["peak_rss_kib"],
            }
            for key in ("median", "min", "cpu"):
                g[name][key + "_exponent"] = exponent(g[name][key + "_ratio"], k)
        growth[f"{a['devices']}->{b['devices']}"] = g
    doc["growth"] = growth
    doc["superlinear_exponent_threshold"] = SUPERLINEAR
    doc["findings"] = findings(doc)
    doc["commands_note"] = ("`$W` is the benchmark's mktemp scratch directory on disk" +
                            (" and `$S` one on tmpfs; both are" if doc.get("tmpfs_scratch") else "; it is") +
                            " removed at exit.")
    doc["notes"] = notes(doc)


def noisy(r):
    return r["max_s"] / r["min_s"] >= NOISY


def findings(doc):
    sizes = doc["sizes"]
    out = []
    big = sizes[-1]
    n = big["devices"]
    r = big["results"]
    chk, dh = r["ztpc check"], r["dhcpd -t"]
    q = big["ratios"]
    if chk["median_s"] > dh["median_s"]:
        head = f"**ztpc check is slower than dhcpd -t at {n:,} devices**"
    else:
        head = f"ztpc check is not slower than dhcpd -t at {n:,} devices"
    out.append(f"{head}: median {ms(chk['median_s'])} ms against {ms(dh['median_s'])} ms "
               f"({q['check_over_dhcpd_median']:.2f}x); fastest runs {ms(chk['min_s'])} ms against "
               f"{ms(dh['min_s'])} ms ({q['check_over_dhcpd_min']:.2f}x). kea-dhcp4 -t of the same "
               f"output: median {ms(r['kea-dhcp4 -t']['median_s'])} ms.")
    b = r["ztpc build"]
    off = max(0.0, b["median_s"] - cpu(b))
    if b["median_s"] >= 1:
        head = f"**ztpc build of {n:,} devices takes {t(b['median_s'])}** (median"
        mark = "at or above"
    else:
        head = f"ztpc build of {n:,} devices takes {t(b['median_s'])} (median"
        mark = "under"
    out.append(f"{head}; fastest {t(b['min_s'])}, slowest {t(b['max_s'])}; {mark} the 1 s mark). "
               f"It writes {big['output_files']:,} files ({big['output_bytes'] / 1e6:.1f} MB). Its CPU time "
               f"is {t(cpu(b))} (user {t(b['user_s'])}, system {t(b['system_s'])}, means), so about "
               f"{t(off)} of the median is spent off the CPU, mostly waiting for the disk.")
    tb = r.get("ztpc build (tmpfs)")
    if tb:
        out.append(f"The same build into tmpfs (no disk) takes {t(tb['median_s'])} (median; fastest "
                   f"{t(tb['min_s'])}; CPU {t(cpu(tb))}: user {t(tb['user_s'])}, system "
                   f"{t(tb['system_s'])}): the compiler's own cost. The rest of the disk build's "
                   f"{t(b['median_s'])} is the filesystem's.")
    ab = r.get("ztpc build (right after rm -rf)")
    if ab:
        out.append(f"The same build right after `rm -rf` of its previous output takes {t(ab['median_s'])} "
                   f"(median; fastest {t(ab['min_s'])}, slowest {t(ab['max_s'])}; CPU {t(cpu(ab))}: user "
                   f"{t(ab['user_s'])}, system {t(ab['system_s'])}), {ab['median_s'] / b['median_s']:.1f}x "
                   "the first build: the extra is kernel time spent allocating inodes next to ones "
                   "freed less than a minute before (see the notes).")
    rb = r.get("ztpc rebuild (1 device edited)")
    if rb:
        out.append(f"Rebuilding over the previous output after one device's serial changed takes "
                   f"{t(rb['median_s'])} (median; fastest {t(rb['min_s'])}; CPU {t(cpu(rb))}: user "
                   f"{t(rb['user_s'])}, system {t(rb['system_s'])}): ztpc renders and checks everything "
                   "again, but hard-links every file whose bytes and mode are unchanged from the "
                   "previous output instead of writing it, and syncs only what it wrote.")
    if len(sizes) >= 2:
        a = sizes[-2]
        key = f"{a['devices']}->{n}"
        for name in ("ztpc check", "ztpc build", "ztpc build (tmpfs)"):
            if name not in doc["growth"][key]:
                continue
            g = doc["growth"][key][name]
            e = g["cpu_exponent"]
            word = ("**clearly superlinear**" if e > SUPERLINEAR else
                    "about linear" if e >= 0.9 else "sublinear")
            noise = [f"{s['devices']:,}: slowest/fastest {s['results'][name]['max_s'] / s['results'][name]['min_s']:.1f}x"
                     for s in (a, big) if noisy(s["results"][name])]
            text = (f"{name} from {a['devices']:,} to {n:,} devices: CPU time grows {g['cpu_ratio']:.1f}x "
                    f"(N^{e:.2f}), {word}; median wall time {g['median_ratio']:.1f}x "
                    f"(N^{g['median_exponent']:.2f}), fastest run {g['min_ratio']:.1f}x "
                    f"(N^{g['min_exponent']:.2f}); peak RSS {g['rss_ratio']:.1f}x.")
            if noise:
                text += (" Wall times are noisy (" + "; ".join(noise) +
                         "), so the CPU-time growth is the one to trust.")
            out.append(text)
    return out


def notes(doc):
    return [
        "One hyperfine run per size times the commands side by side (`-N`: no shell; "
        "`--prepare` is not timed: before each `ztpc build` run it moves the previous run's output "
        "into a trash directory that is removed only at the end, so every run is a first build into a "
        "new directory with no deletion before it; `ztpc build (right after rm -rf)` instead removes "
        "its previous output with `rm -rf` just before each run). "
        "The last timed build's output is compared with a first build (`diff -r`) and must be identical.",
        "CPU time is hyperfine's mean user + system time. `ztpc build` creates every file it writes and "
        "syncs them to disk before the swap, so its time depends on the filesystem and on whoever else "
        f"uses the disk (scratch directory `$W` on {doc['scratch_filesystem']})"
        + (f"; `ztpc build (tmpfs)` writes to `$S` on tmpfs ({doc['tmpfs_scratch']}) instead, which "
           "leaves the compiler's own work." if doc.get("tmpfs_scratch") else "."),
        *([] if "no journal" not in doc["scratch_filesystem"] else [
            "On ext4 without a journal the kernel does not reuse an inode freed less than a minute ago "
            "(fs/ext4/ialloc.c, `recently_deleted`): creating thousands of files soon after deleting "
            "thousands scans past them in kernel time. `ztpc build (right after rm -rf)` shows that cost; "
            "a rebuild over an existing output avoids it (unchanged files are hard-linked, which "
            "allocates no inode), and so does a filesystem with a journal (the check applies only "
            "without one)."]),
        ("`dhcpd -t` needs no lease file: it passed with `-lf` naming a path that cannot exist, so the "
         "timed runs give no `-lf`." if doc["dhcpd_t_lease_file"] == "not-needed" else
         f"`dhcpd -t` lease-file probe: {doc['dhcpd_t_lease_file']}."),
        f"Load average (1/5/15 min) before: {doc['load_average_before']}; after: "
        f"{doc['load_average_after']}. The machine is shared: treat single figures as rough, compare "
        "within a size.",
    ]


def markdown(doc):
    sizes = doc["sizes"]
    md = [
        "Wall time in milliseconds (hyperfine: median, fastest and slowest run), CPU time (mean user + "
        f"system) in milliseconds, peak RSS in MiB (`/usr/bin/time -f %M`, highest of {doc['rss_runs']} runs).",
        "",
        "| devices | command | median ms | min ms | max ms | CPU ms | runs | peak RSS MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        for name in keys(doc):
            r = s["results"][name]
            md.append(f"| {s['devices']:,} | `{name}` | {ms(r['median_s'])} | {ms(r['min_s'])} | {ms(r['max_s'])} "
                      f"| {ms(cpu(r))} | {r['runs']} | {r['peak_rss_kib'] / 1024:.1f} |")
    md += [
        "",
        "| devices | fabric.kdl | files written | output | dhcpd.conf | kea-dhcp4.json "
        "| check / dhcpd -t (median; min) | check / kea -t | build / check | check µs per device |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        q = s["ratios"]
        md.append(f"| {s['devices']:,} | {s['fabric_bytes'] / 1e3:,.0f} kB | {s['output_files']:,} "
                  f"| {s['output_bytes'] / 1e6:,.1f} MB | {s['dhcpd_conf_bytes'] / 1e3:,.0f} kB "
                  f"| {s['kea_json_bytes'] / 1e3:,.0f} kB | {q['check_over_dhcpd_median']:.2f}x; "
                  f"{q['check_over_dhcpd_min']:.2f}x | {q['check_over_kea_median']:.2f}x "
                  f"| {q['build_over_check_median']:.1f}x | {q['check_us_per_device']:.0f} |")
    if doc["growth"]:
        md += [
            "",
            "Growth when the fabric grows (linear: the ratio of the sizes; the exponent k fits t ~ N^k).",
            "",
            "| command | devices | median wall | fastest run | CPU time | peak RSS |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name in keys(doc):
            for key, g in doc["growth"].items():
                a, b = (int(x) for x in key.split("->"))
                md.append(f"| `{name}` | {a:,} → {b:,} | {g[name]['median_ratio']:.1f}x (N^{g[name]['median_exponent']:.2f}) "
                          f"| {g[name]['min_ratio']:.1f}x (N^{g[name]['min_exponent']:.2f}) "
                          f"| {g[name]['cpu_ratio']:.1f}x (N^{g[name]['cpu_exponent']:.2f}) "
                          f"| {g[name]['rss_ratio']:.1f}x |")
    md += ["", "Findings (computed from the figures above):", ""]
    md += [f"- {f}" for f in doc["findings"]]
    return "\n".join(md) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: compile_report.py COMPILE_JSON OUT_MD\n")
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    derive(doc)
    with open(argv[1], "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(argv[2], "w") as f:
        f.write(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
