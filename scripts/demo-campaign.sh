#!/usr/bin/env bash
# A campaign end to end through the command line, on this machine: a
# nats-server, the simulated API holding JOBS jobs in PROJECTS projects
# (DISABLED of them disabled) behind a quota of QUOTA calls/s, worker run
# (with RUN_FLAGS, --verify by default), then discover --enqueue --campaign,
# the drain, and worker report. It prints the times README.md quotes.
# Usage: scripts/demo-campaign.sh (make demo-campaign; bin/worker and
# bin/nats-server must exist).
set -euo pipefail
JOBS=${JOBS:-2000} PROJECTS=${PROJECTS:-5} DISABLED=${DISABLED:-0.5} QUOTA=${QUOTA:-200}
RUN_FLAGS=${RUN_FLAGS---verify} CAMPAIGN=${CAMPAIGN:-demo-campaign}
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
W=$BIN/worker
dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
nport=$(free_port) sport=$(free_port)
# Simulated credentials: the simulator verifies the SDK's signature with them.
export HUAWEICLOUD_SDK_AK=DEMOCAMPAIGNAK0000001 HUAWEICLOUD_SDK_SK=demoCampaignSecret0123456789abcdefghij
export HUAWEICLOUD_SDK_PROJECT_ID=0123456789abcdef0123456789abcdef
"$BIN/nats-server" -js -a 127.0.0.1 -p "$nport" -sd "$dir/js" >"$dir/nats.log" 2>&1 & pids+=($!)
"$W" simulate --addr "127.0.0.1:$sport" --jobs "$JOBS" --projects "$PROJECTS" --disabled-share "$DISABLED" \
	--seed 1 --rate-limit "$QUOTA" --prefix-outcomes=false >"$dir/sim.log" 2>&1 & pids+=($!)
nats=(--nats-url "nats://127.0.0.1:$nport") api=(--endpoint "http://127.0.0.1:$sport")

# The workers run first, as they would in production, capped at 95 % of the quota; discover
# joins their fleet's rate (a share of the same cap), so no quota is set aside for it.
# shellcheck disable=SC2086 # RUN_FLAGS is a list of flags
"$W" run "${nats[@]}" "${api[@]}" --http-addr 127.0.0.1:0 --rate-limit $((QUOTA * 95 / 100)) --concurrency 64 \
	$RUN_FLAGS --log-level warn >"$dir/run.log" 2>&1 & pids+=($!)
for _ in $(seq 1 50); do "$W" status "${nats[@]}" >/dev/null 2>&1 && break; sleep 0.2; done

start=$(date +%s.%N)
"$W" discover "${nats[@]}" "${api[@]}" --all-projects --enqueue --campaign "$CAMPAIGN" \
	--reason "make demo-campaign" --progress-interval 2s
listed=$(date +%s.%N)
until [ "$("$W" report "${nats[@]}" --campaign "$CAMPAIGN" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_flight"])')" = 0 ]; do
	kill -0 "${pids[2]}" || { echo "worker run stopped:"; cat "$dir/run.log"; exit 1; }
	sleep 0.5
done
done_at=$(date +%s.%N)
echo
"$W" report "${nats[@]}" --campaign "$CAMPAIGN"
echo
printf 'discover + enqueue  %.1f s\ndrain after enqueue %.1f s\n' "$(echo "$listed - $start" | bc)" "$(echo "$done_at - $listed" | bc)"
curl -s "http://127.0.0.1:$sport/stats?jobs=0" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("api calls", s["calls"], "by status", s["by_status"], "reads", s.get("reads", {}))'
