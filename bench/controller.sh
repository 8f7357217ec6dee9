#!/usr/bin/env bash
# bench/controller.sh — the controller merging many agents (issue 20): one controller with N
# simulated agents (sim-agents) reporting every second; the controller's CPU share of one core
# while it merges, and its RSS over time. Runs a series of N (the curve).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/controller.sh [-h]

For each N in AGENTS: starts a standalone mock-target (the controller provisions and logs in
its users there; nothing else calls it), then
  controller start --no-spawn --listen 127.0.0.1:0 --agents N --users N*USERS_PER_AGENT
                   --url MCP_URL --nextcloud-url ADMIN_URL --think-time THINK
                   --workload WORKLOAD --warmup WARMUP --duration D -o report.json
pinned to CTRL_CPUS, and `sim-agents --agents N` pinned to SIM_CPUS: N gRPC links that
register, attach, beat, say Ready and send an interval delta every second (the scenario's
workflow, step and tool series, every 10th with the users who called since, as an agent
does; synthetic latencies) and a
chunked final report, as real agents do, without calling the target. D is LONG_DURATION
when N is LONG, else DURATION. Every SAMPLE_EVERY seconds utime+stime and VmRSS of the
controller are read from /proc. Prints per N: the controller's CPU share of one core over
the measured window (from SKIP seconds into it to its end), RSS every ROW_EVERY seconds of
the window, its growth after the first minute, and the sim-agents' own CPU share; then one
table over every N.

Environment (defaults in brackets):
  BIN              directory with controller, mock-target, sim-agents   [target/release]
  AGENTS           the agent counts to run, in order                    [8 64 256]
  USERS_PER_AGENT  users per simulated agent                            [160]
  THINK            think time (sets the workflow rate per agent)        [250ms]
  WORKLOAD         workload                                             [mixed]
  DURATION         measured duration of each run                        [2m]
  LONG             the agent count that runs LONG_DURATION instead      [64]
  LONG_DURATION    its measured duration                                [10m]
  WARMUP           warmup                                               [10s]
  SKIP             seconds of the window left out of the CPU share      [5]
  SAMPLE_EVERY     seconds between /proc samples                        [1]
  ROW_EVERY        seconds between rows of the RSS table                [60 for ≥ 5 min, else 20]
  CTRL_CPUS        taskset cores of the controller ('' = not pinned)    [0]
  SIM_CPUS         taskset cores of sim-agents and the mock             [1]
  NICE             niceness of the measured processes                   [-15 as root, else 0]
  KEEP_DIR         copy reports, samples and logs here (one dir per N)  [not kept]

Exit code: 0, or 1 when a run failed (the controller's exit code was not 0, an agent failed).
Example: BIN=target/release AGENTS=64 LONG_DURATION=2m bench/controller.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
AGENTS=${AGENTS:-8 64 256}
USERS_PER_AGENT=${USERS_PER_AGENT:-160}
THINK=${THINK:-250ms}
WORKLOAD=${WORKLOAD:-mixed}
DURATION=${DURATION:-2m}
LONG=${LONG:-64}
LONG_DURATION=${LONG_DURATION:-10m}
WARMUP=${WARMUP:-10s}
SKIP=${SKIP:-5}
SAMPLE_EVERY=${SAMPLE_EVERY:-1}
ROW_EVERY=${ROW_EVERY:-}
CTRL_CPUS=${CTRL_CPUS-0}
SIM_CPUS=${SIM_CPUS-1}
KEEP_DIR=${KEEP_DIR:-}

need_tool jq jq
need_tool awk mawk
need_bins "$BIN" controller mock-target sim-agents
if [[ -n "$CTRL_CPUS$SIM_CPUS" ]]; then need_tool taskset util-linux; fi
[[ "$USERS_PER_AGENT" =~ ^[0-9]+$ && "$USERS_PER_AGENT" -gt 0 ]] ||
    die "USERS_PER_AGENT must be a positive integer, got $USERS_PER_AGENT"
BIN=$(cd "$BIN" && pwd)

# seconds DURATION: 90s, 2m, 1h or bare seconds, as whole seconds.
seconds() {
    local d=$1
    case "$d" in
    *ms) echo $(((${d%ms} + 999) / 1000)) ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
    esac
}
# The taskset prefixes (empty when not pinned).
CTRL_PIN=() SIM_PIN=()
if [[ -n "$CTRL_CPUS" ]]; then CTRL_PIN=(taskset -c "$CTRL_CPUS"); fi
if [[ -n "$SIM_CPUS" ]]; then SIM_PIN=(taskset -c "$SIM_CPUS"); fi

