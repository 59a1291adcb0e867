#!/usr/bin/env bash
# Operator-surface checks: the alert rules parse and pass their unit tests (promtool), a live
# node's /metrics passes `promtool check metrics` (Prometheus text 0.0.4), the Grafana dashboard
# loads and every metric it queries is exported by a live sequencer (bridge on, its L0
# unreachable, so the bridge series exist) or follower, deploy/install.sh works in a temporary
# root and `systemd-analyze verify` passes on both units as installed, and every syscall the node
# makes is allowed by the units' filter (strace emulation: systemd is not PID 1 in CI).
# A part whose tool is missing is skipped with a SKIPPED line; .ci/run installs them all.
# Usage: deploy/check-ops.sh PATH/TO/accumen
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?usage: deploy/check-ops.sh PATH/TO/accumen}")"
need() { command -v "$1" >/dev/null 2>&1; }

if need promtool; then
  promtool check rules deploy/prometheus/alerts.yml
  promtool test rules deploy/prometheus/alerts_test.yml
else
  echo "SKIPPED: promtool is not installed; alert rules were not checked"
fi

work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# start NAME ARGS... : runs the node with listeners on port 0, waits for its "listening" line and
# sets $metrics and $api; returns 1 if the node exits first (its log is in $work/NAME.log).
start() {
  local name="$1"; shift
  local log="$work/$name.log"
  ACCUMEN_API_ADDR=127.0.0.1:0 ACCUMEN_HEALTH_ADDR=127.0.0.1:0 ACCUMEN_METRICS_ADDR=127.0.0.1:0 \
  ACCUMEN_ADMIN_ADDR=127.0.0.1:0 ACCUMEN_LOGGING__LEVEL=info "$@" 2>"$log" &
  last=$!
  pids+=("$last")
  metrics="" api=""
  for _ in $(seq 1 300); do
    metrics="$(grep -o 'metrics=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)"
    api="$(grep -o ' api=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)"
    [ -n "$metrics" ] && [ -n "$api" ] && return 0
    kill -0 "$last" 2>/dev/null || return 1
    sleep 0.1
  done
  cat "$log" >&2; echo "$name did not start listening" >&2; exit 1
}
stop() { kill -TERM "$last"; wait "$last"; }

# The sequencer anchors to an L0 that refuses connections: every bridge series is exported.
"$bin" key generate --out "$work/l0.key" >/dev/null
start sequencer env ACCUMEN_BRIDGE__ENABLE_BRIDGE=true \
  ACCUMEN_BRIDGE__L0__ENDPOINT=http://127.0.0.1:9/v3 ACCUMEN_BRIDGE__L0__KEY_FILE="$work/l0.key" \
  ACCUMEN_BRIDGE__L0__DATA_ACCOUNT=acc://check.acme/anchors \
  ACCUMEN_BRIDGE__L0__KEY_PAGE=acc://check.acme/book/1 \
  "$bin" --role=sequencer --config=config/local.yaml \
  || { cat "$work/sequencer.log" >&2; echo "node exited early" >&2; exit 1; }
seq_pid="$last" seq_api="$api"
# Let at least one block be produced so histograms and gauges carry samples; answer a templated
# route, an unmatched path and a scrape first so the HTTP series carry samples too.
sleep 1.5
curl -fsS "http://$api/v1/blocks/latest" >/dev/null
curl -sS -o /dev/null "http://$api/no/such/path" || true
curl -fsS "http://$metrics/metrics" >/dev/null
curl -fsS "http://$metrics/metrics" >"$work/sequencer.metrics"
for name in accumen_http_requests_total accumen_http_request_duration_seconds process_resident_memory_bytes process_cpu_seconds_total; do
  grep -q "^# TYPE $name " "$work/sequencer.metrics" || { echo "$name missing from /metrics" >&2; exit 1; }
done
if need promtool; then promtool check metrics <"$work/sequencer.metrics"; fi
dumps=("$work/sequencer.metrics")

# A follower of that sequencer (its series are its own).
seq_key="$(curl -fsS "http://$seq_api/v1/chain" | jq -r '.sequencer')"
start follower env ACCUMEN_FOLLOWER__SEQUENCER_API="http://$seq_api" \
  ACCUMEN_FOLLOWER__SEQUENCER_KEY="$seq_key" "$bin" --role=follower --config=config/local.yaml \
  || { cat "$work/follower.log" >&2; echo "follower exited early" >&2; exit 1; }
sleep 1.5
curl -fsS "http://$metrics/metrics" >"$work/follower.metrics"
if need promtool; then promtool check metrics <"$work/follower.metrics"; fi
dumps+=("$work/follower.metrics")
stop
last="$seq_pid"
stop

deploy/grafana/check-dashboard.sh "${dumps[@]}"

if [ "$(id -u)" = 0 ]; then
  deploy/test-install.sh "$bin"
else
  echo "SKIPPED: not root; deploy/install.sh and systemd-analyze verify were not tested"
fi

if need strace && need systemd-analyze; then
  deploy/check-syscalls.sh "$bin"
else
  echo "SKIPPED: strace or systemd-analyze is not installed; the syscall filter was not checked"
fi
echo "ops checks passed"
