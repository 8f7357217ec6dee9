#!/usr/bin/env bash
# bench/real-server.sh — the real Nextcloud MCP server (nextcloud-mcp-server, pinned by
# scripts/nextcloud-mcp-server.sh) in OAuth login_flow mode in front of the mock target as its
# Nextcloud, loaded by the controller as a user would; the same load against the mock's own MCP
# server beside it. Per run: tool calls/s, p50/p95 per workflow and per step, login and
# provisioning time per user, and the CPU per tool call of the server, of the mock (as
# Nextcloud), of the agents and of the controller.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/real-server.sh [-h]

For each number of users U in USERS_LIST and each server in SERVERS, in that order
(real, mock, real, mock, ... so that both see the same machine), on fresh processes:
  real: a mock-target (127.0.0.1, free port) as the Nextcloud, on LOAD_CPU, and
        scripts/nextcloud-mcp-server.sh run --nextcloud MOCK --port FREE on SERVER_CPU;
        controller start --url http://127.0.0.1:PORT/mcp --provider nextcloud
                         --nextcloud-url MOCK ...
  mock: a mock-target on SERVER_CPU, and
        controller start --url MOCK/mcp --provider nextcloud --nextcloud-url MOCK ...
with, both times, --agents AGENTS --users U --think-time THINK --workload WORKLOAD
--duration DURATION --warmup WARMUP (the controller and its agents on LOAD_CPU). The
controller creates the users on the mock through OCS, logs each in (for real: through the
server's own OAuth authorization server and the mock's Nextcloud login pages) and provisions
each (real: Login Flow v2) before the load, and deletes them after.

CPU: utime+stime from /proc/PID/stat of the server, the mock, the controller and the agents
every 200 ms, interpolated at the edges of the report's measured window, divided by the
report's tool calls (summary.total_operations). The real server is one Python process; its
threads and child processes are counted and printed.

