# shellcheck shell=bash
# Shared helpers for the benchmark scripts in bench/. Sourced, not run.
#
# A benchmark is an executable bench/NAME whose header has a line `# ztp-bench: TITLE`.
# bench/run calls it as `bench/NAME RESULTS_DIR`, with ZTPC set to the release binary,
# and it must write:
#   RESULTS_DIR/NAME.json  machine-readable results; bench/run reads the keys
#                          "title", "date", "tools" {name: version}, "commands" [str],
#                          and optionally "notes" [str] and "commands_note" (what the
#                          placeholders in the commands stand for); other keys are the
#                          benchmark's own;
#   RESULTS_DIR/NAME.md    the Markdown fragment (tables, findings) for BENCHMARKS.md,
#                          generated from the measurements, never typed in.
# It exits non-zero if anything failed; bench/run then reports the failure.

# need CMD PACKAGE: install the Debian package that provides CMD if CMD is missing.
# Bench-only tools (hyperfine, time, ...) are not installed by CI, so each script asks.
need() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
        echo "bench: installing $pkg (for $cmd)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >&2 \
            || { echo "bench: cannot install $pkg; run apt-get update first?" >&2; return 1; }
    fi
}

# pkg_version PACKAGE: the installed Debian package version, or "?".
pkg_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"
}

# ztpc_binary ROOT: set ZTPC (the ztpc to measure) and ZTPC_SOURCE (what it was built
# from). bench/run builds it once and exports both; a script run on its own builds it
# here (a no-op when target/ is up to date). The source state is read right after the
# build, since others may be editing and committing in the same tree.
ztpc_binary() {
    local root=$1
    if [ -z "${ZTPC:-}" ]; then
        (cd "$root" && cargo build --release --locked -p ztpc >&2) || return 1
        ZTPC=${CARGO_TARGET_DIR:-$root/target}/release/ztpc
        ZTPC_SOURCE=$(source_state "$root" compiler Cargo.toml Cargo.lock)
    fi
    ZTPC_SOURCE=${ZTPC_SOURCE:-unknown (ZTPC given by the caller)}
    [ -x "$ZTPC" ] || { echo "bench: no ztpc binary at $ZTPC" >&2; return 1; }
}

# source_state ROOT [PATH...]: the commit checked out, and which of PATHs (default: the
# whole tree) had uncommitted changes.
source_state() {
    local root=$1 rev changed n
    shift
    rev=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo "no commit yet")
    changed=$(git -C "$root" status --porcelain -- "$@" 2>/dev/null | cut -c4- | sort)
    n=$(printf '%s' "$changed" | grep -c . || true)
    if [ "$n" -eq 0 ]; then
        echo "commit $rev${*:+ (no uncommitted changes in $*)}"
    elif [ "$n" -le 6 ]; then
        echo "commit $rev + uncommitted changes to $(echo "$changed" | paste -sd, - | sed 's/,/, /g')"
    else
        echo "commit $rev + $n uncommitted paths in ${*:-the tree}"
    fi
}
