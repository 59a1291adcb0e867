#!/usr/bin/env bash
# Crash loop (issue 11): SIGKILL a real sequencer at a random point under load, N times, and
# after each kill check what a crash must never break. The node runs on config/devnet.yaml
# (persistent storage, mempool journal on, bridge on) against a local devnet-l0, every listener
# on port 0, everything in a temporary directory.
#
# Per round: start the node, start load (a stream of signed deploys through `accumen tx deploy`,
# whose acknowledged hashes are recorded), SIGKILL the node after a random 0.3-3 s, then on the
# stopped data dir run `accumen db check` (chain linked, state root, outbox consistent), restart
# and check every acknowledged transaction is pending or included (GET /v1/tx/HASH), and that
# the devnet data account holds no height anchored twice (its saved ledger).
# Usage: deploy/crash-loop.sh PATH/TO/accumen [ROUNDS=50]
# Prints one line per round and a summary; exits 1 on the first violated check (work dir kept).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?usage: deploy/crash-loop.sh PATH/TO/accumen [ROUNDS]}")"
rounds="${2:-50}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "FAIL round $round: $*" >&2; echo "work dir kept: $work" >&2; exit 1; }

"$bin" key generate --out "$work/l0.key" >"$work/l0.key.json"
"$bin" key generate --out "$work/sender.key" >/dev/null
pk="$(jq -r .public_key "$work/l0.key.json")"

# devnet-l0 on port 0, ledger persisted; its addresses come from its "listening" line.
"$bin" devnet-l0 --listen 127.0.0.1:0 --control 127.0.0.1:0 --block-time 200ms \
  --key-page acc://accumen.acme/book/1 --public-key "$pk" \
  --data-account acc://accumen.acme/anchors --data-dir "$work/l0" 2>"$work/l0.log" &
pids+=("$!")
l0="" control=""
for _ in $(seq 1 300); do
  l0="$(grep -o 'v3=[0-9.:]*' "$work/l0.log" | head -1 | cut -d= -f2 || true)"
  control="$(grep -o 'control=[0-9.:]*' "$work/l0.log" | head -1 | cut -d= -f2 || true)"
  [ -n "$l0" ] && [ -n "$control" ] && break
  sleep 0.1
done
[ -n "$l0" ] || { cat "$work/l0.log" >&2; echo "devnet-l0 did not start" >&2; exit 1; }

node_pid="" api=""
start_node() {
  local log="$work/node-$round.log"
  ACCUMEN_API_ADDR=127.0.0.1:0 ACCUMEN_HEALTH_ADDR=127.0.0.1:0 ACCUMEN_METRICS_ADDR=127.0.0.1:0 \
  ACCUMEN_ADMIN_ADDR=127.0.0.1:0 ACCUMEN_DATA_DIR="$work/data" ACCUMEN_BLOCK_TIME=200ms \
  ACCUMEN_BRIDGE__L0__ENDPOINT="http://$l0/v3" ACCUMEN_BRIDGE__L0__KEY_FILE="$work/l0.key" \
  ACCUMEN_BRIDGE__STAGER__FLUSH_INTERVAL=200ms \
    "$bin" --role=sequencer --config=config/devnet.yaml 2>"$log" &
  node_pid=$!
  pids+=("$node_pid")
  api=""
  for _ in $(seq 1 600); do
    api="$(grep -o ' api=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)"
    [ -n "$api" ] && return 0
    kill -0 "$node_pid" 2>/dev/null || { cat "$log" >&2; fail "node exited at start"; }
    sleep 0.05
  done
  fail "node did not start listening"
}

# Load: deploys one after another; a hash is recorded only when the node answered 200.
load() {
  local n=0
  while :; do
    n=$((n + 1))
    out="$("$bin" --api "http://$api" tx deploy --key "$work/sender.key" \
      --code tests/fixtures/counter.wat 2>/dev/null)" || continue
    h="$(jq -r '.tx_hash // empty' <<<"$out" 2>/dev/null || true)"
    [ -n "$h" ] && echo "$h" >>"$work/acked"
  done
}

anchor_jq='
def hex2n: ascii_downcase | explode
  | reduce .[] as $c (0; . * 16 + (if $c >= 97 then $c - 87 else $c - 48 end));
[.messages[] | select(.status == "delivered") | .message.transaction.body? // empty
 | select(.type == "writeData") | .entry.data
 | select(.[0] == "616363756d656e2d616e63686f722f31")
 | [(.[2] | hex2n), (.[3] | hex2n)]]
| [.[] | range(.[0]; .[1] + 1)] as $h
| {anchors: length, max: ($h | max // 0), twice: ($h | group_by(.) | map(select(length > 1) | .[0]))}'

touch "$work/acked"
kills=0 restarts_ms=()
round=0
start_node
for round in $(seq 1 "$rounds"); do
  load &
  load_pid=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 2.7 }')"
  kill -KILL "$node_pid"; wait "$node_pid" 2>/dev/null || true
  kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true
  kills=$((kills + 1))
  "$bin" db check --data-dir "$work/data" >"$work/check-$round.json" 2>"$work/check-$round.err" \
    || { cat "$work/check-$round.err" >&2; fail "db check"; }
  t0=$(date +%s%N)
  start_node
  restarts_ms+=($(( ($(date +%s%N) - t0) / 1000000 )))
  # The lookup must tell unknown from known, or "all found" would mean nothing.
  zero="$(printf '0%.0s' $(seq 1 64))"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$api/v1/tx/$zero")" = 404 ] \
    || fail "GET /v1/tx of an unknown hash is not 404"
  lost=0
  while read -r h; do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://$api/v1/tx/$h")"
    [ "$code" = 200 ] || { lost=$((lost + 1)); echo "lost: $h ($code)" >&2; }
  done <"$work/acked"
  [ "$lost" = 0 ] || fail "$lost acknowledged transactions lost"
  # Anchors the devnet delivered (its saved ledger, replaced atomically after each block):
  # parts 2 and 3 of each accumen-anchor/1 entry are its first and last height, big-endian.
  anchors="$(jq -c "$anchor_jq" "$work/l0/devnet-l0.json")"
  [ "$(jq '.twice | length' <<<"$anchors")" = 0 ] || fail "heights anchored twice: $anchors"
  height="$(curl -fsS "http://$api/v1/blocks/latest" | jq -r '.header.height // .height')"
  echo "round $round: killed, db check ok, height $height, acked $(wc -l <"$work/acked") all found, restart ${restarts_ms[-1]} ms, anchors $anchors"
done
kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true
echo "crash loop passed: $kills SIGKILLs, $(wc -l <"$work/acked") acknowledged transactions, none lost"
[ -n "${KEEP:-}" ] && echo "work dir kept: $work" || rm -rf "$work"
