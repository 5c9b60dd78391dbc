# shellcheck shell=bash
# The served tree of bench/tftp and bench/http. Sourced after common.sh, not run.
#
# files_tree DIR IMAGE_MIB BIG_MIB: examples/dc1 copied to DIR/fabric with
#   scripts/common.sh            a 1 MiB shell script (a custom-config, served at
#                                custom/scripts/common.sh)
#   images/nxos64-cs...F.bin     IMAGE_MIB MiB of random bytes (served at images/...)
#   images/sonic-...202311.bin   BIG_MIB MiB of random bytes (0: left as in dc1)
# built with ztpc ($ZTPC) into DIR/out, and DIR/peer: the same tree for the peers
# (tftpd-hpa, nginx): a copy of DIR/out/tftp plus the images hard-linked under images/,
# so both servers read the very same files (and page cache). Every file the peers serve
# is world-readable (tftpd-hpa drops to nobody). Sets the globals SCRIPT_PATH, IMAGE_PATH
# and BIG_PATH (the served names) and SCRIPT_FILE, IMAGE_FILE and BIG_FILE (the local
# files with the expected bytes).
files_tree() {
    local d=$1 image_mib=$2 big_mib=$3
    mkdir -p "$d"
    cp -r "$ROOT/examples/dc1" "$d/fabric"
    SCRIPT_PATH=custom/scripts/common.sh
    IMAGE_PATH=images/nxos64-cs.10.3.3.F.bin
    BIG_PATH=images/sonic-broadcom-202311.bin
    python3 - "$d/fabric/scripts/common.sh" <<'PY'
import random, sys
# A plausible script: a shebang, then lines of echo; 1 MiB exactly, the same every run.
r, out, n = random.Random(5), ["#!/bin/sh", "# bench/tftp and bench/http: a 1 MiB script"], 0
n = sum(len(l) + 1 for l in out)
while n < 1048576 - 80:
    l = "echo " + "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(70))
    out.append(l)
    n += len(l) + 1
pad = 1048576 - n - 1
out.append("#" + "x" * (pad - 1))
with open(sys.argv[1], "w") as f:
    f.write("\n".join(out) + "\n")
PY
    [ "$(stat -c %s "$d/fabric/scripts/common.sh")" = 1048576 ] || { echo "bench: script is not 1 MiB" >&2; return 1; }
    head -c "$((image_mib * 1048576))" /dev/urandom >"$d/fabric/$IMAGE_PATH"
    if [ "$big_mib" -gt 0 ]; then
        head -c "$((big_mib * 1048576))" /dev/urandom >"$d/fabric/$BIG_PATH"
    fi
    "$ZTPC" build --env-file "$d/fabric/demo.env" "$d/fabric/fabric.kdl" -o "$d/out" >&2
    mkdir -p "$d/peer"
    cp -r "$d/out/tftp/." "$d/peer/"
    mkdir -p "$d/peer/images"
    ln "$d/fabric/images/"* "$d/peer/images/"
    chmod -R a+rX "$d/peer"
    SCRIPT_FILE=$d/fabric/scripts/common.sh
    IMAGE_FILE=$d/fabric/$IMAGE_PATH
    BIG_FILE=$d/fabric/$BIG_PATH
    cmp -s "$SCRIPT_FILE" "$d/out/tftp/$SCRIPT_PATH" || { echo "bench: the built tree does not serve the script as is" >&2; return 1; }
}
