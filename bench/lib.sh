# bench/lib.sh — what the benchmark scripts share: prerequisite checks, a private work
# directory, random secrets, the standalone mock target, and /proc readers (RSS, CPU ticks).
# Sourced by bench/scale.sh and bench/calls.sh; not run on its own.
# shellcheck shell=bash
# shellcheck disable=SC2034 # CLK_TCK, NICE_CMD and MOCK_* are read by the scripts that source this.

# die MESSAGE: print to stderr and exit 1.
die() {
    echo "error: $*" >&2
    exit 1
}

# need_tool NAME PACKAGE: fail with what to install when NAME is not on PATH.
need_tool() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install it (apt-get install -y $2)"
}

# need_bins DIR NAME...: fail when a binary is missing from DIR.
need_bins() {
    local dir=$1 name
    shift
    for name in "$@"; do
        [[ -x "$dir/$name" ]] || die "$dir/$name not found or not executable: build it (cargo build --release) or set BIN to the directory holding agent, controller and mock-target"
    done
}

# random_secret: 32 alphanumeric characters (never printed by the scripts).
random_secret() {
    local s
    s=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    printf '%s' "${s:0:32}"
}

# now_ns: wall clock in nanoseconds.
now_ns() {
    date +%s%N
}

# rss_kib PID FIELD: VmHWM or VmRSS of PID in KiB, empty when the process is gone.
rss_kib() {
    awk -v f="$2:" '$1 == f { print $2; exit }' "/proc/$1/status" 2>/dev/null || true
}

# cpu_ticks PID: utime + stime of PID in clock ticks, empty when the process is gone.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # Fields after the parenthesized command name: utime and stime are the 12th and 13th.
    awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

# CLK_TCK: clock ticks per second of /proc/PID/stat.
CLK_TCK=$(getconf CLK_TCK)

# NICE: the measured processes run under `nice -n $NICE`, so that builds sharing the machine
# take less of their cores; negative values need root, so the default is -15 only for root.
if [[ -z "${NICE:-}" ]]; then
    if ((EUID == 0)); then NICE=-15; else NICE=0; fi
fi
[[ "$NICE" =~ ^-?[0-9]+$ ]] || die "NICE must be an integer, got $NICE"
NICE_CMD=(nice -n "$NICE")

# load_line: the load average and what else runs, for the summary.
load_line() {
    local how="nice $NICE"
    if [[ "${SCHED:-other}" == fifo ]]; then how="SCHED_FIFO priority 1"; fi
    echo "load average $(cut -d ' ' -f 1-3 /proc/loadavg) at the end; measured processes at $how"
}

# MOCK_EXTRA_ARGS: more mock-target flags (an array; empty unless a script sets it).
MOCK_EXTRA_ARGS=()

# start_mock BIN WORKDIR [TASKSET_CPUS]: starts a standalone mock-target on 127.0.0.1:0 with a
# random admin password (stored in WORKDIR/admin_password, mode 600) and sets MOCK_PID,
# MOCK_MCP_URL and MOCK_ADMIN_URL from its one JSON line on stdout.
start_mock() {
    local bin=$1 work=$2 cpus=${3:-} i line
    (umask 077 && random_secret >"$work/admin_password")
    local -a cmd=("$bin/mock-target" --listen 127.0.0.1:0 "${MOCK_EXTRA_ARGS[@]}")
    if [[ -n "$cpus" ]]; then
        cmd=(taskset -c "$cpus" "${cmd[@]}")
    fi
    cmd=("${NICE_CMD[@]}" "${cmd[@]}")
    MOCK_TARGET_ADMIN_PASSWORD=$(<"$work/admin_password") RUST_LOG=${MOCK_LOG:-warn} \
        "${cmd[@]}" >"$work/mock.out" 2>"$work/mock.log" &
    MOCK_PID=$!
    for ((i = 0; i < 100; i++)); do
        line=$(head -n 1 "$work/mock.out" 2>/dev/null || true)
        if [[ -n "$line" ]]; then
            MOCK_MCP_URL=$(jq -r .mcp_url <<<"$line")
            MOCK_ADMIN_URL=$(jq -r .admin_url <<<"$line")
            return 0
        fi
        kill -0 "$MOCK_PID" 2>/dev/null || die "mock-target exited at start: $(tail -n 3 "$work/mock.log")"
        sleep 0.1
    done
    die "mock-target printed no address within 10 s"
}

# stop_pid PID...: SIGTERM, then SIGKILL after 5 s, for each live PID given.
stop_pid() {
    local pid i
    for pid in "$@"; do
        if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
