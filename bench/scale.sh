#!/usr/bin/env bash
# bench/scale.sh — the scale case (SPEC §8): N users over AGENTS agents (one by default) against
# a standalone mock target; peak RSS of the agents and of the controller, setup time, report
# size (and the per-user CSV beside it past 10,000 users), operations.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/scale.sh [-h]

Starts a standalone mock-target on 127.0.0.1 (free port), runs
  controller start --url MCP_URL --nextcloud-url ADMIN_URL --agents AGENTS --users N
                   --think-time THINK --duration D --warmup W [--mcp-version V] -o report.json
against it (provider nextcloud, admin credentials through the environment), samples
VmHWM/VmRSS of the controller and of each agent it spawns every 200 ms, and prints one
summary block. The run is killed when either process passes MAX_RSS_GB of RSS.

Environment (defaults in brackets):
  BIN          directory with agent, controller, mock-target      [target/release]
  USERS        number of users N                                   [10000]
  AGENTS       spawned agents                                      [1]
  MCP_VERSION  the agents' --mcp-version (2026-07-28, 2025-11-25…)  [the agents' default, auto]
  MOCK_MAX_SESSIONS  the mock's session cap, for 2025-11-25 runs   [the mock's default]
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
AGENTS=${AGENTS:-1}
MCP_VERSION=${MCP_VERSION:-}
MOCK_MAX_SESSIONS=${MOCK_MAX_SESSIONS:-}
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
[[ "$AGENTS" =~ ^[0-9]+$ && "$AGENTS" -gt 0 ]] || die "AGENTS must be a positive integer, got $AGENTS"
BIN=$(cd "$BIN" && pwd)
max_rss_kib=$(awk -v g="$MAX_RSS_GB" 'BEGIN { printf "%.0f", g * 1024 * 1024 }')

work=$(mktemp -d -t mcp-swarm-scale.XXXXXX)
chmod 700 "$work"
MOCK_PID="" CTRL_PID=""
AGENT_PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$CTRL_PID" "${AGENT_PIDS[@]}" "$MOCK_PID"
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR"
        cp "$work"/report.json "$work"/report.users.csv "$work"/*.log "$KEEP_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "$MOCK_MAX_SESSIONS" ]]; then MOCK_EXTRA_ARGS=(--max-sessions "$MOCK_MAX_SESSIONS"); fi
start_mock "$BIN" "$work"
version_args=()
if [[ -n "$MCP_VERSION" ]]; then version_args=(--mcp-version "$MCP_VERSION"); fi

t0=$(now_ns)
NEXTCLOUD_ADMIN_USER=admin NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") \
    "${NICE_CMD[@]}" "$BIN/controller" start --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
    --agent-bin "$BIN/agent" --agents "$AGENTS" --users "$USERS" --think-time "$THINK" "${version_args[@]}" \
    --workload "$WORKLOAD" --duration "$DURATION" --warmup "$WARMUP" \
    --agent-timeout "$AGENT_TIMEOUT" --state-dir "$work/state" --no-history -o "$work/report.json" \
    >"$work/controller.out" 2>"$work/controller.log" &
CTRL_PID=$!

# Samples every 200 ms until the controller exits. VmHWM is the kernel's own peak; the
# sampled VmRSS maximum is kept next to it as a check. Log lines mark the phases.
ctrl_hwm=0 ctrl_rss=0 agent_rss=0 aborted=""
declare -A agent_hwm_of=()
t_created="" t_logged_in="" t_ready="" t_started=""
max() { if (("${2:-0}" > $1)); then echo "$2"; else echo "$1"; fi; }
mark() { # mark PATTERN: prints seconds since t0 when the controller's log has PATTERN
    grep -q "$1" "$work/controller.log" 2>/dev/null &&
        awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
    return 0
}
while kill -0 "$CTRL_PID" 2>/dev/null; do
    if ((${#AGENT_PIDS[@]} < AGENTS)); then
        mapfile -t AGENT_PIDS < <(pgrep -P "$CTRL_PID" | sort -n)
    fi
    if [[ -n "$(rss_kib "$CTRL_PID" VmRSS)" ]]; then
        ctrl_hwm=$(max "$ctrl_hwm" "$(rss_kib "$CTRL_PID" VmHWM)")
        ctrl_rss=$(max "$ctrl_rss" "$(rss_kib "$CTRL_PID" VmRSS)")
    fi
    for pid in "${AGENT_PIDS[@]}"; do
        if [[ -n "$(rss_kib "$pid" VmRSS)" ]]; then
            agent_hwm_of[$pid]=$(max "${agent_hwm_of[$pid]:-0}" "$(rss_kib "$pid" VmHWM)")
            agent_rss=$(max "$agent_rss" "$(rss_kib "$pid" VmRSS)")
        fi
    done
    if [[ -z "$aborted" ]] && ((ctrl_rss > max_rss_kib || agent_rss > max_rss_kib)); then
        aborted="RSS passed MAX_RSS_GB=${MAX_RSS_GB} (controller ${ctrl_rss} KiB, an agent ${agent_rss} KiB)"
        echo "ABORT: $aborted; killing the run" >&2
        kill -KILL "$CTRL_PID" "${AGENT_PIDS[@]}" 2>/dev/null || true
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

# The agents' peaks: the highest of one agent, and their sum (per user: the sum over users).
agent_hwm=0 agent_sum=0
for pid in "${!agent_hwm_of[@]}"; do
    agent_hwm=$(max "$agent_hwm" "${agent_hwm_of[$pid]}")
    agent_sum=$((agent_sum + agent_hwm_of[$pid]))
done
mock_hwm=$(rss_kib "$MOCK_PID" VmHWM)
report_bytes=0 csv_bytes=0 ops="-" failed="-" lost="-" workflows="-"
if [[ -s "$work/report.users.csv" ]]; then
    csv_bytes=$(stat -c %s "$work/report.users.csv")
fi
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
== bench/scale.sh: $USERS users, $AGENTS agent(s), mcp-version ${MCP_VERSION:-default}, think $THINK, workload $WORKLOAD, warmup $WARMUP, duration $DURATION
binaries            $BIN
agent peak RSS      $(mib "$agent_hwm") MiB the highest agent (VmHWM; max sampled VmRSS $agent_rss KiB), all agents $(mib "$agent_sum") MiB: $(per_user "$agent_sum") KiB/user
controller peak RSS $(mib "$ctrl_hwm") MiB (VmHWM $ctrl_hwm KiB, max sampled VmRSS $ctrl_rss KiB), $(per_user "$ctrl_hwm") KiB/user
mock peak RSS       $(mib "${mock_hwm:-0}") MiB: $(per_user "${mock_hwm:-0}") KiB/user (its sessions, users, notes and files)
setup               ${t_ready:-?} s to "all agents ready" (users created ${t_created:-?} s, logged in ${t_logged_in:-?} s, run started ${t_started:-?} s)
report              $(awk -v b="$report_bytes" 'BEGIN { printf "%.2f", b / 1e6 }') MB ($report_bytes bytes); per-user CSV $(awk -v b="$csv_bytes" 'BEGIN { printf "%.2f", b / 1e6 }') MB
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
