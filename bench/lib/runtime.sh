# shellcheck shell=bash
# Helpers shared by the runtime benchmarks (bench/dhcp, bench/footprint, bench/reload,
# bench/tftp, bench/http).
# Sourced after bench/lib/common.sh, not run.
#
# Network rule: every server and every load generator runs inside a network namespace
# the benchmark creates (netns_up), on that namespace's loopback only. netns_down removes
# the namespace and its /etc/netns/NAME directory; call it from the EXIT trap. Processes
# are ended by the PID recorded when they were started, never by name.

# runtime_binary ROOT: set ZTP_RUNTIME (the ztp-runtime to measure) and RUNTIME_SOURCE.
# Builds the release binary unless ZTP_RUNTIME is given (a no-op when up to date).
runtime_binary() {
    local root=$1
    if [ -z "${ZTP_RUNTIME:-}" ]; then
        (cd "$root" && cargo build --release --locked -p ztp-runtime >&2) || return 1
        ZTP_RUNTIME=${CARGO_TARGET_DIR:-$root/target}/release/ztp-runtime
        RUNTIME_SOURCE=$(source_state "$root" runtime Cargo.toml Cargo.lock)
    fi
    RUNTIME_SOURCE=${RUNTIME_SOURCE:-unknown (ZTP_RUNTIME given by the caller)}
    [ -x "$ZTP_RUNTIME" ] || { echo "bench: no ztp-runtime binary at $ZTP_RUNTIME" >&2; return 1; }
}

# netns_up NAME: a fresh namespace with lo up and /etc/netns/NAME/resolv.conf.
netns_up() {
    local n=$1
    if ip netns list | awk '{print $1}' | grep -qx -- "$n"; then
        echo "bench: namespace $n already exists (another run?); refusing to touch it" >&2
        return 1
    fi
    mkdir -p "/etc/netns/$n"
    echo "nameserver 127.0.0.1" >"/etc/netns/$n/resolv.conf"
    ip netns add "$n"
    ip -n "$n" link set lo up
}

# netns_down NAME: remove what netns_up made (quietly; safe to call twice).
netns_down() {
    local n=$1
    ip netns del "$n" 2>/dev/null || true
    rm -rf "/etc/netns/$n"
}

# stop_pid PID [SECONDS]: SIGTERM the process we started, SIGKILL it after SECONDS
# (default 5), and reap it.
stop_pid() {
    local pid=$1 t=${2:-5} i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < t * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds or SECONDS pass.
wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 20; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# listening_count LOG: how many "listening" lines ztp-runtime has logged.
listening_count() {
    grep -c '"message":"listening"' "$1" 2>/dev/null || true
}

# proc_field PID FIELD: a kB field (VmRSS, VmHWM, Threads...) of /proc/PID/status.
proc_field() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

# cpu_ticks PID: utime+stime of PID in clock ticks (all threads).
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null
}

# cpu_ticks_all PID: cpu_ticks plus the CPU time of PID's children it has reaped
# (cutime+cstime): a server that forks per request (tftpd-hpa) is charged for them.
cpu_ticks_all() {
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null
}

# shown ARGS...: one command line, quoted for a shell, with the scratch directory written
# as $W and the repository root removed, for the commands list in NAME.json.
shown() {
    local a out=()
    for a in "$@"; do
        # shellcheck disable=SC2016 # a literal $W
        a=${a//"$W"/'$W'}
        a=${a//"$ROOT/"/}
        case $a in
            *[[:space:]\'\"\\\`\|\;\&\<\>\(\)\*\?\[]*)
                a=${a//\\/\\\\}
                a=${a//\"/\\\"}
                a=${a//\`/\\\`}
                out+=("\"$a\"") ;;
            *) out+=("$a") ;;
        esac
    done
    printf '%s\n' "${out[*]}"
}

# CPU accounting per server with a cgroup (v1 cpuacct) of its own: it counts every
# process the server forks (tftpd-hpa forks one per transfer and ignores SIGCHLD, so
# /proc's cutime never sees them) and every thread. cg_up NAME makes it (returns 1 when
# the cpuacct hierarchy is not writable), cg_run NAME CMD... execs CMD inside it,
# cg_usage NAME prints the CPU time used so far in microseconds (empty without the
# cgroup), cg_down NAME removes it (after its processes have ended).
CG_ROOT=/sys/fs/cgroup/cpuacct
cg_up() {
    mkdir "$CG_ROOT/$1" 2>/dev/null
}
cg_run() {
    local name=$1
    shift
    if [ -d "$CG_ROOT/$name" ]; then
        # shellcheck disable=SC2016 # $$ is the inner shell's PID
        exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG_ROOT/$name" "$@"
    fi
    exec "$@"
}
cg_usage() {
    local f=$CG_ROOT/$1/cpuacct.usage
    [ -r "$f" ] && echo $(($(cat "$f") / 1000))
}
cg_down() {
    [ -d "$CG_ROOT/$1" ] && rmdir "$CG_ROOT/$1" 2>/dev/null || true
}
