#!/usr/bin/env bash
# bench/scale.sh — the scale case (SPEC §8): N users on one agent against a standalone mock
# target; peak RSS of the agent and of the controller, setup time, report size, operations.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/scale.sh [-h]

Starts a standalone mock-target on 127.0.0.1 (free port), runs
  controller start --url MCP_URL --nextcloud-url ADMIN_URL --agents 1 --users N
                   --think-time THINK --duration D --warmup W -o report.json
against it (provider nextcloud, admin credentials through the environment), samples
VmHWM/VmRSS of the controller and of the agent it spawns every 200 ms, and prints one
summary block. The run is killed when either process passes MAX_RSS_GB of RSS.

Environment (defaults in brackets):
  BIN          directory with agent, controller, mock-target      [target/release]
  USERS        number of users N                                   [10000]
  DURATION     measured duration                                   [30s]
  WARMUP       warmup                                              [5s]
  THINK        think time between workflows                        [30s]
  WORKLOAD     workload                                            [mixed]
  MAX_RSS_GB   abort when the agent's or controller's RSS passes   [12]
  AGENT_TIMEOUT  controller's --agent-timeout                      [600s]
  NICE         niceness of mock, controller and agent               [-15 as root, else 0]
  KEEP_DIR     copy report.json and the logs here                  [not kept]

Exit code: the controller's, or 4 when the run was aborted for RSS.
Example: BIN=target/release USERS=1000 DURATION=20s bench/scale.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
USERS=${USERS:-10000}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
THINK=${THINK:-30s}
WORKLOAD=${WORKLOAD:-mixed}
MAX_RSS_GB=${MAX_RSS_GB:-12}
AGENT_TIMEOUT=${AGENT_TIMEOUT:-600s}
KEEP_DIR=${KEEP_DIR:-}

need_tool jq jq
need_tool pgrep procps
need_tool awk mawk
need_bins "$BIN" agent controller mock-target
[[ "$USERS" =~ ^[0-9]+$ && "$USERS" -gt 0 ]] || die "USERS must be a positive integer, got $USERS"
BIN=$(cd "$BIN" && pwd)
max_rss_kib=$(awk -v g="$MAX_RSS_GB" 'BEGIN { printf "%.0f", g * 1024 * 1024 }')

