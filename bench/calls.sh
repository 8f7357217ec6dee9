#!/usr/bin/env bash
# bench/calls.sh — the per-call case (SPEC §8): wrk and then one agent making the same MCP
# tools/call on the same mock endpoint, the mock pinned to one core and the load to the other;
# calls/s and CPU µs per call of each, side by side.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/calls.sh [-h]

Starts a release mock-target pinned with taskset to MOCK_CPU, then on LOAD_CPU:
 1. wrk (-t1 -c CONNS, bench/calls.lua) making the JSON-RPC tools/call of TOOL over CONNS
    MCP sessions of one user (token from the mock's DCR + password grant, sessions from
    initialize), after an unmeasured warmup run of WARMUP seconds;
 2. one agent (controller --no-spawn, agent started here under taskset) with CONNS users,
    think time 0, scenario bench/calls.yaml (one single-step workflow calling TOOL).
For each: calls/s and CPU µs per call from utime+stime in /proc/PID/stat over the measured
window (wrk: its whole run; agent: the report's measured window, interpolated from 100 ms
samples), and the same for the mock. Prints a table with the ratio agent/wrk.

Environment (defaults in brackets):
  BIN        directory with agent, controller, mock-target   [target/release]
  CONNS      wrk connections = agent users                   [16]
  DURATION   measured seconds, the same for both             [20]
  WARMUP     warmup seconds before measuring, both           [5]
  MOCK_CPU   core of the mock (and the controller)           [1]
  LOAD_CPU   core of wrk and of the agent                    [0]
  SCHED      fifo: run mock, wrk, controller and agent        [fifo as root, else other]
             SCHED_FIFO (chrt -f 1); other: under nice NICE
  NICE       their niceness when SCHED=other                 [-15 as root, else 0]
  KEEP_DIR   copy the report and logs here                   [not kept]
  JSON       1: the mock answers with JSON bodies instead of   [0]
             SSE streams (mock-target --json-replies)
Example: BIN=target/release DURATION=20 bench/calls.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
CONNS=${CONNS:-16}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
MOCK_CPU=${MOCK_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
KEEP_DIR=${KEEP_DIR:-}
JSON=${JSON:-0}
# Must match bench/calls.yaml.
TOOL=nc_notes_search_notes
TOOL_ARGS='{"query":"bench"}'
# What wrk's sessions speak (initialize, Mcp-Session-Id); the agent is held to the same
# with --mcp-version (left to itself it would find the mock's 2026-07-28, with no sessions).
PROTOCOL=2025-11-25

need_tool wrk wrk
need_tool jq jq
need_tool curl curl
need_tool taskset util-linux
need_tool awk mawk
need_bins "$BIN" agent controller mock-target
for v in CONNS DURATION WARMUP MOCK_CPU LOAD_CPU; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got ${!v}"
done
((CONNS > 0 && DURATION > 0)) || die "CONNS and DURATION must be positive"
((MOCK_CPU != LOAD_CPU)) || die "MOCK_CPU and LOAD_CPU must differ"
(($(nproc --all) > MOCK_CPU && $(nproc --all) > LOAD_CPU)) || die "this machine has no core $MOCK_CPU or $LOAD_CPU"
BIN=$(cd "$BIN" && pwd)
# SCHED=fifo (the default for root) runs the measured processes real-time (chrt -f 1): a woken
# process then preempts other work on its core at once instead of waiting for a time slice,
# which on a machine shared with builds is what bounds calls/s otherwise. Each process stays
# pinned to its core, and the kernel still leaves 5% of each core to everything else.
if [[ -z "${SCHED:-}" ]]; then
    if ((EUID == 0)); then SCHED=fifo; else SCHED=other; fi
fi
# The controller shares the mock's core; it needs little CPU but must answer its agent's
# keepalives in time (the agent stops its load after 4 s without a word from it). Under FIFO a
# saturated mock at the same priority would hold it off for seconds, so it runs one above.
CTRL_NICE_CMD=("${NICE_CMD[@]}")
case "$SCHED" in
    other) ;;
    fifo) need_tool chrt util-linux && NICE_CMD=(chrt -f 1) CTRL_NICE_CMD=(chrt -f 2) ;;
    *) die "SCHED must be other or fifo, got $SCHED" ;;
