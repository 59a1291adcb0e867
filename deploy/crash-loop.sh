#!/usr/bin/env bash
# Crash loop (issue 11): SIGKILL a real sequencer at a random point under real load, N times,
# and after each kill check what a crash must never break. The node runs on config/devnet.yaml
# (persistent storage, mempool journal on, bridge on) against a local devnet-l0 whose ledger is
# kept on disk, every listener on port 0, everything in a temporary directory.
#
# Per round:
#   1. accumen-stress drives the node: binary batches from SENDERS fresh keys over CONTRACTS
#      fresh counters, open loop at RATE tx/s; every id the node acknowledged goes to the
#      round's acked file (--acked-out) as its answer is read.
#   2. Once it is sending, after a random KILL_MIN..KILL_MAX seconds, SIGKILL the node (then
#      stop the stress tool).
#   3. `accumen db check` on the stopped data dir: schema, chain linked, signatures, receipts
#      and state roots re-executed, outbox consistent.
#   4. Restart (timed: process start to the API answering) and accumen-crash-check: every id
#      acknowledged this round, and every one still pending after the previous round, is in a
#      block or still pending (none lost), none is in two blocks; blocks are scanned from where
#      the previous round stopped.
#   5. The devnet data account: no height in two delivered anchors.
# At the end a final check scans the whole chain for every acknowledged id, waits (DRAIN
# seconds) for the pending ones to commit, and prints the figures.
#
# Usage: deploy/crash-loop.sh PATH/TO/accumen [ROUNDS=50]
# accumen-stress and accumen-crash-check are taken from the same directory (build them with
# `cargo build [--release] --bin accumen --bin accumen-stress --bin accumen-crash-check`, or
# `make crash-loop`). Needs jq and curl.
# Variables: RATE (3000), SENDERS (2000), CONTRACTS (4), BATCH (250), KILL_MIN (0.5), KILL_MAX
# (5) seconds after the load starts sending, BLOCK_TIME (200ms), DRAIN (60), KEEP=1 keeps the
# work dir, SEED (for $RANDOM: the same kill delays again).
# Keep RATE below what the node commits (the progress lines show "errors 0"): a refused batch
# leaves its senders a nonce gap, their later acknowledged transactions are evicted by
# mempool.future_ttl as designed, and would be reported lost.
# Prints one line per round and a summary; exits 1 on the first violated check (work dir kept).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?usage: deploy/crash-loop.sh PATH/TO/accumen [ROUNDS]}")"
rounds="${2:-50}"
bindir="$(dirname "$bin")"
stress="$bindir/accumen-stress"
checker="$bindir/accumen-crash-check"
for b in "$stress" "$checker"; do
  [ -x "$b" ] || { echo "$b is missing: cargo build --bin accumen-stress --bin accumen-crash-check (same profile as $bin)" >&2; exit 2; }