work=$(mktemp -d -t mcp-swarm-controller.XXXXXX)
chmod 700 "$work"
(umask 077 && random_secret >"$work/cluster_secret")
MOCK_PID="" CTRL_PID="" SIM_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$SIM_PID" "$CTRL_PID" "$MOCK_PID"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
table=()

# run_one N: one controller and N simulated agents; appends a row to `table`.
run_one() {
    local n=$1 dir="$work/n$1" dur users t0 line url
    mkdir -p "$dir"
    dur=$DURATION
    [[ "$n" == "$LONG" ]] && dur=$LONG_DURATION
    users=$((n * USERS_PER_AGENT))
    local dur_s warm_s row
    dur_s=$(seconds "$dur")
    warm_s=$(seconds "$WARMUP")
    row=${ROW_EVERY:-$((dur_s >= 300 ? 60 : 20))}

    start_mock "$BIN" "$dir" "$SIM_CPUS"
    t0=$(now_ns)
    MCP_SWARM_CLUSTER_SECRET=$(<"$work/cluster_secret") \
        NEXTCLOUD_ADMIN_USER=admin NEXTCLOUD_ADMIN_PASSWORD=$(<"$dir/admin_password") \
        "${NICE_CMD[@]}" "${CTRL_PIN[@]}" "$BIN/controller" start --no-spawn \
        --listen 127.0.0.1:0 --agents "$n" --users "$users" \
        --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
        --think-time "$THINK" --workload "$WORKLOAD" --warmup "$WARMUP" --duration "$dur" \
        --agent-timeout 600s --state-dir "$dir/state" --no-history -o "$dir/report.json" \
        >"$dir/controller.out" 2>"$dir/controller.log" &
    CTRL_PID=$!
    url=""
    for ((i = 0; i < 200; i++)); do
        line=$(grep -m 1 "listening for agents on" "$dir/controller.log" 2>/dev/null || true)
        if [[ -n "$line" ]]; then
            url=$(grep -o 'http://[0-9.:]*' <<<"$line" | head -n 1)
            break
        fi
        kill -0 "$CTRL_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n "$url" ]] || die "the controller printed no gRPC address: $(tail -n 3 "$dir/controller.log")"
    MCP_SWARM_CLUSTER_SECRET=$(<"$work/cluster_secret") RUST_LOG=${SIM_LOG:-warn} \
        "${NICE_CMD[@]}" "${SIM_PIN[@]}" "$BIN/sim-agents" --controller "$url" --agents "$n" \
        >"$dir/sim.out" 2>"$dir/sim.log" &
    SIM_PID=$!

    # Samples: seconds since t0, controller CPU ticks, controller VmRSS KiB, sim CPU ticks.
    local t_started="" now
    : >"$dir/samples"
    while kill -0 "$CTRL_PID" 2>/dev/null; do
        now=$(now_ns)
        printf '%s %s %s %s\n' "$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')" \
            "$(cpu_ticks "$CTRL_PID")" "$(rss_kib "$CTRL_PID" VmRSS)" "$(cpu_ticks "$SIM_PID")" \
            >>"$dir/samples"
        if [[ -z "$t_started" ]] && grep -q "run started" "$dir/controller.log" 2>/dev/null; then
            t_started=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
        fi
        sleep "$SAMPLE_EVERY"
    done
    local rc=0 sim_rc=0
    wait "$CTRL_PID" || rc=$?
    CTRL_PID=""
    wait "$SIM_PID" || sim_rc=$?
    SIM_PID=""
    stop_pid "$MOCK_PID"
    MOCK_PID=""
    ((rc == 0 && sim_rc == 0)) || status=1
    [[ -n "$t_started" ]] || {
        echo "N=$n: the run never started (controller exit $rc); last log lines:" >&2
        tail -n 5 "$dir/controller.log" >&2
        return 0
    }

    # The window: from "run started" + the start delay (0.3 s) + warmup, for the duration.
    local from to
    from=$(awk -v s="$t_started" -v w="$warm_s" -v k="$SKIP" 'BEGIN { print s + 0.3 + w + k }')
    to=$(awk -v s="$t_started" -v w="$warm_s" -v d="$dur_s" 'BEGIN { print s + 0.3 + w + d }')
    local stats
    stats=$(awk -v from="$from" -v to="$to" -v hz="$CLK_TCK" -v row="$row" -v skip="$SKIP" '
        $2 == "" || $3 == "" { next }
        {
            t[NR] = $1; c[NR] = $2; r[NR] = $3; s[NR] = $4; n = NR
            if ($3 > peak) peak = $3
        }
        END {
            for (i = 1; i <= n; i++) {
                if (a == "" && t[i] >= from) a = i
                if (t[i] <= to) b = i
            }
            if (a == "" || b == "" || b <= a) { print "none"; exit }
            secs = t[b] - t[a]
            printf "cpu %.2f\n", 100 * (c[b] - c[a]) / hz / secs
            printf "simcpu %.2f\n", 100 * (s[b] - s[a]) / hz / secs
            printf "secs %.0f\n", secs
            printf "peak %d\n", peak
            # RSS every `row` seconds from the start of the window (SKIP before `from`).
            start = from - skip
            for (k = 0; start + k * row <= t[b] + 0.5; k++) {
                want = start + k * row; best = ""
                for (i = a; i <= b; i++) if (t[i] >= want - 0.01) { best = i; break }
                if (best == "") best = b
                printf "row %d %d\n", k * row, r[best]
            }
            # Growth after the first minute: RSS at the end minus RSS 60 s into the window.
            m = ""
            for (i = a; i <= b; i++) if (t[i] >= start + 60) { m = i; break }
            if (m != "" && b > m) printf "growth %d %.1f\n", r[b] - r[m], (t[b] - t[m]) / 60
            printf "end %d\n", r[b]
        }' "$dir/samples")
    if [[ "$stats" == none ]]; then
        echo "N=$n: too few samples in the window" >&2
        return 0
    fi
    local cpu simcpu secs peak end growth minutes
    cpu=$(awk '$1 == "cpu" { print $2 }' <<<"$stats")
    simcpu=$(awk '$1 == "simcpu" { print $2 }' <<<"$stats")
    secs=$(awk '$1 == "secs" { print $2 }' <<<"$stats")
    peak=$(awk '$1 == "peak" { print $2 }' <<<"$stats")
    end=$(awk '$1 == "end" { print $2 }' <<<"$stats")
    growth=$(awk '$1 == "growth" { print $2 }' <<<"$stats")
    minutes=$(awk '$1 == "growth" { print $3 }' <<<"$stats")

    local ops="-" wfs="-" lost="-" agents_in="-" bytes=0 sim_line intervals="-" finals="-" setup="-"
    if [[ -s "$dir/report.json" ]]; then
        bytes=$(stat -c %s "$dir/report.json")
        ops=$(jq '.summary.total_operations' "$dir/report.json")
        wfs=$(jq '.summary.total_workflows' "$dir/report.json")
        agents_in=$(jq '.agents | length' "$dir/report.json")
        lost=$(jq '[.agents[] | select(.lost)] | length' "$dir/report.json")
    fi
    sim_line=$(tail -n 1 "$dir/sim.out" 2>/dev/null || true)
    if [[ -n "$sim_line" ]]; then
        intervals=$(jq '.intervals' <<<"$sim_line")
        finals=$(jq '.final_reports' <<<"$sim_line")
    fi
    setup=$t_started
    mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
    echo "== N=$n agents: $users users, think $THINK, workload $WORKLOAD, warmup $WARMUP, duration $dur"
    echo "controller CPU      ${cpu}% of one core over ${secs} s of the window (utime+stime)"
    echo "sim-agents CPU      ${simcpu}% of one core (the $n simulated agents together)"
    echo "controller RSS      peak sampled $(mib "$peak") MiB, $(mib "$end") MiB at the end of the window"
    if [[ -n "$growth" ]]; then
        echo "growth              $(awk -v g="$growth" 'BEGIN { printf "%+.1f", g / 1024 }') MiB over the last ${minutes} min of the window (after its first minute)"
    fi
    echo "RSS over the window (s → MiB):"
    awk '$1 == "row" { printf "  %5d s  %8.1f MiB\n", $2, $3 / 1024 }' <<<"$stats"
    echo "setup               run started ${setup} s after the controller"
    echo "report              $(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1e6 }') MB; operations $ops, workflows $wfs; agents $agents_in, lost $lost"
    echo "sim-agents          intervals sent $intervals, final reports $finals; exit $sim_rc"
    echo "controller exit     $rc"
    echo
    table+=("| $n | $users | $dur | ${cpu}% | $(mib "$peak") | ${growth:+$(awk -v g="$growth" 'BEGIN { printf "%+.1f", g / 1024 }') MiB / ${minutes} min} | ${simcpu}% | $ops | $lost |")
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR/n$n"
        cp "$dir"/report.json "$dir"/samples "$dir"/*.log "$dir"/sim.out "$KEEP_DIR/n$n"/ 2>/dev/null || true
    fi
}

for n in $AGENTS; do
    [[ "$n" =~ ^[0-9]+$ && "$n" -gt 0 ]] || die "AGENTS must be positive integers, got $n"
    run_one "$n"
done

echo "== bench/controller.sh: binaries $BIN"
echo "| agents | users | window | controller CPU (one core) | peak RSS MiB | RSS growth after the first minute | sim-agents CPU | operations | lost agents |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${table[@]}"
load_line
exit "$status"
