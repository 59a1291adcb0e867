#!/usr/bin/env bash
# deploy/perf-run.sh: one reproducible throughput / latency / memory run (RUNBOOK "Performance").
#
# Starts a sequencer on config/perf.yaml (persistent storage, mempool.persist on, bridge off)
# in a fresh temporary data dir, drives it with accumen-stress, samples the node's RSS
# (/proc/PID/status VmRSS) and mempool size every 0.5 s, stops the node with SIGTERM and
# prints one summary: the stress report, the baseline / peak / after-drain RSS, and the
# machine's load. Nothing is left running and the data dir is removed (KEEP=1 keeps it).
#
#   deploy/perf-run.sh                                  # defaults below
#   STRESS_ARGS="--duration 60s --rate 12500 --json" deploy/perf-run.sh
#   BLOCK_TIME=1s deploy/perf-run.sh                    # any ACCUMEN_* variable works too
#   MODE=mem deploy/perf-run.sh                         # 100,000 pending, then drain (below)
#
# Variables: PROFILE (cargo profile of the binaries, default bench: release optimizations
# without LTO, builds much faster; BUILD=0 skips the build), CONFIG (default config/perf.yaml),
# BLOCK_TIME (overrides block_time), PERF_PORT (API port, default a free one), STRESS_ARGS
# (passed to accumen-stress as is), SETTLE (most seconds to wait, once the mempool is empty,
# for the RSS to settle before the after-drain reading, default 30), CYCLES (MODE=mem: how many
# backlogs to admit and drain one after another, default 1), FEATURES (cargo features of the
# build: e.g. FEATURES=--no-default-features for glibc's malloc instead of jemalloc), WINDOW
# (1: after each drain, also wait for 32 more blocks and read the RSS again; below), LIMITS
# (1, the default in the throughput mode: run `make bench-limits` before the node starts and
# again once it is stopped, and print the node's committed tx/s as a fraction of the two
# ceilings, each the mean of the two readings; 0 skips it, about 30 s).
#
# CPU: the node's CPU time (utime + stime) from the stress tool's start to the empty mempool,
# per committed transaction (node_cpu_us_per_committed_tx): the node's efficiency, unlike the
# tx/s independent of how many cores the load generator took. With LIMITS, the bare stages'
# cost per transaction on busy cores (2 cores / ceiling_busy_tps) is printed as a fraction of it.
#
# Memory figures (RSS = VmRSS of /proc/PID/status; RssAnon beside it is the heap and stacks,
# without the mapped binary):
#   rss_baseline   the idle node 2 s after /health first answers, on an empty data dir: the
#                  redb page cache is cold (a new chain has nothing to cache).
#   rss_peak       the largest sample (every 0.5 s) of the whole run.
#   peak_pending   the largest mempool size sampled, and the RSS at that sample.
#   rss_after_drain  once the mempool is empty: sampled every second until it has changed by
#                  less than 1 MiB over the last 10 s, for at most SETTLE s; the first reading
#                  (rss_at_empty), the settled one and the seconds it took are printed.
#   rss_after_window  (WINDOW=1) the same reading once 32 more blocks are committed after the
#                  mempool emptied: the storage keeps the locations of the last 32 blocks' txs in
#                  memory (actors/src/storage/locations.rs, `RANGES`) and writes them to the file
#                  one range per block, so only then has the backlog left that index. At 250 ms
#                  blocks that is 8 s; at MODE=mem's 20 s blocks, 640 s.
# The redb page cache (at most storage_cache_mb, default 64 MiB) is warm after a drain and stays
# so; everything else should come back (RUNBOOK "Performance", memory).
#
# MODE=mem: block_time 20s (override with BLOCK_TIME) so that the first block comes only after
# the whole backlog is admitted: the peak mempool size and the RSS with it are read, then the
# node drains the backlog (20,000 calls a block, the chain's gas limit) and the RSS after the
# drain is read. With CYCLES=2 or more the same backlog (new transactions) is admitted and
# drained again, and the RSS after each drain is printed: memory that comes back is reused, so
# the later cycles must not add to it.
set -euo pipefail

cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-bench}
CONFIG=${CONFIG:-config/perf.yaml}
MODE=${MODE:-tps}
SETTLE=${SETTLE:-30}
CYCLES=${CYCLES:-1}
LIMITS=${LIMITS:-$([ "$MODE" = tps ] && echo 1 || echo 0)}
TARGET=${CARGO_TARGET_DIR:-target}
# cargo puts the built-in profiles in target/debug (dev, test) and target/release (release,
# bench); a custom profile in target/<name>.
case "$PROFILE" in
    dev | test) BIN_DIR=$TARGET/debug ;;
    release | bench) BIN_DIR=$TARGET/release ;;
    *) BIN_DIR=$TARGET/$PROFILE ;;
esac

if [ "${BUILD:-1}" = 1 ]; then
    # shellcheck disable=SC2086 # FEATURES is a list of flags
    cargo build --profile "$PROFILE" ${FEATURES:-} --bin accumen --bin accumen-stress >&2
    # Built now, so that it runs as soon as the node stops instead of compiling first.
    if [ "$LIMITS" = 1 ]; then cargo bench --no-run -q -p accumen-actors --bench limits >&2; fi
fi

if [ "$MODE" = mem ]; then
    BLOCK_TIME=${BLOCK_TIME:-20s}
    STRESS_ARGS=${STRESS_ARGS:---txs 100000 --senders 1000 --contracts 8 --batch 1000 --connections 2 --deadline 300s --json}
else
    STRESS_ARGS=${STRESS_ARGS:---duration 60s --rate 25000 --senders 2000 --contracts 8 --batch 1000 --connections 2 --json}
fi

