#!/usr/bin/env bash
# Runs the root docker-compose.yml for real, with no container registry: builds an image FROM
# scratch out of the workspace's binaries and the shared libraries `ldd` lists (plus bash, which
# the target's healthcheck uses, and the CA bundle), starts the mock target, the controller and `--scale agent=3`,
# waits for the controller's report (bounded), checks it with jq (3 agents, every workflow of the
# mixed workload, 0 failures) and tears everything down, also on failure. Exit 0 only then.
# Once the controller has `--on-agent-loss`, a second run SIGKILLs one agent container mid-run
# and checks that the report names it lost and that its users moved to the other agents.
# The `regions` run layers deploy/regions.compose.yml: one agent in region `near`, one in `far`
# behind netdelay's 40 ms, and checks that the report's far tool p50s are the delay above the
# near ones (the median of the tools' deltas between 3/4 and 2 times it, as bins/tests/regions.rs).
#
#   MCP_SWARM_BIN_DIR          take controller, agent and mock-target from here instead of
#                              building them (`cargo build --release --locked --workspace --bins`)
#   MCP_SWARM_COMPOSE_TIMEOUT  longest wait for the report, in seconds [300]
#   MCP_SWARM_COMPOSE_REPORT   also copy the JSON reports to this path (suffixed -CASE.json)
#   MCP_SWARM_COMPOSE_CASES    the runs: `steady`, `agent-loss`, `regions` [all three; steady
#                              alone when the controller has no --on-agent-loss; regions only
#                              when there is a netdelay executable and this machine has iptables]
#
# The user-facing image is deploy/Dockerfile (Debian slim with chromium); this one only differs
# in its base, which no registry has to provide.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

log() { printf '==> compose-test: %s\n' "$*" >&2; }
die() { printf 'compose-test: error: %s\n' "$*" >&2; exit 1; }

readonly N_AGENTS=3 N_USERS=12 WORKLOAD=mixed
# The mixed workload's workflows (common/scenarios/builtin.yaml); baseline is reported apart.
readonly WORKFLOWS='["note_share","collaborative_edit","file_share"]'
timeout_s="${MCP_SWARM_COMPOSE_TIMEOUT:-300}"

docker info >/dev/null 2>&1 || die "no Docker daemon answers \`docker info\`"
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  die "neither \`docker compose\` nor \`docker-compose\` is installed (apt-get install docker-compose)"
fi
command -v jq >/dev/null 2>&1 || die "jq checks the report: apt-get install jq"

if [ -n "${MCP_SWARM_BIN_DIR:-}" ]; then
  bin_dir="$MCP_SWARM_BIN_DIR"
else
  log "cargo build --release --locked --workspace --bins"
  cargo build --release --locked --workspace --bins
  bin_dir="${CARGO_TARGET_DIR:-target}/release"
fi
for b in controller agent mock-target; do
  [ -x "$bin_dir/$b" ] || die "no executable $bin_dir/$b (build the workspace, or set MCP_SWARM_BIN_DIR)"
done

work="$(mktemp -d)"
project="mcp-swarm-test-$$"
image="mcp-swarm-compose-test:$$"
compose_files=(--file "$root/docker-compose.yml")
dc() { "${compose[@]}" --project-name "$project" "${compose_files[@]}" "$@"; }
teardown() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ] && [ -s "$work/compose.log" ]; then
    log "compose logs (last 80 lines):"
    tail -n 80 "$work/compose.log" >&2
  fi
  log "down -v"
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  docker rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The image: the binaries, their shared libraries and bash on an empty root.
log "building $image FROM scratch out of $bin_dir"
ctx="$work/image"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/out"
chmod 1777 "$ctx/rootfs/tmp"
for b in controller agent mock-target; do
  cp "$bin_dir/$b" "$ctx/rootfs/usr/local/bin/$b"
  # Debug info only makes the image slow to build; symbols stay for backtraces.
  if command -v strip >/dev/null 2>&1; then strip --strip-debug "$ctx/rootfs/usr/local/bin/$b"; fi