done
for t in jq curl awk; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }; done
RATE="${RATE:-3000}" SENDERS="${SENDERS:-2000}" CONTRACTS="${CONTRACTS:-4}" BATCH="${BATCH:-250}"
KILL_MIN="${KILL_MIN:-0.5}" KILL_MAX="${KILL_MAX:-5}" BLOCK_TIME="${BLOCK_TIME:-200ms}"
DRAIN="${DRAIN:-60}"
[ -n "${SEED:-}" ] && RANDOM="$SEED"
# The stress tool must still be sending when the kill comes: it sends for KILL_MAX + 5 s.
send_s="$(awk -v m="$KILL_MAX" 'BEGIN { printf "%d", m + 5.999 }')"

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
round=0
fail() { echo "FAIL round $round: $*" >&2; echo "work dir kept: $work" >&2; trap - EXIT; cleanup; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
started_ms="$(now_ms)"

"$bin" key generate --out "$work/l0.key" >"$work/l0.key.json"
pk="$(jq -r .public_key "$work/l0.key.json")"

# devnet-l0 on port 0, ledger persisted; its addresses come from its "listening" line.
"$bin" devnet-l0 --listen 127.0.0.1:0 --control 127.0.0.1:0 --block-time 200ms \
  --key-page acc://accumen.acme/book/1 --public-key "$pk" \
  --data-account acc://accumen.acme/anchors --data-dir "$work/l0" 2>"$work/l0.log" &
pids+=("$!")
l0=""
for _ in $(seq 1 300); do
  l0="$(grep -o 'v3=[0-9.:]*' "$work/l0.log" | head -1 | cut -d= -f2 || true)"
  [ -n "$l0" ] && break
  sleep 0.1
done
[ -n "$l0" ] || { cat "$work/l0.log" >&2; echo "devnet-l0 did not start" >&2; exit 1; }

node_pid="" api=""
# Starts the node and returns once its API answers; sets restart_ms (process start to answer).
start_node() {
  local log="$work/node-$round.log" t0
  t0="$(now_ms)"
  ACCUMEN_API_ADDR=127.0.0.1:0 ACCUMEN_HEALTH_ADDR=127.0.0.1:0 ACCUMEN_METRICS_ADDR=127.0.0.1:0 \
  ACCUMEN_ADMIN_ADDR=127.0.0.1:0 ACCUMEN_DATA_DIR="$work/data" ACCUMEN_BLOCK_TIME="$BLOCK_TIME" \
  ACCUMEN_BRIDGE__L0__ENDPOINT="http://$l0/v3" ACCUMEN_BRIDGE__L0__KEY_FILE="$work/l0.key" \
  ACCUMEN_BRIDGE__STAGER__FLUSH_INTERVAL=200ms \
    "$bin" --role=sequencer --config=config/devnet.yaml 2>"$log" &
  node_pid=$!
  pids+=("$node_pid")
  api=""
  for _ in $(seq 1 1200); do
    [ -n "$api" ] || api="$(grep -o ' api=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)"
    if [ -n "$api" ] && curl -sf -o /dev/null "http://$api/v1/chain"; then
      restart_ms=$(( $(now_ms) - t0 ))
      return 0
    fi
    kill -0 "$node_pid" 2>/dev/null || { tail -20 "$log" >&2; fail "node exited at start"; }
    sleep 0.05
  done
  fail "node did not answer within 60 s of its start"
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

# Percentile (0..1) of the numbers on stdin, nearest rank.
pct() { sort -n | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print 0; exit } i = int(NR * p + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print v[i] }'; }

: >"$work/pending-0"
kills=0 restarts=() checks=() scan_from=1 restored_total=0
start_node
echo "crash loop: $rounds rounds, load $RATE tx/s ($SENDERS senders, $CONTRACTS contracts, batches of $BATCH, binary), kill $KILL_MIN-$KILL_MAX s into the load, ${BLOCK_TIME} blocks, bridge to devnet-l0, work dir $work"
for round in $(seq 1 "$rounds"); do
  acked="$work/acked-$round"
  : >"$acked"
  : >"$work/stress-$round.log"  # exists before the tool opens it, for the wait below
  "$stress" --api "http://$api" --duration "${send_s}s" --rate "$RATE" --senders "$SENDERS" \
    --contracts "$CONTRACTS" --batch "$BATCH" --connections 2 --format binary --json \
    --acked-out "$acked" >"$work/stress-$round.json" 2>"$work/stress-$round.log" &
  stress_pid=$!
  pids+=("$stress_pid")
  # Kill only once it is sending: its line after signing, just before the first request.
  for _ in $(seq 1 1200); do
    grep -q '^signed and encoded' "$work/stress-$round.log" && break
    kill -0 "$stress_pid" 2>/dev/null || { cat "$work/stress-$round.log" >&2; fail "accumen-stress exited before sending"; }
    sleep 0.05
  done
  grep -q '^signed and encoded' "$work/stress-$round.log" || fail "accumen-stress did not start sending within 60 s"
  delay="$(awk -v s="$RANDOM" -v a="$KILL_MIN" -v b="$KILL_MAX" 'BEGIN { srand(s); printf "%.2f", a + rand() * (b - a) }')"
  sleep "$delay"
  kill -0 "$stress_pid" 2>/dev/null || { cat "$work/stress-$round.log" >&2; fail "accumen-stress stopped before the kill"; }
  kill -KILL "$node_pid"; wait "$node_pid" 2>/dev/null || true
  kills=$((kills + 1))
  # Its answers are all read or failed by now (the node is gone); what it recorded stays.
  kill -TERM "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true
  ! grep -q 'cannot record acknowledged ids' "$work/stress-$round.log" \
    || fail "accumen-stress could not record acknowledged ids"
  progress="$(grep '^\[' "$work/stress-$round.log" | tail -1 | sed 's/^\[ *[0-9]*s\] //' || true)"

  t0="$(now_ms)"
  "$bin" db check --data-dir "$work/data" >"$work/check-$round.json" 2>"$work/check-$round.err" \
    || { tail -20 "$work/check-$round.err" >&2; fail "db check"; }
  checks+=($(( $(now_ms) - t0 )))

  start_node
  restarts+=("$restart_ms")
  "$checker" --api "http://$api" --acked "$acked" --acked "$work/pending-$((round - 1))" \
    --from "$scan_from" --pending-out "$work/pending-$round" >"$work/lost-$round.json" \
    2>"$work/lost-$round.err" || { cat "$work/lost-$round.json" "$work/lost-$round.err" >&2; fail "acknowledged transactions lost or included twice"; }
  lost="$(cat "$work/lost-$round.json")"
  scan_from=$(( $(jq .scanned_to <<<"$lost") + 1 ))
  n_acked="$(wc -l <"$acked")"
  # What the restart re-admitted from the mempool journal (its INFO line; none: 0).
  restored="$(grep -o 'restored=[0-9]*' "$work/node-$round.log" | head -1 | cut -d= -f2 || true)"
  restored_total=$((restored_total + ${restored:-0}))

  # Anchors the devnet delivered (its saved ledger, replaced atomically after each block):
  # parts 2 and 3 of each accumen-anchor/1 entry are its first and last height, big-endian.
  anchors="$(jq -c "$anchor_jq" "$work/l0/devnet-l0.json")"
  [ "$(jq '.twice | length' <<<"$anchors")" = 0 ] || fail "heights anchored twice: $anchors"
  echo "round $round: kill at ${delay}s into the load ($progress); db check ok in ${checks[-1]} ms;" \
    "restart ${restart_ms} ms, ${restored:-0} re-admitted from the journal; acked $n_acked this round, $(jq -c '{included, pending, lost, partial_lines}' <<<"$lost")," \
    "height $(jq .scanned_to <<<"$lost"); anchors $(jq -c '{anchors, max}' <<<"$anchors")"
done

# Final: every acknowledged id of every round against the whole chain, once the pending ones
# have had DRAIN seconds to commit (no load now).
final_pending=0
deadline=$((SECONDS + DRAIN))
while :; do
  "$checker" --api "http://$api" $(for r in $(seq 1 "$rounds"); do echo --acked "$work/acked-$r"; done) \
    --from 1 --pending-out "$work/pending-final" >"$work/final.json" 2>"$work/final.err" \
    || { cat "$work/final.json" "$work/final.err" >&2; fail "final check: acknowledged transactions lost or included twice"; }
  final_pending="$(jq .pending "$work/final.json")"
  [ "$final_pending" = 0 ] || [ $SECONDS -ge $deadline ] && break
  sleep 2
done
final="$(cat "$work/final.json")"
anchors="$(jq -c "$anchor_jq" "$work/l0/devnet-l0.json")"
kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true
total_s=$(( ($(now_ms) - started_ms) / 1000 ))
echo "crash loop passed: $rounds rounds, $kills SIGKILLs under load;" \
  "acknowledged $(jq .acked <<<"$final") transactions: $(jq .included <<<"$final") included," \
  "$final_pending still pending after ${DRAIN}s, $(jq .lost <<<"$final") lost, none included twice;" \
  "$restored_total re-admitted from the journal over all restarts;" \
  "$(jq .scanned_to <<<"$final") blocks; $(jq .anchors <<<"$anchors") anchors up to height $(jq .max <<<"$anchors"), no height anchored twice;" \
  "restart p50 $(printf '%s\n' "${restarts[@]}" | pct 0.5) ms max $(printf '%s\n' "${restarts[@]}" | pct 1) ms;" \
  "db check p50 $(printf '%s\n' "${checks[@]}" | pct 0.5) ms max $(printf '%s\n' "${checks[@]}" | pct 1) ms;" \
  "total ${total_s} s"
[ "$final_pending" = 0 ] || fail "$final_pending acknowledged transactions still pending ${DRAIN}s after the last round"
if [ -n "${KEEP:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
