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
api="$(grep -o 'api=[0-9.:]*' "$log" | head -1 | cut -d= -f2)"
# Let at least one block be produced so histograms and gauges carry samples; answer a templated
# route, an unmatched path and a scrape first so the HTTP series carry samples too.
sleep 1.5
curl -fsS "http://$api/v1/blocks/latest" >/dev/null
curl -sS -o /dev/null "http://$api/no/such/path" || true
curl -fsS "http://$metrics/metrics" >/dev/null
page="$(curl -fsS "http://$metrics/metrics")"
for name in accumen_http_requests_total accumen_http_request_duration_seconds process_resident_memory_bytes process_cpu_seconds_total; do
  grep -q "^# TYPE $name " <<<"$page" || { echo "$name missing from /metrics" >&2; exit 1; }
done
promtool check metrics <<<"$page"
kill -TERM "$pid"
wait "$pid"
echo "ops checks passed"
