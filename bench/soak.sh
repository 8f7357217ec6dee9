#!/usr/bin/env bash
# bench/soak.sh — memory over a long run: a controller and its spawned agents against a
# standalone mock target with short-lived tokens (refreshed all along), RSS of every process
# sampled every SAMPLE seconds; prints the curve and the growth after the first 5 minutes.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/soak.sh [-h]

Starts a standalone mock-target (--token-ttl TOKEN_TTL) on 127.0.0.1 (free port), runs
  controller start --url MCP_URL --nextcloud-url ADMIN_URL --agents AGENTS --users USERS
                   --think-time THINK --duration DURATION --warmup WARMUP -o report.json
against it, samples VmRSS of the controller, of each agent it spawns and of the mock every
SAMPLE seconds, and prints RSS every STEP of the run and, per process, its RSS 5 minutes into
the run against the highest and the last RSS after that ("flat" when within 10%).

Environment (defaults in brackets):
  BIN          directory with agent, controller, mock-target      [target/release]
  USERS        number of users                                     [1000]
  AGENTS       spawned agents                                      [2]
  THINK        think time between workflows                        [5s]
  DURATION     measured duration                                   [1h]
  WARMUP       warmup                                              [10s]
  TOKEN_TTL    the mock's access token lifetime                    [60s]
  WORKLOAD     workload                                            [mixed]
  SAMPLE       seconds between samples                             [10]
  STEP         seconds between the printed rows                    [300]
  KEEP_DIR     copy report.json, rss.csv and the logs here         [not kept]

Exit code: the controller's.
Example: DURATION=10m STEP=60 bench/soak.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
USERS=${USERS:-1000}
AGENTS=${AGENTS:-2}
THINK=${THINK:-5s}
DURATION=${DURATION:-1h}
WARMUP=${WARMUP:-10s}
TOKEN_TTL=${TOKEN_TTL:-60s}
WORKLOAD=${WORKLOAD:-mixed}
SAMPLE=${SAMPLE:-10}
STEP=${STEP:-300}
KEEP_DIR=${KEEP_DIR:-}

need_tool jq jq
need_tool pgrep procps
need_tool awk mawk
need_bins "$BIN" agent controller mock-target
for v in USERS AGENTS SAMPLE STEP; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || die "$v must be a positive integer, got ${!v}"
done
BIN=$(cd "$BIN" && pwd)

work=$(mktemp -d -t mcp-swarm-soak.XXXXXX)
chmod 700 "$work"
MOCK_PID="" CTRL_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$CTRL_PID" "$MOCK_PID"
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR"
        cp "$work"/report.json "$work"/rss.csv "$work"/*.log "$KEEP_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MOCK_EXTRA_ARGS=(--token-ttl "$TOKEN_TTL")
start_mock "$BIN" "$work"

NEXTCLOUD_ADMIN_USER=admin NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") \
    "${NICE_CMD[@]}" "$BIN/controller" start --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
    --agent-bin "$BIN/agent" --agents "$AGENTS" --users "$USERS" --think-time "$THINK" \
    --workload "$WORKLOAD" --duration "$DURATION" --warmup "$WARMUP" \
    --state-dir "$work/state" --no-history -o "$work/report.json" \
    >"$work/controller.out" 2>"$work/controller.log" &
CTRL_PID=$!
t0=$(now_ns)

# One CSV row per sample: seconds since the run started (-1 before), then KiB of RSS of the
# controller, the mock and each agent in the order the controller spawned them.
agents=()
started=""
echo "seconds,controller,mock$(for ((i = 1; i <= AGENTS; i++)); do printf ',agent%d' "$i"; done)" >"$work/rss.csv"
while kill -0 "$CTRL_PID" 2>/dev/null; do
    if ((${#agents[@]} < AGENTS)); then
        mapfile -t agents < <(pgrep -P "$CTRL_PID" | sort -n)
    fi
    if [[ -z "$started" ]] && grep -q "run started" "$work/controller.log" 2>/dev/null; then
        started=$(now_ns)
    fi
    if [[ -n "$started" ]]; then
        at=$(awk -v a="$started" -v b="$(now_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')
        row="$at,$(rss_kib "$CTRL_PID" VmRSS),$(rss_kib "$MOCK_PID" VmRSS)"
        for ((i = 0; i < AGENTS; i++)); do
            row+=",$(rss_kib "${agents[$i]:-0}" VmRSS)"
        done
        echo "$row" >>"$work/rss.csv"
    fi
    sleep "$SAMPLE"
done
rc=0
wait "$CTRL_PID" || rc=$?
CTRL_PID=""
elapsed=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')

ops="-" failed="-" refreshes="-" points="-" lost="-"
if [[ -s "$work/report.json" ]]; then
    ops=$(jq '.summary.total_operations' "$work/report.json")
    failed=$(jq '.summary.failed_operations' "$work/report.json")
    refreshes=$(jq ".auth.refreshes" "$work/report.json")
    points=$(jq '.timeseries | length' "$work/report.json")
    lost=$(jq '[.agents[] | select(.lost)] | length' "$work/report.json")
fi

echo "== bench/soak.sh: $USERS users, $AGENTS agents, think $THINK, tokens $TOKEN_TTL, workload $WORKLOAD, warmup $WARMUP, duration $DURATION"
echo "binaries      $BIN"
echo "operations    $ops, failed $failed; token refreshes $refreshes; timeline points $points; lost agents $lost"
echo "exit code     $rc after ${elapsed} s; $(load_line)"
echo
echo "RSS in MiB, every $STEP s of the run (all samples in rss.csv):"
awk -F, -v step="$STEP" '
    NR == 1 { printf "%8s", "minute"; for (i = 2; i <= NF; i++) printf "%12s", $i; print ""; next }
    $1 >= next_at { printf "%8.1f", $1 / 60; for (i = 2; i <= NF; i++) printf "%12.1f", $i / 1024; print ""; next_at = $1 - $1 % step + step }
    { last = $0 }
    END { if (last != "") { n = split(last, f, ","); printf "%8.1f", f[1] / 60; for (i = 2; i <= n; i++) printf "%12.1f", f[i] / 1024; print "  (last)" } }
' "$work/rss.csv"
echo
echo "Growth after the first 5 minutes (RSS at 5 min -> highest after -> last):"
awk -F, '
    NR == 1 { for (i = 2; i <= NF; i++) name[i] = $i; cols = NF; next }
    $1 >= 300 && !have { for (i = 2; i <= cols; i++) { base[i] = $i; top[i] = $i }; have = 1 }
    have { for (i = 2; i <= cols; i++) { if ($i > top[i]) top[i] = $i; last[i] = $i } }
    END {
        if (!have) { print "  the run was shorter than 5 minutes"; exit }
        for (i = 2; i <= cols; i++) {
            g = base[i] > 0 ? (top[i] - base[i]) * 100 / base[i] : 0
            printf "  %-11s %8.1f -> %8.1f -> %8.1f MiB  %+6.1f%%  %s\n", name[i], base[i] / 1024, top[i] / 1024, last[i] / 1024, g, (g <= 10 ? "flat" : "GROWING")
        }
    }
' "$work/rss.csv"
exit "$rc"
