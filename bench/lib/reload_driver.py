#!/usr/bin/env python3
"""bench/reload's driver: rebuild the served artifact directory N times, alternating two
fabrics, and time each rebuild until the runtime serves the new generation.

    reload_driver.py --ztpc ZTPC --out SERVED_DIR --url http://HOST:PORT --count N
                     --fabric-a A.kdl --fabric-b B.kdl --body-a FILE --body-b FILE
                     [--env-file FILE] [--gap-ms 200] [--timeout-s 10] --json OUT.json

For reload i (i = 0 .. N-1) it builds B when i is even, A when odd, with
`ztpc build FABRIC -o SERVED_DIR` (which swaps the directory in atomically, as its last
step), then polls GET /api/ztp/services on one keep-alive connection, every 0.5 ms, until
its "generation" differs from the one before the build. reload_ms is from ztpc's exit (the
swap) to the first poll answer naming the new generation, where the swap is the moment
the served path first names a new inode (stat polled every 0.5 ms while ztpc runs; ztpc
exchanges the new tree with the old one in one rename and syncs the parent, then deletes
the old tree before it exits, which for big trees takes a while). It then fetches /ztp.json
once and checks it is the new fabric's body. Every loop is bounded (N, and timeout_s per
reload). Standard library only.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ztpc", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--fabric-a", required=True)
    ap.add_argument("--fabric-b", required=True)
    ap.add_argument("--body-a", required=True)
    ap.add_argument("--body-b", required=True)
    ap.add_argument("--env-file")
    ap.add_argument("--gap-ms", type=int, default=200)
    ap.add_argument("--timeout-s", type=float, default=10.0)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()

    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5)
    bodies = {"A": open(a.body_a, "rb").read(), "B": open(a.body_b, "rb").read()}

    def get(path):
        nonlocal conn
        for attempt in range(3):
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5)
                if attempt == 2:
                    raise

    def generation():
        st, body = get("/api/ztp/services")
        if st != 200:
            raise SystemExit(f"reload_driver: /api/ztp/services answered {st}")
        return json.loads(body)["generation"]

    rows, failures = [], []
    for i in range(a.count):
        which = "B" if i % 2 == 0 else "A"
        fabric = a.fabric_b if which == "B" else a.fabric_a
        old = generation()
        cmd = [a.ztpc, "build", fabric, "-o", a.out]
        if a.env_file:
            cmd[2:2] = ["--env-file", a.env_file]
        ino0 = os.stat(a.out).st_ino
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # The swap: the served path names a new inode (ztpc exchanges the new tree
        # with the old one in one rename, then deletes the old tree before it exits).
        t_swap, swap_seen = None, True
        while time.monotonic() - t0 < 120:
            try:
                ino = os.stat(a.out).st_ino
            except FileNotFoundError:
                ino = None
            if ino is not None and ino != ino0:
                t_swap = time.monotonic()
                break
            if p.poll() is not None:
                break
            time.sleep(0.0005)
        if t_swap is None:
            swap_seen = False
            t_swap = time.monotonic()
        polls, new = 0, old
        while new == old and time.monotonic() - t_swap < a.timeout_s:
            new = generation()
            polls += 1
            if new == old:
                # Every 0.5 ms, not back to back: a poller that never sleeps takes a CPU
                # (its own, and the runtime's answering it) from the reload it times.
                time.sleep(0.0005)
        t2 = time.monotonic()
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        t1 = time.monotonic()
        if p.returncode != 0:
            sys.stderr.write(err.decode(errors="replace"))
            raise SystemExit(f"reload_driver: ztpc build failed on reload {i}")
        row = {"i": i, "fabric": which, "build_ms": (t1 - t0) * 1000, "swap_at_ms": (t_swap - t0) * 1000,
               "swap_seen": swap_seen, "reload_ms": (t2 - t_swap) * 1000, "polls": polls, "old": old, "new": new}
        if new == old:
            row["reload_ms"] = None
            failures.append(f"reload {i}: generation still {old} after {a.timeout_s} s")
        else:
            st, body = get("/ztp.json")
            row["body_ok"] = st == 200 and body == bodies[which]
            if not row["body_ok"]:
                failures.append(f"reload {i}: /ztp.json after the switch is not fabric {which}'s (status {st})")
        rows.append(row)
        time.sleep(a.gap_ms / 1000.0)
    with open(a.json, "w") as f:
        json.dump({"reloads": rows, "failures": failures}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
