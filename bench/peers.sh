#!/usr/bin/env bash
# bench/peers.sh — beside a peer (issue 20, item 4): `cargo pmcp loadtest` and one of our
# agents making the same MCP tools/call on the same mock endpoint, the same virtual users for the
# same duration, both pinned; calls/s, CPU µs per call and RSS per virtual user of each.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: [VAR=value ...] bench/peers.sh [-h]

Starts a release mock-target with --json-replies (cargo-pmcp reads only JSON bodies) pinned
with taskset to MOCK_CPU, then on LOAD_CPU:
 1. cargo-pmcp's `loadtest run` (PMCP_VERSION, installed into PMCP_ROOT when missing) with VUS
    virtual users for DURATION seconds, each calling TOOL in a closed loop over its own MCP
    session; the bearer token (one user's, from the mock's DCR + password grant) is given the
    way its documentation says, in MCP_API_KEY; an unmeasured run of WARMUP seconds first;
 2. one agent (controller --no-spawn on MOCK_CPU, agent here on LOAD_CPU) with VUS users,
    think time 0, bench/calls.yaml, the same protocol version as cargo-pmcp (2025-06-18),
    WARMUP seconds of warmup, then DURATION seconds measured.
calls/s and CPU µs per call of each (cargo-pmcp: its report's requests over its report's
duration, CPU its user + system time for its whole run, start and session setup included; the
agent: the report's calls over the measured window, CPU from /proc/PID/stat sampled every
100 ms and interpolated at the window's edges), peak RSS (VmHWM) and RSS per virtual user
(peak RSS / VUS), and the mock's CPU per call under each.

Environment (defaults in brackets):
  BIN           directory with agent, controller, mock-target        [target/release]
  VUS           virtual users of each                                [16]
  DURATION      measured seconds, the same for both                  [20]
  WARMUP        warmup seconds before measuring, both                [5]
  MOCK_CPU      core of the mock (and the controller)                [1]
  LOAD_CPU      core of cargo-pmcp and of the agent                  [0]
  PMCP_VERSION  cargo-pmcp version                                   [0.29.0]
  PMCP_ROOT     its install root (cargo install --root)              [/work/pmcp-root]
  SCHED, NICE   as in bench/calls.sh                                 [fifo as root, else other]
  KEEP_DIR      copy the reports and logs here                       [not kept]
Example: BIN=target/release VUS=16 DURATION=20 bench/peers.sh
EOF
}

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

BIN=${BIN:-target/release}
VUS=${VUS:-16}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
MOCK_CPU=${MOCK_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PMCP_VERSION=${PMCP_VERSION:-0.29.0}
PMCP_ROOT=${PMCP_ROOT:-/work/pmcp-root}
KEEP_DIR=${KEEP_DIR:-}
# Must match bench/calls.yaml.
TOOL=nc_notes_search_notes
# cargo-pmcp 0.29's loadtest client initializes with this version (its PROTOCOL_VERSION);
# the agent is held to the same.
PROTOCOL=2025-06-18

need_tool jq jq
need_tool curl curl
need_tool taskset util-linux
need_tool awk mawk
need_bins "$BIN" agent controller mock-target
for v in VUS DURATION WARMUP MOCK_CPU LOAD_CPU; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got ${!v}"
done
((VUS > 0 && DURATION > 0)) || die "VUS and DURATION must be positive"
((MOCK_CPU != LOAD_CPU)) || die "MOCK_CPU and LOAD_CPU must differ"
(($(nproc --all) > MOCK_CPU && $(nproc --all) > LOAD_CPU)) || die "this machine has no core $MOCK_CPU or $LOAD_CPU"
BIN=$(cd "$BIN" && pwd)
if [[ -z "${SCHED:-}" ]]; then
    if ((EUID == 0)); then SCHED=fifo; else SCHED=other; fi
fi
case "$SCHED" in
    other) ;;
    fifo) need_tool chrt util-linux && NICE_CMD=(chrt -f 1) ;;
    *) die "SCHED must be other or fifo, got $SCHED" ;;