esac

work=$(mktemp -d -t mcp-swarm-calls.XXXXXX)
chmod 700 "$work"
umask 077
MOCK_PID="" CTRL_PID="" AGENT_PID="" SAMPLER_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$SAMPLER_PID" "$AGENT_PID" "$CTRL_PID" "$MOCK_PID"
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR"
        cp "$work"/report.json "$work"/*.log "$work"/wrk.out "$work"/cpu.samples "$KEEP_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "$JSON" in
    0) ;;
    1) MOCK_EXTRA_ARGS=(--json-replies) ;;
    *) die "JSON must be 0 or 1, got $JSON" ;;
esac
start_mock "$BIN" "$work" "$MOCK_CPU"
printf 'user = "admin:%s"\n' "$(<"$work/admin_password")" >"$work/admin.curlrc"

# --- wrk's user, client, token and MCP sessions (secrets only in files of $work) ------------
random_secret >"$work/wrk_password"
curl -fsS -K "$work/admin.curlrc" -H 'OCS-APIRequest: true' -H 'Accept: application/json' \
    --data-urlencode userid=benchwrk --data-urlencode "password@$work/wrk_password" \
    "$MOCK_ADMIN_URL/ocs/v2.php/cloud/users" >/dev/null || die "cannot create wrk's user"
issuer=$(jq -r .issuer "$work/mock.out")
curl -fsS "$issuer/.well-known/oauth-authorization-server" >"$work/as.json"
client_id=$(curl -fsS -H 'Content-Type: application/json' \
    -d '{"client_name":"bench-wrk","redirect_uris":["http://127.0.0.1/callback"],"grant_types":["password"],"token_endpoint_auth_method":"none"}' \
    "$(jq -r .registration_endpoint "$work/as.json")" | jq -r .client_id)
curl -fsS --data-urlencode grant_type=password --data-urlencode "client_id=$client_id" \
    --data-urlencode username=benchwrk --data-urlencode "password@$work/wrk_password" \
    --data-urlencode "resource=$MOCK_MCP_URL" \
    "$(jq -r .token_endpoint "$work/as.json")" | jq -r .access_token >"$work/wrk_token" ||
    die "cannot get wrk's token"
printf 'Authorization: Bearer %s\n' "$(<"$work/wrk_token")" >"$work/auth.header"

mcp_post() { # mcp_post BODY [EXTRA CURL ARGS...]: POST to the MCP endpoint as wrk's user
    local body=$1
    shift
    curl -sS -H @"$work/auth.header" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "MCP-Protocol-Version: $PROTOCOL" \
        "$@" -d "$body" "$MOCK_MCP_URL"
}
# One MCP session per connection, as the agent holds one per user: wrk's requests rotate over
# them (all of wrk's user, so one token).
open_session() { # open_session: prints a new initialized session's id
    local sid status
    mcp_post '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'"$PROTOCOL"'","capabilities":{},"clientInfo":{"name":"bench-wrk","version":"1"}}}' \
        -D "$work/init.headers" -o "$work/init.body"
    sid=$(awk -F': *' 'tolower($1) == "mcp-session-id" { sub(/\r$/, "", $2); print $2 }' "$work/init.headers")
    [[ -n "$sid" ]] || die "initialize returned no Mcp-Session-Id: $(head -c 300 "$work/init.body")"
    status=$(mcp_post '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
        -H "Mcp-Session-Id: $sid" -o /dev/null -w '%{http_code}')
    [[ "$status" == 2* ]] || die "notifications/initialized answered HTTP $status"
    echo "$sid"
}
sessions=""
for ((i = 0; i < CONNS; i++)); do
    sessions+="${sessions:+,}$(open_session)"
done
session=${sessions%%,*}
call_body='{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"'"$TOOL"'","arguments":'"$TOOL_ARGS"'}}'
answer=$(mcp_post "$call_body" -H "Mcp-Session-Id: $session")
if ! grep -q '"result"' <<<"$answer" || grep -q '"isError":true' <<<"$answer"; then
    die "the probe call of $TOOL failed: $(head -c 300 <<<"$answer")"
fi

# --- 1. wrk ---------------------------------------------------------------------------------
run_wrk() { # run_wrk SECONDS: wrk on LOAD_CPU; prints its BENCH line and then `times`
    BENCH_TOKEN=$(<"$work/wrk_token") BENCH_SESSIONS=$sessions BENCH_PROTOCOL=$PROTOCOL \
        BENCH_BODY=$call_body "${NICE_CMD[@]}" taskset -c "$LOAD_CPU" \
        wrk -t1 -c "$CONNS" -d "${1}s" --timeout 10s -s "$here/calls.lua" "$MOCK_MCP_URL"
    times
}
if ((WARMUP > 0)); then
    (run_wrk "$WARMUP") >/dev/null
fi
mock_before=$(cpu_ticks "$MOCK_PID")
(run_wrk "$DURATION") >"$work/wrk.out"
mock_after=$(cpu_ticks "$MOCK_PID")
read -r wrk_requests wrk_duration_us wrk_errors < <(
    awk '/^BENCH / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                     print v["requests"], v["duration_us"], v["errors"] }' "$work/wrk.out")
[[ -n "${wrk_requests:-}" ]] || die "wrk printed no summary: $(tail -n 5 "$work/wrk.out")"
# The subshell's `times`: its children's (wrk's) user and system time, e.g. "0m1.230s 0m0.450s".
wrk_cpu_s=$(tail -n 1 "$work/wrk.out" | awk '{ s = 0; for (i = 1; i <= 2; i++) {
    split($i, p, "m"); sub(/s$/, "", p[2]); s += p[1] * 60 + p[2] } printf "%.3f", s }')
wrk_mock_cpu_s=$(awk -v a="$mock_before" -v b="$mock_after" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')

# --- 2. one agent ---------------------------------------------------------------------------
random_secret >"$work/cluster_secret"
MCP_SWARM_CLUSTER_SECRET=$(<"$work/cluster_secret") NEXTCLOUD_ADMIN_USER=admin \
    NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") "${CTRL_NICE_CMD[@]}" taskset -c "$MOCK_CPU" \
    "$BIN/controller" start --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
    --no-spawn --listen 127.0.0.1:0 --agents 1 --users "$CONNS" --think-time 0 \
    --scenario "$here/calls.yaml" --workload calls --duration "${DURATION}s" \
    --warmup "${WARMUP}s" --mcp-version "$PROTOCOL" --state-dir "$work/state" -o "$work/report.json" \
    >"$work/controller.out" 2>"$work/controller.log" &
CTRL_PID=$!
grpc_url=""
for ((i = 0; i < 100; i++)); do
    grpc_url=$(grep -o 'listening for agents on http://[0-9.:]*' "$work/controller.log" 2>/dev/null |
        awk '{ print $NF }' || true)
    [[ -n "$grpc_url" ]] && break
    kill -0 "$CTRL_PID" 2>/dev/null || die "controller exited: $(tail -n 3 "$work/controller.log")"
    sleep 0.1
done
[[ -n "$grpc_url" ]] || die "the controller did not say where it listens within 10 s"
MCP_SWARM_CLUSTER_SECRET=$(<"$work/cluster_secret") "${NICE_CMD[@]}" taskset -c "$LOAD_CPU" \
    "$BIN/agent" --controller "$grpc_url" --name bench-agent >"$work/agent.out" 2>"$work/agent.log" &
AGENT_PID=$!

# CPU ticks of agent, mock and controller every 100 ms: "unix_ns agent mock controller"
# ("-" once a process is gone: its last value is then its total). Sampling goes on until
# shortly after the controller exits, so that the window's end is always covered.
(
    while :; do
        a=$(cpu_ticks "$AGENT_PID") m=$(cpu_ticks "$MOCK_PID") c=$(cpu_ticks "$CTRL_PID")
        echo "$(now_ns) ${a:--} ${m:--} ${c:--}"
        sleep 0.1
    done
) >"$work/cpu.samples" &
SAMPLER_PID=$!
rc=0
wait "$CTRL_PID" || rc=$?
CTRL_PID=""
sleep 0.3
stop_pid "$SAMPLER_PID"
SAMPLER_PID=""
((rc == 0)) || die "the controller exited with $rc: $(tail -n 5 "$work/controller.log")"
[[ -s "$work/report.json" ]] || die "the controller wrote no report"

r=$work/report.json
window_start_ns=$(($(date -d "$(jq -r .run.started_at "$r")" +%s%N) + $(jq '.run.warmup_seconds * 1e9 | floor' "$r")))
window_s=$(jq .run.duration_seconds "$r")
window_end_ns=$(awk -v a="$window_start_ns" -v d="$window_s" 'BEGIN { printf "%.0f", a + d * 1e9 }')
agent_calls=$(jq .summary.total_operations "$r")
agent_failed=$(jq .summary.failed_operations "$r")
# CPU seconds of column COL over the window, interpolated linearly between samples; past a
# process's last sample its CPU time no longer grows.
window_cpu() {
    awk -v col="$1" -v a="$window_start_ns" -v b="$window_end_ns" -v t="$CLK_TCK" '
        function at(x,   i) {
            for (i = 2; i <= n; i++) if (ts[i] >= x)
                return v[i-1] + (v[i] - v[i-1]) * (x - ts[i-1]) / (ts[i] - ts[i-1])
            return v[n]
        }
        NF >= 4 { last = $1 }
        NF >= 4 && $col != "-" { n++; ts[n] = $1; v[n] = $col }
        END { if (n < 2 || ts[1] > a || last < b) { print "nan"; exit }
              printf "%.3f", (at(b) - at(a)) / t }' "$work/cpu.samples"
}
agent_cpu_s=$(window_cpu 2)
agent_mock_cpu_s=$(window_cpu 3)
ctrl_cpu_s=$(window_cpu 4)

# --- the table ------------------------------------------------------------------------------
awk -v tool="$TOOL" -v conns="$CONNS" -v dur="$DURATION" \
    -v wn="$wrk_requests" -v wd="$wrk_duration_us" -v we="$wrk_errors" -v wc="$wrk_cpu_s" -v wm="$wrk_mock_cpu_s" \
    -v an="$agent_calls" -v ad="$window_s" -v ae="$agent_failed" -v ac="$agent_cpu_s" -v am="$agent_mock_cpu_s" \
    -v cc="$ctrl_cpu_s" -v mc="$MOCK_CPU" -v lc="$LOAD_CPU" -v json="$JSON" 'BEGIN {
    wr = wn / (wd / 1e6); ar = an / ad
    wcpu = wc * 1e6 / wn; acpu = ac * 1e6 / an
    printf "== bench/calls.sh: %s, %d connections/users, %d s each; mock on core %d, load on core %d; answers %s\n", tool, conns, dur, mc, lc, json ? "JSON" : "SSE"
    printf "%-6s %-22s %10s %10s %14s %19s\n", "client", "tool", "calls", "calls/s", "CPU us/call", "mock CPU us/call"
    printf "%-6s %-22s %10d %10.0f %14.1f %19.1f   (errors %d)\n", "wrk", tool, wn, wr, wcpu, wm * 1e6 / wn, we
    printf "%-6s %-22s %10d %10.0f %14.1f %19.1f   (failed %d)\n", "agent", tool, an, ar, acpu, am * 1e6 / an, ae
    printf "%-6s %-22s %10s %10.2f %14.2f %19.2f\n", "ratio", "agent/wrk", "", ar / wr, acpu / wcpu, (am / an) / (wm / wn)
    printf "controller CPU over the agent window: %.2f s (on core %d with the mock)\n", cc, mc
}'
load_line