Environment (defaults in brackets):
  BIN         directory with controller and mock-target             [target/release]
  USERS_LIST  numbers of users                                      [12 48 200]
  SERVERS     which servers, in order: real and/or mock             [real mock]
  THINK       think time between a user's workflows (closed model)  [1s]
  DURATION    measured duration                                     [30s]
  WARMUP      warmup                                                [5s]
  AGENTS      local agents                                          [2]
  LOGIN_CONCURRENCY  --login-concurrency: logins and provisionings at once
                                                                    [the controller's, 32]
  WORKLOAD    workload                                              [mixed]
  SERVER_CPU  core of the server under test                         [1]
  LOAD_CPU    core of the controller, agents and (real) the mock    [0]
  NICE        niceness of every process started                     [-15 as root, else 0]
  PROFILE     1: also sample the real server with py-spy during the measured window
              (py-spy in the server's virtualenv; costs CPU on LOAD_CPU: not for figures)
  OUT_DIR     keep each report-SERVER-U.json, the logs, results.jsonl and tables.md here
                                                                    [not kept]
Prints the tables (bench/real_server_tables.py) at the end.
Example: USERS_LIST="12 48" THINK=1s bench/real-server.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
USERS_LIST=${USERS_LIST:-12 48 200}
SERVERS=${SERVERS:-real mock}
THINK=${THINK:-1s}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
AGENTS=${AGENTS:-2}
WORKLOAD=${WORKLOAD:-mixed}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PROFILE=${PROFILE:-0}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-}
OUT_DIR=${OUT_DIR:-}
NC_SCRIPT=$repo/scripts/nextcloud-mcp-server.sh

need_tool jq jq
need_tool curl curl
need_tool pgrep procps
need_tool taskset util-linux
need_tool awk mawk
need_tool python3 python3
need_bins "$BIN" controller mock-target
for u in $USERS_LIST; do
    [[ "$u" =~ ^[0-9]+$ && "$u" -gt 0 ]] || die "USERS_LIST must hold positive integers, got $u"
done
for s in $SERVERS; do
    [[ "$s" == real || "$s" == mock ]] || die "SERVERS holds real and/or mock, got $s"
done
((SERVER_CPU != LOAD_CPU)) || die "SERVER_CPU and LOAD_CPU must differ"
if [[ " $SERVERS " == *" real "* ]]; then
    NC_BIN=$("$NC_SCRIPT" bin 2>/dev/null) ||
        die "the real server is not installed: run scripts/nextcloud-mcp-server.sh install"
    NC_VERSION=$("$(dirname "$NC_BIN")/python" -c \
        "import importlib.metadata as m; print(m.version('nextcloud-mcp-server'))")
fi
if [[ "$PROFILE" == 1 ]]; then
    PYSPY=$(dirname "${NC_BIN:-x}")/py-spy
    [[ -x "$PYSPY" ]] || die "PROFILE=1 needs py-spy in the server's virtualenv ($(dirname "${NC_BIN:-x}")/pip install py-spy)"
fi
BIN=$(cd "$BIN" && pwd)
secs() { # secs DURATION: seconds of 500ms / 30s / 5m / 30
    awk -v d="$1" 'BEGIN { n = d + 0; if (d ~ /ms$/) n /= 1000; else if (d ~ /m$/) n *= 60; print n }'
}

work=$(mktemp -d -t mcp-swarm-real.XXXXXX)
chmod 700 "$work"
umask 077
MOCK_PID="" REAL_SH_PID="" REAL_PID="" CTRL_PID="" SAMPLER_PID="" SPY_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap and between runs
stop_all() {
    # The server's python first: the wrapper script then exits on its own.
    stop_pid "$SPY_PID" "$SAMPLER_PID" "$CTRL_PID" "$REAL_PID" "$REAL_SH_PID" "$MOCK_PID"
    SPY_PID="" SAMPLER_PID="" CTRL_PID="" REAL_PID="" REAL_SH_PID="" MOCK_PID=""
}
# shellcheck disable=SC2317
cleanup() {
    stop_all
    if [[ -n "$OUT_DIR" ]]; then
        mkdir -p "$OUT_DIR"
        cp "$work"/report-*.json "$work"/*.log "$work"/results.jsonl "$work"/tables.md \
            "$work"/pyspy-*.txt "$OUT_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# window_cpu FILE COL START_NS END_NS: CPU seconds of column COL of FILE ("ns v1 v2 ...", "-"
# when a process is gone) between START and END, interpolated linearly between samples.
window_cpu() {
    awk -v col="$2" -v a="$3" -v b="$4" -v t="$CLK_TCK" '
        function at(x,   i) {
            for (i = 2; i <= n; i++) if (ts[i] >= x)
                return v[i-1] + (v[i] - v[i-1]) * (x - ts[i-1]) / (ts[i] - ts[i-1])
            return v[n]
        }
        { last = $1 }
        $col != "-" { n++; ts[n] = $1; v[n] = $col }
        END { if (n < 2 || ts[1] > a || last < b) { print "null"; exit }
              printf "%.3f", (at(b) - at(a)) / t }' "$1"
}

# run_one SERVER USERS: one run on fresh processes; appends a line to results.jsonl.
run_one() {
    local server=$1 users=$2 tag="$1-$2" url server_pid i line agents_pids="" rc=0
    echo "== $tag: starting $server server, $users users" >&2
    if [[ "$server" == real ]]; then
        start_mock "$BIN" "$work" "$LOAD_CPU"
        mv "$work/mock.log" "$work/mock-$tag.log" 2>/dev/null || true
        local port
        port=$(free_port)
        "${NICE_CMD[@]}" taskset -c "$SERVER_CPU" "$NC_SCRIPT" run --nextcloud "$MOCK_ADMIN_URL" \
            --port "$port" >"$work/server-$tag.log" 2>&1 &
        REAL_SH_PID=$!
        url="http://127.0.0.1:$port/mcp"
        for ((i = 0; i < 1200; i++)); do
            [[ -n "$REAL_PID" ]] || REAL_PID=$(pgrep -P "$REAL_SH_PID" | head -n 1 || true)
            [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" == 401 ]] && break
            kill -0 "$REAL_SH_PID" 2>/dev/null ||
                die "the real server exited at start: $(tail -n 5 "$work/server-$tag.log")"
            sleep 0.1
        done
        ((i < 1200)) || die "the real server did not answer 401 on $url within 120 s"
        [[ -n "$REAL_PID" ]] || die "cannot find the real server's python process"
        server_pid=$REAL_PID
    else
        start_mock "$BIN" "$work" "$SERVER_CPU"
        mv "$work/mock.log" "$work/mock-$tag.log" 2>/dev/null || true
        url=$MOCK_MCP_URL
        server_pid=$MOCK_PID
    fi

    NEXTCLOUD_ADMIN_USER=admin \
        NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") \
        "${NICE_CMD[@]}" taskset -c "$LOAD_CPU" "$BIN/controller" start --url "$url" \
        --provider nextcloud --nextcloud-url "$MOCK_ADMIN_URL" --agents "$AGENTS" --users "$users" \
        --think-time "$THINK" --workload "$WORKLOAD" --duration "$DURATION" --warmup "$WARMUP" \
        ${LOGIN_CONCURRENCY:+--login-concurrency "$LOGIN_CONCURRENCY"} \
        --state-dir "$work/state-$tag" -o "$work/report-$tag.json" \
        >"$work/controller-$tag.out" 2>"$work/controller-$tag.log" &
    CTRL_PID=$!

    # "ns server mock controller agents" every 200 ms; agents are the controller's children.
    (
        agents=""
        while :; do
            n=0
            [[ $(wc -w <<<"$agents") -ge $AGENTS ]] || agents=$(pgrep -P "$CTRL_PID" | tr '\n' ' ' || true)
            sum=0
            for p in $agents; do
                t=$(cpu_ticks "$p")
                if [[ -n "$t" ]]; then sum=$((sum + t)); n=$((n + 1)); fi
            done
            ((n == AGENTS)) || sum=-
            s=$(cpu_ticks "$server_pid") m=$(cpu_ticks "$MOCK_PID") c=$(cpu_ticks "$CTRL_PID")
            echo "$(now_ns) ${s:--} ${m:--} ${c:--} $sum"
            sleep 0.2
        done
    ) >"$work/cpu-$tag.samples" &
    SAMPLER_PID=$!

    # Threads and children of the server, and py-spy, once the load runs.
    local started="" threads="" children="" hwm=""
    while kill -0 "$CTRL_PID" 2>/dev/null; do
        if [[ -z "$started" ]] && grep -q "run started" "$work/controller-$tag.log" 2>/dev/null; then
            started=1
            if [[ "$PROFILE" == 1 && "$server" == real ]]; then
                (
                    sleep "$(secs "$WARMUP")"
                    exec taskset -c "$LOAD_CPU" "$PYSPY" record --pid "$server_pid" --rate 100 \
                        --duration "$(secs "$DURATION" | awk '{ printf "%d", $1 }')" --format raw \
                        --nonblocking --output "$work/pyspy-$tag.raw"
                ) >"$work/pyspy-$tag.log" 2>&1 &
                SPY_PID=$!
            fi
        fi
        if [[ -n "$started" ]]; then
            threads=$(ls "/proc/$server_pid/task" 2>/dev/null | wc -l)
            children=$(pgrep -P "$server_pid" | wc -l || true)
            hwm=$(rss_kib "$server_pid" VmHWM)
        fi
        sleep 0.5
    done
    wait "$CTRL_PID" || rc=$?
    CTRL_PID=""
    sleep 0.3
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=""
    if [[ -n "$SPY_PID" ]]; then
        wait "$SPY_PID" || true
        SPY_PID=""
        if [[ -s "$work/pyspy-$tag.raw" ]]; then
            python3 "$here/real_server_tables.py" pyspy "$work/pyspy-$tag.raw" >"$work/pyspy-$tag.txt"
        fi
    fi
    hwm=${hwm:-$(rss_kib "$server_pid" VmHWM)}
    stop_all

    local r=$work/report-$tag.json
    if [[ ! -s "$r" ]]; then
        echo "!! $tag: the controller exited with $rc and wrote no report: $(tail -n 5 "$work/controller-$tag.log")" >&2
        jq -nc --arg s "$server" --argjson u "$users" --argjson rc "$rc" \
            '{server: $s, users: $u, exit: $rc, report: null}' >>"$work/results.jsonl"
        return 0
    fi
    local start_ns end_ns win
    start_ns=$(($(date -d "$(jq -r .run.started_at "$r")" +%s%N) + $(jq '.run.warmup_seconds * 1e9 | floor' "$r")))
    win=$(jq .run.duration_seconds "$r")
    end_ns=$(awk -v a="$start_ns" -v d="$win" 'BEGIN { printf "%.0f", a + d * 1e9 }')
    local f=$work/cpu-$tag.samples
    jq -nc --arg s "$server" --argjson u "$users" --argjson rc "$rc" --arg think "$THINK" \
        --arg report "report-$tag.json" --argjson agents "$AGENTS" \
        --argjson server_cpu "$(window_cpu "$f" 2 "$start_ns" "$end_ns")" \
        --argjson mock_cpu "$(window_cpu "$f" 3 "$start_ns" "$end_ns")" \
        --argjson ctrl_cpu "$(window_cpu "$f" 4 "$start_ns" "$end_ns")" \
        --argjson agents_cpu "$(window_cpu "$f" 5 "$start_ns" "$end_ns")" \
        --argjson threads "${threads:-null}" --argjson children "${children:-null}" \
        --argjson hwm_kib "${hwm:-null}" --arg version "${NC_VERSION:-}" \
        '{server: $s, users: $u, exit: $rc, think: $think, agents: $agents, report: $report,
          cpu_s: {server: $server_cpu, mock: $mock_cpu, controller: $ctrl_cpu, agents: $agents_cpu},
          server_threads: $threads, server_children: $children, server_hwm_kib: $hwm_kib,
          real_version: $version}' >>"$work/results.jsonl"
    echo "== $tag: exit $rc, $(jq -r '"\(.summary.total_operations) calls, \(.summary.failed_operations) failed"' "$r")" >&2
}

for u in $USERS_LIST; do
    for s in $SERVERS; do
        run_one "$s" "$u"
    done
done

{
    echo "bench/real-server.sh: USERS_LIST=\"$USERS_LIST\" SERVERS=\"$SERVERS\" THINK=$THINK" \
        "${LOGIN_CONCURRENCY:+LOGIN_CONCURRENCY=$LOGIN_CONCURRENCY }DURATION=$DURATION" \
        "WARMUP=$WARMUP AGENTS=$AGENTS WORKLOAD=$WORKLOAD" \
        "server on core $SERVER_CPU, load on core $LOAD_CPU${NC_VERSION:+, nextcloud-mcp-server $NC_VERSION}"
    echo
    python3 "$here/real_server_tables.py" tables "$work"
    echo
    for t in "$work"/pyspy-*.txt; do
        [[ -s "$t" ]] || continue
        echo "py-spy, $(basename "$t" .txt):"
        cat "$t"
        echo
    done
    load_line
} | tee "$work/tables.md"