esac

# --- the peer, pinned: installed once into its own root -------------------------------------
PMCP=$PMCP_ROOT/bin/cargo-pmcp
if ! [[ -x "$PMCP" ]] || [[ "$("$PMCP" --version 2>/dev/null)" != *" $PMCP_VERSION" ]]; then
    need_tool cargo "rustup (https://rustup.rs)"
    echo "installing cargo-pmcp $PMCP_VERSION into $PMCP_ROOT (a release build: minutes)..." >&2
    started=$(date +%s)
    # Without --locked: its lock file names versions our registry does not serve.
    cargo install cargo-pmcp --version "$PMCP_VERSION" --root "$PMCP_ROOT" ||
        die "cargo install cargo-pmcp $PMCP_VERSION failed"
    echo "installed cargo-pmcp $PMCP_VERSION in $(($(date +%s) - started)) s" >&2
fi

work=$(mktemp -d -t mcp-swarm-peers.XXXXXX)
chmod 700 "$work"
umask 077
MOCK_PID="" CTRL_PID="" AGENT_PID="" SAMPLER_PID="" PEER_SAMPLER_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_pid "$PEER_SAMPLER_PID" "$SAMPLER_PID" "$AGENT_PID" "$CTRL_PID" "$MOCK_PID"
    if [[ -n "$KEEP_DIR" ]]; then
        mkdir -p "$KEEP_DIR"
        cp "$work"/report.json "$work"/*.log "$work"/*.out "$work"/*.samples "$work"/peer.toml "$KEEP_DIR"/ 2>/dev/null || true
        cp "$work"/peer/.pmcp/reports/*.json "$KEEP_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MOCK_EXTRA_ARGS=(--json-replies)
start_mock "$BIN" "$work" "$MOCK_CPU"
printf 'user = "admin:%s"\n' "$(<"$work/admin_password")" >"$work/admin.curlrc"

# --- the peer's user and token (secrets only in files of $work, mode 600) -------------------
random_secret >"$work/peer_password"
curl -fsS -K "$work/admin.curlrc" -H 'OCS-APIRequest: true' -H 'Accept: application/json' \
    --data-urlencode userid=benchpeer --data-urlencode "password@$work/peer_password" \
    "$MOCK_ADMIN_URL/ocs/v2.php/cloud/users" >/dev/null || die "cannot create the peer's user"
issuer=$(jq -r .issuer "$work/mock.out")
curl -fsS "$issuer/.well-known/oauth-authorization-server" >"$work/as.json"
client_id=$(curl -fsS -H 'Content-Type: application/json' \
    -d '{"client_name":"bench-peer","redirect_uris":["http://127.0.0.1/callback"],"grant_types":["password"],"token_endpoint_auth_method":"none"}' \
    "$(jq -r .registration_endpoint "$work/as.json")" | jq -r .client_id)
curl -fsS --data-urlencode grant_type=password --data-urlencode "client_id=$client_id" \
    --data-urlencode username=benchpeer --data-urlencode "password@$work/peer_password" \
    --data-urlencode "resource=$MOCK_MCP_URL" \
    "$(jq -r .token_endpoint "$work/as.json")" | jq -r .access_token >"$work/peer_token" ||
    die "cannot get the peer's token"
[[ -s "$work/peer_token" && "$(<"$work/peer_token")" != null ]] || die "the token endpoint gave no access token"

# cargo-pmcp's loadtest.toml (src/loadtest/config.rs): flat load, closed loop (no
# request_interval_ms), one scenario step, the same call as bench/calls.yaml.
cat >"$work/peer.toml" <<EOF
[settings]
virtual_users = $VUS
duration_secs = $DURATION
timeout_ms = 10000

[[scenario]]
type = "tools/call"
weight = 100
tool = "$TOOL"
arguments = { query = "bench" }
EOF
mkdir -p "$work/peer"

# --- 1. cargo pmcp loadtest -----------------------------------------------------------------
run_peer() { # run_peer SECONDS: the peer on LOAD_CPU in $work/peer; prints its output, then `times`
    (cd "$work/peer" && MCP_API_KEY=$(<"$work/peer_token") NO_COLOR=1 "${NICE_CMD[@]}" \
        taskset -c "$LOAD_CPU" "$PMCP" loadtest run "$MOCK_MCP_URL" --config "$work/peer.toml" \
        --vus "$VUS" --duration "$1")
    times
}
if ((WARMUP > 0)); then
    (run_peer "$WARMUP") >"$work/peer-warmup.out" 2>&1 || die "cargo pmcp loadtest (warmup) failed: $(tail -n 5 "$work/peer-warmup.out")"
    rm -rf "$work/peer/.pmcp"
fi
mock_before=$(cpu_ticks "$MOCK_PID")
(run_peer "$DURATION") >"$work/peer.out" 2>"$work/peer.log" &
PEER_SUB=$!
# Its peak RSS: VmHWM of the cargo-pmcp process, the last value seen (it only grows).
(
    while :; do
        pid=$(pgrep -n -f "^$PMCP loadtest run" || true)
        [[ -n "$pid" ]] && echo "$(rss_kib "$pid" VmHWM)"
        sleep 0.1
    done
) >"$work/peer-rss.samples" &
PEER_SAMPLER_PID=$!
wait "$PEER_SUB" || die "cargo pmcp loadtest failed: $(tail -n 5 "$work/peer.log")"
mock_after=$(cpu_ticks "$MOCK_PID")
stop_pid "$PEER_SAMPLER_PID"
PEER_SAMPLER_PID=""
peer_report=$(ls "$work"/peer/.pmcp/reports/*.json 2>/dev/null | head -n 1)
[[ -n "$peer_report" ]] || die "cargo pmcp loadtest wrote no report: $(tail -n 5 "$work/peer.log")"
peer_calls=$(jq .metrics.total_requests "$peer_report")
peer_errors=$(jq .metrics.error_count "$peer_report")
peer_duration_s=$(jq .duration_secs "$peer_report")
peer_cpu_s=$(tail -n 1 "$work/peer.out" | awk '{ s = 0; for (i = 1; i <= 2; i++) {
    split($i, p, "m"); sub(/s$/, "", p[2]); s += p[1] * 60 + p[2] } printf "%.3f", s }')
peer_rss_kib=$(awk 'NF { v = $1 } END { print v + 0 }' "$work/peer-rss.samples")
peer_mock_cpu_s=$(awk -v a="$mock_before" -v b="$mock_after" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')

# --- 2. one agent ---------------------------------------------------------------------------
random_secret >"$work/cluster_secret"
MCP_SWARM_CLUSTER_SECRET=$(<"$work/cluster_secret") NEXTCLOUD_ADMIN_USER=admin \
    NEXTCLOUD_ADMIN_PASSWORD=$(<"$work/admin_password") MCP_SWARM_NO_HISTORY=1 \
    "${NICE_CMD[@]}" taskset -c "$MOCK_CPU" \
    "$BIN/controller" start --url "$MOCK_MCP_URL" --nextcloud-url "$MOCK_ADMIN_URL" \
    --no-spawn --listen 127.0.0.1:0 --agents 1 --users "$VUS" --think-time 0 \
    --scenario "$here/calls.yaml" --workload calls --duration "${DURATION}s" \
    --warmup "${WARMUP}s" --mcp-version "$PROTOCOL" --state-dir "$work/state" -o "$work/report.json" \
    >"$work/controller.out" 2>"$work/controller.log" &
CTRL_PID=$!
grpc_url=""
for ((i = 0; i < 300; i++)); do
    grpc_url=$(grep -o 'listening for agents on http://[0-9.:]*' "$work/controller.log" 2>/dev/null |
        awk '{ print $NF }' || true)
    [[ -n "$grpc_url" ]] && break
    kill -0 "$CTRL_PID" 2>/dev/null || die "controller exited: $(tail -n 3 "$work/controller.log")"
    sleep 0.1
done
[[ -n "$grpc_url" ]] || die "the controller did not say where it listens within 30 s"
MCP_SWARM_CLUSTER_SECRET=$(<"$work/cluster_secret") "${NICE_CMD[@]}" taskset -c "$LOAD_CPU" \
    "$BIN/agent" --controller "$grpc_url" --name bench-agent >"$work/agent.out" 2>"$work/agent.log" &
AGENT_PID=$!
# "unix_ns agent_ticks mock_ticks agent_VmHWM_KiB" every 100 ms ("-" once a process is gone).
(
    while :; do
        a=$(cpu_ticks "$AGENT_PID") m=$(cpu_ticks "$MOCK_PID") r=$(rss_kib "$AGENT_PID" VmHWM)
        echo "$(now_ns) ${a:--} ${m:--} ${r:--}"
        sleep 0.1
    done
) >"$work/agent-cpu.samples" &
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
window_cpu() { # window_cpu COL: CPU seconds of column COL over the window (as bench/calls.sh)
    awk -v col="$1" -v a="$window_start_ns" -v b="$window_end_ns" -v t="$CLK_TCK" '
        function at(x,   i) {
            for (i = 2; i <= n; i++) if (ts[i] >= x)
                return v[i-1] + (v[i] - v[i-1]) * (x - ts[i-1]) / (ts[i] - ts[i-1])
            return v[n]
        }
        NF >= 4 { last = $1 }
        NF >= 4 && $col != "-" { n++; ts[n] = $1; v[n] = $col }
        END { if (n < 2 || ts[1] > a || last < b) { print "nan"; exit }
              printf "%.3f", (at(b) - at(a)) / t }' "$work/agent-cpu.samples"
}
agent_cpu_s=$(window_cpu 2)
agent_mock_cpu_s=$(window_cpu 3)
agent_rss_kib=$(awk '$4 != "-" { v = $4 } END { print v + 0 }' "$work/agent-cpu.samples")

# --- the table ------------------------------------------------------------------------------
awk -v tool="$TOOL" -v vus="$VUS" -v dur="$DURATION" -v mc="$MOCK_CPU" -v lc="$LOAD_CPU" -v ver="$PMCP_VERSION" \
    -v pn="$peer_calls" -v pd="$peer_duration_s" -v pe="$peer_errors" -v pc="$peer_cpu_s" -v pm="$peer_mock_cpu_s" -v pr="$peer_rss_kib" \
    -v an="$agent_calls" -v ad="$window_s" -v ae="$agent_failed" -v ac="$agent_cpu_s" -v am="$agent_mock_cpu_s" -v ar="$agent_rss_kib" 'BEGIN {
    prate = pn / pd; arate = an / ad
    pcpu = pc * 1e6 / pn; acpu = ac * 1e6 / an
    printf "== bench/peers.sh: %s, %d virtual users, %d s each; mock (--json-replies) on core %d, load on core %d\n", tool, vus, dur, mc, lc
    printf "%-18s %10s %10s %12s %16s %14s %14s\n", "client", "calls", "calls/s", "CPU us/call", "mock CPU us/call", "peak RSS MiB", "RSS KiB/VU"
    printf "%-18s %10d %10.0f %12.1f %16.1f %14.1f %14.1f   (errors %d)\n", "cargo-pmcp " ver, pn, prate, pcpu, pm * 1e6 / pn, pr / 1024, pr / vus, pe
    printf "%-18s %10d %10.0f %12.1f %16.1f %14.1f %14.1f   (failed %d)\n", "agent", an, arate, acpu, am * 1e6 / an, ar / 1024, ar / vus, ae
    printf "%-18s %10s %10.2f %12.2f %16.2f %14.2f %14.2f\n", "ratio agent/pmcp", "", arate / prate, acpu / pcpu, (am / an) / (pm / pn), ar / pr, ar / pr
}'
load_line
