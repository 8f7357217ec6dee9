#!/usr/bin/env bash
# bench/overload.sh — a target that cannot keep up (issue "numbers that stay true when the target
# falls behind"): the mock serves about WORKERS / LATENCY calls a second; the open model offers
# more. Prints what the mock counted it served beside what the report says, second by second.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/overload.sh [-h]

Starts a standalone mock-target on 127.0.0.1 (free port) with --latency LATENCY and
--max-concurrency WORKERS (it serves about WORKERS / LATENCY tool calls a second), runs
  controller start --agents AGENTS --users USERS --workload baseline --rate RATE
                   --max-in-flight MAX_IN_FLIGHT --duration D --warmup 0s -o report.json
against it, reads the tool calls the mock answered per tenth of a second (GET /mock/stats),
and prints the report's achieved throughput, offered rate, drain and verdict beside the
mock's served rate, then each second of the report's timeline beside the mock's count for
the same second.

Environment (defaults in brackets):
  BIN            directory with agent, controller, mock-target    [target/release]
  LATENCY        mock latency per MCP request                      [20ms]
  WORKERS        mock requests worked on at once                   [2]
  RATE           workflow starts per second (baseline: 6 calls)    [30]
  MAX_IN_FLIGHT  --max-in-flight across the cluster                [60]
  USERS          users                                             [20]
  AGENTS         agents                                            [1]
  DURATION       measured duration                                 [15s]
  NICE           niceness of mock, controller and agents           [-15 as root, else 0]
  KEEP_DIR       copy report.json, the console and the logs here   [not kept]

Exit code: the controller's.
Example: BIN=target/release RATE=30 bench/overload.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
LATENCY=${LATENCY:-20ms}
WORKERS=${WORKERS:-2}
RATE=${RATE:-30}
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-60}
USERS=${USERS:-20}
AGENTS=${AGENTS:-1}
DURATION=${DURATION:-15s}
KEEP_DIR=${KEEP_DIR:-}

need_tool jq jq
need_tool curl curl
need_bins "$BIN" agent controller mock-target
BIN=$(cd "$BIN" && pwd)

work=$(mktemp -d -t mcp-swarm-overload.XXXXXX)
chmod 700 "$work"
MOCK_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$MOCK_PID"
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR"
        cp "$work"/report.json "$work"/*.out "$work"/*.log "$KEEP_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MOCK_EXTRA_ARGS=(--latency "$LATENCY" --max-concurrency "$WORKERS")
start_mock "$BIN" "$work"

rc=0
NEXTCLOUD_ADMIN_USER=admin NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") \
    "${NICE_CMD[@]}" "$BIN/controller" start --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
    --agent-bin "$BIN/agent" --agents "$AGENTS" --users "$USERS" --workload baseline \
    --rate "$RATE" --max-in-flight "$MAX_IN_FLIGHT" --duration "$DURATION" --warmup 0s \
    --state-dir "$work/state" -o "$work/report.json" \
    >"$work/console.out" 2>"$work/controller.log" || rc=$?
[[ -s "$work/report.json" ]] || die "no report (exit $rc): $(tail -n 3 "$work/controller.log")"

# The mock's served counts; the admin password goes to curl on stdin, never in argv.
printf 'user = "admin:%s"\n' "$(<"$work/admin_password")" |
    curl -sf -K - "$MOCK_ADMIN_URL/mock/stats" >"$work/stats.json" ||
    die "GET /mock/stats failed"

jq -r --slurpfile stats "$work/stats.json" '
  ($stats[0].served_bucket_ms) as $w
  | ($stats[0].tool_calls_served) as $b
  | (.run.started_at | sub("\\.(?<ms>[0-9]+)Z$"; "Z") | fromdateiso8601) as $s
  | (.run.started_at | capture("\\.(?<ms>[0-9]+)Z$").ms | tonumber) as $ms
  | (($s * 1000 + $ms) + .run.warmup_seconds * 1000) as $from
  | def served($a; $z): [$b[] | ([([$z, .[0] + $w] | min) - ([$a, .[0]] | max), 0] | max) as $o | .[1] * $o / $w] | add // 0;
  .summary as $sum
  | "report: \(.summary.total_operations) calls, \($sum.throughput_per_sec) calls/s achieved in \($sum.duration) s, \($sum.drain_operations) more in \($sum.drain_duration) s of drain",
    "mock:   \(served($from; $from + $sum.duration * 1000) / $sum.duration * 100 | round / 100) calls/s served in the same window",
    "offered: \(.verdict.offered_starts_per_sec // "-") starts/s, \(.verdict.offered_operations_per_sec // "-" ) calls/s; dropped \(.verdict.dropped_starts), late \(.verdict.late_starts)",
    "verdict: \(if .verdict.fell_behind then "FELL BEHIND" else "KEPT UP" end). \(.verdict.text)",
    "",
    "second  report  mock   (calls completed in that second; d = drain)",
    (.timeseries[] | "\(.t | tostring | .[0:6])\t\(.operations)\t\(served($from + (.t - 1) * 1000; $from + .t * 1000) | round)\(if .drain then "\td" else "" end)")
' "$work/report.json"
echo "binaries $BIN; mock --latency $LATENCY --max-concurrency $WORKERS; rate $RATE/s, max in flight $MAX_IN_FLIGHT, $USERS users, $AGENTS agent(s)"
load_line
exit "$rc"