work=$(mktemp -d -t mcp-swarm-scale.XXXXXX)
chmod 700 "$work"
MOCK_PID="" CTRL_PID="" AGENT_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$CTRL_PID" "$AGENT_PID" "$MOCK_PID"
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR"
        cp "$work"/report.json "$work"/*.log "$KEEP_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_mock "$BIN" "$work"

t0=$(now_ns)
NEXTCLOUD_ADMIN_USER=admin NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") \
    "${NICE_CMD[@]}" "$BIN/controller" start --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
    --agent-bin "$BIN/agent" --agents 1 --users "$USERS" --think-time "$THINK" \
    --workload "$WORKLOAD" --duration "$DURATION" --warmup "$WARMUP" \
    --agent-timeout "$AGENT_TIMEOUT" --state-dir "$work/state" -o "$work/report.json" \
    >"$work/controller.out" 2>"$work/controller.log" &
CTRL_PID=$!

# Samples every 200 ms until the controller exits. VmHWM is the kernel's own peak; the
# sampled VmRSS maximum is kept next to it as a check. Log lines mark the phases.
ctrl_hwm=0 ctrl_rss=0 agent_hwm=0 agent_rss=0 aborted=""
t_created="" t_logged_in="" t_ready="" t_started=""
max() { if (("${2:-0}" > $1)); then echo "$2"; else echo "$1"; fi; }
mark() { # mark PATTERN: prints seconds since t0 when the controller's log has PATTERN
    grep -q "$1" "$work/controller.log" 2>/dev/null &&
        awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
    return 0
}
while kill -0 "$CTRL_PID" 2>/dev/null; do
    if [[ -z "$AGENT_PID" ]]; then
        AGENT_PID=$(pgrep -P "$CTRL_PID" | head -n 1 || true)
    fi
    if [[ -n "$(rss_kib "$CTRL_PID" VmRSS)" ]]; then
        ctrl_hwm=$(max "$ctrl_hwm" "$(rss_kib "$CTRL_PID" VmHWM)")
        ctrl_rss=$(max "$ctrl_rss" "$(rss_kib "$CTRL_PID" VmRSS)")
    fi
    if [[ -n "$AGENT_PID" && -n "$(rss_kib "$AGENT_PID" VmRSS)" ]]; then
        agent_hwm=$(max "$agent_hwm" "$(rss_kib "$AGENT_PID" VmHWM)")
        agent_rss=$(max "$agent_rss" "$(rss_kib "$AGENT_PID" VmRSS)")
    fi
    if [[ -z "$aborted" ]] && ((ctrl_rss > max_rss_kib || agent_rss > max_rss_kib)); then
        aborted="RSS passed MAX_RSS_GB=${MAX_RSS_GB} (controller ${ctrl_rss} KiB, agent ${agent_rss} KiB)"
        echo "ABORT: $aborted; killing the run" >&2
        [[ -n "$AGENT_PID" ]] || AGENT_PID=$(pgrep -P "$CTRL_PID" | head -n 1 || true)
        kill -KILL "$CTRL_PID" ${AGENT_PID:+"$AGENT_PID"} 2>/dev/null || true
    fi
    [[ -n "$t_created" ]] || t_created=$(mark "users created")
    [[ -n "$t_logged_in" ]] || t_logged_in=$(mark "users logged in")
    [[ -n "$t_ready" ]] || t_ready=$(mark "all agents ready")
    [[ -n "$t_started" ]] || t_started=$(mark "run started")
    sleep 0.2
done
rc=0
wait "$CTRL_PID" || rc=$?
CTRL_PID=""
[[ -n "$aborted" ]] && rc=4

report_bytes=0 ops="-" failed="-" lost="-" workflows="-"
if [[ -s "$work/report.json" ]]; then
    report_bytes=$(stat -c %s "$work/report.json")
    ops=$(jq '.summary.total_operations' "$work/report.json")
    failed=$(jq '.summary.failed_operations' "$work/report.json")
    workflows=$(jq '.summary.total_workflows' "$work/report.json")
    lost=$(jq '[.agents[] | select(.lost)] | length' "$work/report.json")
fi

per_user() { awk -v k="$1" -v n="$USERS" 'BEGIN { printf "%.1f", k / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cat <<EOF
== bench/scale.sh: $USERS users, 1 agent, think $THINK, workload $WORKLOAD, warmup $WARMUP, duration $DURATION
binaries            $BIN
agent peak RSS      $(mib "$agent_hwm") MiB (VmHWM $agent_hwm KiB, max sampled VmRSS $agent_rss KiB), $(per_user "$agent_hwm") KiB/user
controller peak RSS $(mib "$ctrl_hwm") MiB (VmHWM $ctrl_hwm KiB, max sampled VmRSS $ctrl_rss KiB), $(per_user "$ctrl_hwm") KiB/user
setup               ${t_ready:-?} s to "all agents ready" (users created ${t_created:-?} s, logged in ${t_logged_in:-?} s, run started ${t_started:-?} s)
report              $(awk -v b="$report_bytes" 'BEGIN { printf "%.2f", b / 1e6 }') MB ($report_bytes bytes)
operations          $ops (workflows $workflows), failed $failed
lost agents         $lost
exit code           $rc${aborted:+ (aborted: $aborted)}
$(load_line)
EOF
if ((rc != 0)) && [[ -z "$aborted" ]]; then
    echo "-- last controller log lines:" >&2
    tail -n 5 "$work/controller.log" >&2
fi
exit "$rc"