done
cp "$(command -v bash)" "$ctx/rootfs/bin/bash"
# The regions case: netdelay, and iptables (the nft one, its extensions are loaded at run time)
# to queue the far agent's packets to it.
regions_ok=""
if [ -x "$bin_dir/netdelay" ] && command -v iptables >/dev/null 2>&1; then
  cp "$bin_dir/netdelay" "$ctx/rootfs/usr/local/bin/netdelay"
  if command -v strip >/dev/null 2>&1; then strip --strip-debug "$ctx/rootfs/usr/local/bin/netdelay"; fi
  xtables="$(readlink -f "$(command -v iptables)")"
  mkdir -p "$ctx/rootfs/usr/sbin"
  cp "$xtables" "$ctx/rootfs/usr/sbin/"
  ln -s "$(basename "$xtables")" "$ctx/rootfs/usr/sbin/iptables"
  for ext in /usr/lib/*/xtables /usr/lib/xtables; do
    [ -d "$ext" ] && cp -L -r --parents "$ext" "$ctx/rootfs/"
  done
  regions_ok=1
fi
# The controller's HTTP client loads the system's trust store even for http:// targets.
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || die "no $ca to put in the image (apt-get install ca-certificates)"
cp -L --parents "$ca" "$ctx/rootfs/"
for exe in "$ctx"/rootfs/usr/local/bin/* "$ctx/rootfs/bin/bash" "$ctx"/rootfs/usr/sbin/* \
  "$ctx"/rootfs/usr/lib/*/xtables/*.so; do
  [ -e "$exe" ] || continue
  # `ldd` prints "name => /path (addr)" and, for the loader, "/path (addr)"; a static
  # executable needs nothing.
  deps="$(ldd "$exe" 2>&1)" || continue
  if grep -q 'not found' <<<"$deps"; then die "$exe needs a library this machine lacks: $deps"; fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$deps"
done | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$ctx/rootfs/"
done
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
COPY --chown=65534:65534 out/ /out/
ENV PATH=/usr/local/bin:/usr/sbin:/bin
WORKDIR /out
USER 65534:65534
ENTRYPOINT ["controller"]
EOF
docker build --quiet --tag "$image" "$ctx" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  die "docker build failed"
}

# --- The runs. Secrets go by environment only; compose puts them in the containers' environment.
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export MCP_SWARM_CLUSTER_SECRET MOCK_TARGET_ADMIN_PASSWORD
MCP_SWARM_CLUSTER_SECRET="$(random_hex 32)"
MOCK_TARGET_ADMIN_PASSWORD="$(random_hex 16)"
readonly WARMUP_S=3
export MCP_SWARM_IMAGE="$image" MCP_SWARM_AGENTS="$N_AGENTS" MCP_SWARM_USERS="$N_USERS" \
  MCP_SWARM_WARMUP="${WARMUP_S}s" MCP_SWARM_WORKLOAD="$WORKLOAD"

# One compose run: CASE is `steady` (every agent to the end) or `agent-loss` (one agent
# container SIGKILLed mid-run). Leaves the report in $work/CASE.json and the killed container's
# id in $victim.
run_case() {
  local case="$1" start=$SECONDS code state a
  local scale=(--scale "agent=$N_AGENTS") services=(agent)
  project="mcp-swarm-test-$$-$case"
  victim=""
  compose_files=(--file "$root/docker-compose.yml")
  n_agents=$N_AGENTS
  case "$case" in
    steady) export MCP_SWARM_DURATION=15s ;;
    agent-loss) export MCP_SWARM_DURATION=30s ;;
    regions)
      export MCP_SWARM_DURATION=20s REGION_FAR_DELAY="${REGION_DELAY_MS}ms"
      compose_files+=(--file "$root/deploy/regions.compose.yml")
      n_agents=2
      scale=(--scale agent=1 --scale agent-far=1)
      services=(agent agent-far)
      ;;
  esac
  export MCP_SWARM_AGENTS="$n_agents"
  log "$case: ${compose[*]} up -d ${scale[*]} (project $project, $MCP_SWARM_DURATION)"
  dc up --detach --no-build "${scale[@]}" >"$work/up.log" 2>&1 || {
    cat "$work/up.log" >&2
    die "$case: compose up failed"
  }
  controller="$(dc ps -q controller)"
  [ -n "$controller" ] || die "$case: compose started no controller container"
  mapfile -t agents < <(dc ps -q "${services[@]}")
  [ "${#agents[@]}" -eq "$n_agents" ] || die "$case: compose started ${#agents[@]} agent containers, expected $n_agents"

  if [ "$case" = agent-loss ]; then
    log "$case: waiting for every agent to be ready, then the warmup and 5 s of measuring"
    local deadline=$((SECONDS + 120))
    until docker logs "$controller" 2>&1 | grep -q 'all agents ready'; do
      [ "$SECONDS" -lt "$deadline" ] || die "$case: the agents were not ready within 120s"
      sleep 1
    done
    sleep $((WARMUP_S + 5))
    victim="${agents[0]}"
    log "$case: docker kill (SIGKILL) agent container ${victim:0:12}"
    docker kill "$victim" >/dev/null
  fi

  log "$case: waiting for the controller's report (at most ${timeout_s}s)"
  if ! code="$(timeout "$timeout_s" docker wait "$controller")"; then
    dc logs --no-color >"$work/compose.log" 2>&1 || true
    die "$case: no report after ${timeout_s}s"
  fi
  # Agents exit once their final report is in; give the last one a moment.
  for a in "${agents[@]}"; do timeout 30 docker wait "$a" >/dev/null || true; done
  dc logs --no-color >"$work/compose.log" 2>&1 || true
  [ "$code" = 0 ] || die "$case: the controller exited $code"
  for a in "${agents[@]}"; do
    state="$(docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$a")"
    if [ "$a" = "$victim" ]; then
      [ "$state" = "exited 137" ] || die "$case: the killed agent container ${a:0:12} is '$state', expected 'exited 137'"
    else
      [ "$state" = "exited 0" ] || die "$case: agent container ${a:0:12} is '$state', expected 'exited 0'"
    fi
  done
  docker cp "$controller:/out/run.json" "$work/$case.json" || die "$case: the controller wrote no /out/run.json"
  if [ -n "${MCP_SWARM_COMPOSE_REPORT:-}" ]; then cp "$work/$case.json" "${MCP_SWARM_COMPOSE_REPORT%.json}-$case.json"; fi
  elapsed=$((SECONDS - start))
}

# What every report must show; LOST is the name prefix of the agent that must be reported lost
# ("" for none: agents are named HOSTNAME-PID, and a container's host name is its short id).
check_report() {
  local case="$1" lost="$2"
  log "$case: checking the report"
  jq -e --argjson agents "$n_agents" --argjson users "$N_USERS" --argjson workflows "$WORKFLOWS" \
    --arg lost "$lost" '
    def check(cond; what): if cond then . else error(what) end;
    def is_lost: $lost != "" and (.name | startswith($lost + "-"));
    check(.run.n_agents == $agents; "run.n_agents is \(.run.n_agents), expected \($agents)")
    | check((.agents | length) == $agents; "\(.agents | length) agents in the report, expected \($agents)")
    | check(all(.agents[] | select(is_lost | not); .lost == false and .final_received and .n_users > 0 and .operations > 0);
        "an agent was lost, sent no final report or ran nothing: \(.agents)")
    | check($lost == "" or ([.agents[] | select(is_lost)] | length == 1 and all(.[]; .lost and (.final_received | not)));
        "the killed agent \($lost) is not the one agent reported lost: \(.agents)")
    | check((.agent_losses // []) | length == (if $lost == "" then 0 else 1 end);
        "agent_losses lists \((.agent_losses // []) | map(.agent)), expected \(if $lost == "" then "none" else $lost end)")
    | if $lost == "" then . else
        ([.agents[] | select(is_lost)][0]) as $dead
        | ([.agents[] | select(is_lost | not) | .name]) as $alive
        | .agent_losses[0] as $loss
        | check($loss.agent == $dead.name and $loss.policy == "reassign";
            "agent_losses[0] is \($loss.agent) under \($loss.policy), expected \($dead.name) under reassign")
        | check(([$loss.moves[].n_users] | add) == $dead.n_users;
            "\([$loss.moves[].n_users] | add) users moved, the lost agent had \($dead.n_users)")
        | check(all($loss.moves[]; .to as $to | $alive | index([$to]) != null);
            "users moved to \([$loss.moves[].to]), not all of them surviving agents \($alive)")
        | check(all($loss.moves[]; .resumed_at != null and .sessions_open == .n_users and .sessions_failed == 0
              and (.users | length) == .n_users and all(.users[]; . > 0));
            "not every moved user resumed and worked on its new agent: \($loss.moves)")
      end
    | check(.run.interrupted == false; "the run was interrupted")
    | check(.summary.total_users == $users; "summary.total_users is \(.summary.total_users), expected \($users)")
    | check(.summary.failed_operations == 0; "\(.summary.failed_operations) failed operations")
    | check(all($workflows[] as $w | .workflows[$w]; . != null and .successful_executions > 0 and .failed_executions == 0);
        "a workflow of \($workflows) did not run, or failed: \(.workflows | map_values({successful_executions, failed_executions}))")
    | check(.baseline.total_operations > 0 and .baseline.failed_operations == 0;
        "baseline: \(.baseline.total_operations) operations, \(.baseline.failed_operations) failed")
  ' "$work/$case.json" >/dev/null || die "$case: the report fails its checks (above)"
  jq -r --arg case "$case" --argjson s "$elapsed" '
    "compose-test: \($case) ok in \($s)s: \(.agents | length) agent containers ("
    + ([.agents[] | "\(.n_users)\(if .lost then " lost" else "" end)"] | join(" + ")) + " users), "
    + "\(.summary.total_operations) operations, 0 failed; workflows: "
    + ([.workflows | to_entries[] | "\(.key) \(.value.successful_executions)"] | join(", "))
    + "; baseline \(.baseline.total_operations)"
    + ([.agent_losses // [] | .[] | "; lost \(.agent) at \(.lost_at_seconds)s, "
        + ([.moves[] | "\(.n_users) users to \(.to) after \(.idle_seconds)s idle"] | join(", "))] | join(""))' "$work/$case.json"
}

# The regions case: each region's one agent, and the far tools' p50s the delay above the near
# ones (tools with at least 20 calls in both regions; the median of their deltas).
readonly REGION_DELAY_MS=40
check_regions() {
  local case="$1"
  jq -r --argjson delay "$REGION_DELAY_MS" --argjson min 20 '
    def check(cond; what): if cond then . else error(what) end;
    .regions as $r
    | check(($r.near.agents | length) == 1 and ($r.far.agents | length) == 1;
        "regions: expected one agent in near and one in far: \($r | map_values(.agents))")
    | [ $r.near.tools | to_entries[] | .key as $t
        | select(.value.count >= $min and (($r.far.tools[$t].count // 0) >= $min))
        | {tool: $t, ms: (($r.far.tools[$t].latency.median - .value.latency.median) * 1000)} ] as $deltas
    | ($deltas | map(.ms) | sort) as $d
    | check(($d | length) >= 2; "regions: fewer than 2 tools with \($min) calls in both regions")
    | $d[($d | length) / 2 | floor] as $median
    | check($median >= 0.75 * $delay and $median <= 2 * $delay;
        "regions: the far tools are \($median) ms (median) above the near ones for a \($delay) ms delay: \($d)")
    | "compose-test: regions: far p50 - near p50 per tool (ms): "
      + ($deltas | map("\(.tool) \((.ms * 100 | round) / 100)") | join(", "))
  ' "$work/$case.json" || die "$case: the per-region latencies fail their check (above)"
}

# The agent-loss case needs the controller to re-assign a lost agent's users.
cases="${MCP_SWARM_COMPOSE_CASES:-steady}"
if [ -z "${MCP_SWARM_COMPOSE_CASES:-}" ] && "$bin_dir/controller" start --help 2>/dev/null | grep -q -- '--on-agent-loss'; then
  cases="steady agent-loss"
fi
if [ -z "${MCP_SWARM_COMPOSE_CASES:-}" ]; then
  if [ -n "$regions_ok" ]; then
    cases="$cases regions"
  else
    log "regions case skipped: no $bin_dir/netdelay or no iptables on this machine"
  fi
fi
for case in $cases; do
  case "$case" in steady | agent-loss | regions) ;; *) die "unknown case '$case' in MCP_SWARM_COMPOSE_CASES (steady, agent-loss, regions)" ;; esac
  [ "$case" != regions ] || [ -n "$regions_ok" ] || die "the regions case needs $bin_dir/netdelay and iptables on this machine"
  run_case "$case"
  if [ -n "$victim" ]; then check_report "$case" "${victim:0:12}"; else check_report "$case" ""; fi
  [ "$case" != regions ] || check_regions "$case"
  dc down -v --remove-orphans >/dev/null 2>&1 || true
done