DATA=$(mktemp -d /tmp/accumen-perf.XXXXXX)
LOG=$DATA/node.log
SAMPLES=$DATA/samples.csv
# A free port unless PERF_PORT says which: a node already listening there would otherwise
# answer the health check and take the load meant for this one.
PERF_PORT=${PERF_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
API=http://127.0.0.1:$PERF_PORT
node_pid=""
cleanup() {
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DATA" >&2; else rm -rf "$DATA"; fi
}
trap cleanup EXIT

export ACCUMEN_DATA_DIR=$DATA/data
export ACCUMEN_API_ADDR=127.0.0.1:$PERF_PORT
# The other listeners on free ports, so a run does not collide with a node already running.
export ACCUMEN_METRICS_ADDR=127.0.0.1:0 ACCUMEN_HEALTH_ADDR=127.0.0.1:0 ACCUMEN_ADMIN_ADDR=127.0.0.1:0
[ -n "${BLOCK_TIME:-}" ] && export ACCUMEN_BLOCK_TIME=$BLOCK_TIME

# The bare-pipeline limit in the same run, measured on both sides of it: the machine's speed
# drifts by tens of percent from one minute to the next on a shared VM (a busy ceiling of
# 59,827 and 76,420 tx/s in two consecutive runs, 2026-12-03), so one reading after the run says
# as much about that minute as about the node; the mean of a reading before and one after
# stands for the minutes in between.
run_limits() {
    cargo bench -q -p accumen-actors --bench limits -- --json >"$DATA/limits-$1.txt" 2>"$DATA/limits-$1.err" || {
        echo "bench-limits failed:" >&2
        tail -20 "$DATA/limits-$1.err" >&2
        exit 1
    }
}
[ "$LIMITS" = 1 ] && run_limits before

"$BIN_DIR/accumen" --role=sequencer --config="$CONFIG" >"$LOG" 2>&1 &
node_pid=$!

deadline=$((SECONDS + 60))
until curl -sf "$API/health" >/dev/null 2>&1; do
    if ! kill -0 "$node_pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
        echo "the node did not come up; its log:" >&2
        tail -30 "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done
if ! kill -0 "$node_pid" 2>/dev/null; then
    echo "the node exited (another process answers on $API?); its log:" >&2
    tail -30 "$LOG" >&2
    exit 1
fi

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$node_pid/status"; }
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$node_pid/status"; }
pending() { curl -sf "$API/mempool/stats" | sed -n 's/.*"size":\([0-9]*\).*/\1/p'; }
height() { curl -sf "$API/stats" | sed -n 's/.*"block_height":\([0-9]*\).*/\1/p'; }
mib() { echo $(($1 / 1024)); }
# The node's CPU time so far in clock ticks (utime + stime of /proc/PID/stat; the command name
# in field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$node_pid/stat"; }

# The idle node's footprint: threads started, pools allocated, nothing cached yet.
sleep 2
baseline=$(rss_kib)
baseline_anon=$(anon_kib)
echo "t_s,rss_kib,pending" >"$SAMPLES"
(
    start=$SECONDS
    while kill -0 "$node_pid" 2>/dev/null; do
        echo "$((SECONDS - start)),$(rss_kib 2>/dev/null || echo 0),$(pending || echo 0)" >>"$SAMPLES"
        sleep 0.5
    done
) &
sampler=$!

# settle: prints "first settled seconds" (KiB): the RSS now, then once a second until the last
# 10 s moved it by less than 1 MiB (an allocator returning memory does so over seconds:
# jemalloc purges freed pages along a 10 s decay curve), for at most SETTLE seconds.
settle() {
    local t=0 lo hi v
    local -a hist
    hist=("$(rss_kib)")
    while [ "$t" -lt "$SETTLE" ]; do
        sleep 1
        t=$((t + 1))
        hist+=("$(rss_kib)")
        if [ "${#hist[@]}" -ge 11 ]; then
            lo=${hist[-1]}
            hi=${hist[-1]}
            for v in "${hist[@]: -11}"; do
                [ "$v" -lt "$lo" ] && lo=$v
                [ "$v" -gt "$hi" ] && hi=$v
            done
            [ $((hi - lo)) -lt 1024 ] && break
        fi
    done
    echo "${hist[0]} ${hist[-1]} $t"
}

after_lines=()
cpu_lines=()
for cycle in $(seq 1 "$CYCLES"); do
    cpu_before=$(cpu_ticks)
    # shellcheck disable=SC2086 # STRESS_ARGS is a list of flags
    "$BIN_DIR/accumen-stress" --api "$API" $STRESS_ARGS >"$DATA/stress-$cycle.json" 2>"$DATA/stress-$cycle.err" || {
        echo "accumen-stress failed (cycle $cycle):" >&2
        tail -20 "$DATA/stress-$cycle.err" >&2
        kill "$sampler" 2>/dev/null || true
        exit 1
    }
    # Let the node finish what is pending (MODE=mem: the whole drain) before the last reading.
    deadline=$((SECONDS + 600))
    while [ "$(pending || echo 0)" != 0 ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    cpu_lines+=("$(python3 - "$DATA/stress-$cycle.json" "$cpu_before" "$(cpu_ticks)" "$(getconf CLK_TCK)" <<'PY'
import json, sys
committed = json.load(open(sys.argv[1]))["committed"]
seconds = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
per_tx = f"{1e6 * seconds / committed:.1f}" if committed else "n/a"
print(f"node_cpu_seconds {seconds:.1f} node_cpu_us_per_committed_tx {per_tx}")
open(sys.argv[1] + ".cpu", "w").write(per_tx)
PY
)")
    read -r at_empty after settle_s < <(settle)
    after_anon=$(anon_kib)
    line="cycle $cycle: rss_at_empty_mib $(mib "$at_empty") rss_after_drain_mib $(mib "$after") (anon $(mib "$after_anon")) settled_after_s $settle_s"
    if [ "${WINDOW:-0}" = 1 ]; then
        # 32 = RANGES in actors/src/storage/locations.rs: the blocks an id's location waits in
        # memory at most before its range is written.
        target=$(($(height || echo 0) + 32))
        deadline=$((SECONDS + 3600))
        while [ "$(height || echo 0)" -lt "$target" ] && [ $SECONDS -lt $deadline ]; do sleep 1; done
        read -r _ window _ < <(settle)
        window_anon=$(anon_kib)
        line+=" rss_after_window_mib $(mib "$window") (anon $(mib "$window_anon"))"
    fi
    after_lines+=("$line")
done
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

# The second reading of the bare-pipeline limit, once the node has stopped (see run_limits).
limits_line=""
if [ "$LIMITS" = 1 ]; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
    run_limits after
    limits_line=$(python3 - "$DATA/limits-before.txt" "$DATA/limits-after.txt" "$DATA/stress-$CYCLES.json" <<'PY'
import json, sys
def read(path):
    return next(json.loads(l.split(":", 1)[1]) for l in open(path) if l.startswith("limits-json:"))
before, after = read(sys.argv[1]), read(sys.argv[2])
node = json.load(open(sys.argv[3]))["committed_tps"]
one = (before["ceiling_tps"] + after["ceiling_tps"]) / 2
busy = (before["ceiling_busy_tps"] + after["ceiling_busy_tps"]) / 2
print(f"ceiling_tps {one:.0f} ceiling_busy_tps {busy:.0f} (means of before/after: {before['ceiling_tps']:.0f}/{after['ceiling_tps']:.0f} and {before['ceiling_busy_tps']:.0f}/{after['ceiling_busy_tps']:.0f}; load before {before['load_before']}, after {after['load_after']})")
print(f"node_committed_tps {node:.0f} = {100 * node / one:.0f}% of ceiling_tps, {100 * node / busy:.0f}% of ceiling_busy_tps (against the reading after alone: {100 * node / after['ceiling_busy_tps']:.0f}%)")
# The same comparison in CPU per transaction, which leaves out the cores the stress tool took
# and any idle time: the bare stages' cost on busy cores against what the node spent.
try:
    node_us = float(open(sys.argv[3] + ".cpu").read())
    bare_us = 2e6 / busy
    print(f"bare_cpu_us_per_tx {bare_us:.1f} (busy) = {100 * bare_us / node_us:.0f}% of the node's {node_us:.1f}")
except ValueError:
    pass
PY
)
fi

peak=$(awk -F, 'NR > 1 && $2 > m {m = $2} END {print m + 0}' "$SAMPLES")
peak_pending=$(awk -F, 'NR > 1 && $3 > m {m = $3; r = $2} END {print m + 0, r + 0}' "$SAMPLES")
echo "== accumen-stress ($STRESS_ARGS) on $CONFIG, block_time ${BLOCK_TIME:-from config}, profile $PROFILE${FEATURES:+ $FEATURES}"
for cycle in $(seq 1 "$CYCLES"); do
    [ "$CYCLES" = 1 ] || echo "-- cycle $cycle"
    cat "$DATA/stress-$cycle.json"
done
echo "== memory (MiB; RSS of /proc/PID/status, anon = RssAnon)"
echo "rss_baseline_mib $(mib "$baseline") (anon $(mib "$baseline_anon"))"
echo "rss_peak_mib $(mib "$peak")"
echo "peak_pending ${peak_pending% *} at_rss_mib $(mib "${peak_pending#* }")"
echo "rss_after_drain_mib $(mib "$after") (anon $(mib "$after_anon"), settled after ${settle_s} s of at most $SETTLE)"
echo "rss_after_drain_over_baseline_mib $(mib $((after - baseline))) (the redb page cache alone may hold up to ${ACCUMEN_STORAGE_CACHE_MB:-64}: storage_cache_mb)"
[ "$CYCLES" = 1 ] && [ "${WINDOW:-0}" != 1 ] || printf '%s\n' "${after_lines[@]}"
echo "== node CPU (from the stress tool's start to the empty mempool; its signing phase, before"
echo "   the first request, costs the idle node next to nothing)"
printf '%s\n' "${cpu_lines[@]}"
if [ -n "$limits_line" ]; then
    echo "== bare-pipeline limit (make bench-limits, run before the node started and as soon as it stopped)"
    echo "$limits_line"
fi
echo "== machine"
echo "cores $(nproc)  load $(cut -d' ' -f1-3 /proc/loadavg)  $(uname -sr)"
# grep -c exits 1 when it counts 0: that is a clean run, not a failure.
echo "node_error_lines $(grep -c "ERROR" "$LOG" || true)"
