#!/usr/bin/env bash
# Checks deploy/grafana/accumen.json: it is valid JSON with the shape Grafana imports (panels
# with unique ids, a Prometheus datasource and queries), every query parses as PromQL (through
# `promtool check rules`, when promtool is installed), and every metric a query names is
# exported by a live node: the union of the /metrics dumps given. Names from branches not merged
# yet may be listed in deploy/grafana/pending-metrics.txt; they are reported, not failed, and a
# listed name that is exported now is reported too (take it off the list).
# Usage: deploy/grafana/check-dashboard.sh METRICS_DUMP...   (text from GET /metrics)
set -euo pipefail
cd "$(dirname "$0")/../.."
dash=deploy/grafana/accumen.json
pending=deploy/grafana/pending-metrics.txt
[ $# -ge 1 ] || { echo "usage: $0 METRICS_DUMP..." >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

jq -e '
  (.title | type == "string") and (.uid | type == "string") and (.panels | length > 0)
  and ([.panels[].id] | length == (unique | length))
  and all(.panels[] | select(.type != "row");
          .datasource.type == "prometheus" and (.targets | length > 0)
          and all(.targets[]; (.expr | type == "string") and (.expr | length > 0)))
' "$dash" >/dev/null || { echo "$dash: not a loadable dashboard (ids, datasource or queries)" >&2; exit 1; }
jq -r '.. | objects | .expr? // empty' "$dash" >"$work/exprs"
echo "$dash: valid JSON, $(jq '[.panels[] | select(.type != "row")] | length' "$dash") panels, $(wc -l <"$work/exprs") queries"

if command -v promtool >/dev/null 2>&1; then
  # Grafana's variables replaced by values Prometheus accepts, each query a recording rule.
  {
    echo "groups:"; echo "  - name: dashboard"; echo "    rules:"
    n=0
    while IFS= read -r e; do
      n=$((n + 1))
      e="${e//\$__rate_interval/1m}"; e="${e//\$instance/.*}"
      printf '      - record: dashboard:query%d\n        expr: %s\n' "$n" "$(jq -Rn --arg e "$e" '$e')"
    done <"$work/exprs"
  } >"$work/rules.yml"
  promtool check rules "$work/rules.yml" >/dev/null || { promtool check rules "$work/rules.yml"; exit 1; }
  echo "every query parses as PromQL"
else
  echo "SKIPPED: promtool is not installed; the queries were not parsed"
fi

grep -ohE '\b(accumen|process)_[a-z0-9_]+' "$work/exprs" | sort -u >"$work/used"
cat "$@" | grep -v '^#' | sed -E 's/[{ ].*//' | grep -v '^$' | sort -u >"$work/live"
grep -vE '^\s*(#|$)' "$pending" 2>/dev/null | sort -u >"$work/pending" || true
missing="$(comm -23 "$work/used" "$work/live" | comm -23 - "$work/pending")"
waiting="$(comm -23 "$work/used" "$work/live" | comm -12 - "$work/pending")"
arrived="$(comm -12 "$work/pending" "$work/live")"
[ -z "$waiting" ] || echo "not exported yet, allowed by $pending: $(echo $waiting)"
[ -z "$arrived" ] || echo "exported now, remove from $pending: $(echo $arrived)"
if [ -n "$missing" ]; then
  echo "metrics the dashboard queries that no live node exports: $(echo $missing)" >&2
  exit 1
fi
echo "every metric the dashboard queries ($(wc -l <"$work/used")) is exported or pending"
