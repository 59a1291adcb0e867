#!/usr/bin/env bash
# Operator-surface checks with promtool: the alert rules parse and pass their unit tests, and a
# live node's /metrics passes `promtool check metrics` (Prometheus text 0.0.4).
# Usage: deploy/check-ops.sh PATH/TO/accumen
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:?usage: deploy/check-ops.sh PATH/TO/accumen}"

promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml

log="$(mktemp)"
ACCUMEN_API_ADDR=127.0.0.1:0 ACCUMEN_HEALTH_ADDR=127.0.0.1:0 ACCUMEN_METRICS_ADDR=127.0.0.1:0 \
ACCUMEN_LOGGING__LEVEL=info "$bin" --role=sequencer --config=config/local.yaml 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
metrics=""
for _ in $(seq 1 300); do
  metrics="$(grep -o 'metrics=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)"
  [ -n "$metrics" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "node exited early" >&2; exit 1; }
  sleep 0.1
done
[ -n "$metrics" ] || { cat "$log" >&2; echo "node did not start listening" >&2; exit 1; }
# Let at least one block be produced so histograms and gauges carry samples.
sleep 1.5
curl -fsS "http://$metrics/metrics" | promtool check metrics
kill -TERM "$pid"
wait "$pid"
echo "ops checks passed"
