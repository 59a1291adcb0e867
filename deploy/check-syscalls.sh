#!/usr/bin/env bash
# Emulated check of the units' syscall filter, for machines where systemd is not PID 1 (CI
# containers) and `systemd-run -p SystemCallFilter=...` cannot run the node: the node runs under
# `strace -f` with persistent storage and the bridge on (its L0 unreachable), deploys and calls a
# contract (JIT compile, W^X mprotect, instance memory), calls one that traps (wasmtime's signal
# handlers), answers a read-only query; a follower (also traced) replays those blocks; both stop
# on SIGTERM. Then every syscall either made must be
# in the set the units allow (`SystemCallFilter=` lines of deploy/accumen.service, expanded by
# `systemd-analyze syscall-filter`). It checks what the node did during this run, not every path.
# Usage: deploy/check-syscalls.sh PATH/TO/accumen
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?usage: deploy/check-syscalls.sh PATH/TO/accumen}")"
unit=deploy/accumen.service

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

# The allowed set: the allow-list line(s) minus the deny-list (~) line(s), each group expanded.
expand() { # names or @groups -> one syscall a line
  for item in "$@"; do
    if [[ "$item" == @* ]]; then
      systemd-analyze syscall-filter "$item" | grep -v -e '^@' -e '^ *#' -e '^ *$' | sed 's/^ *//' | grep -v '^@' || true
      # Nested groups are listed by name inside a group: expand them too.
      for sub in $(systemd-analyze syscall-filter "$item" | sed 's/^ *//' | grep '^@' | tail -n +2); do
        expand "$sub"
      done
    else
      echo "$item"
    fi
  done
}
allow=() deny=()
while IFS= read -r line; do
  v="${line#SystemCallFilter=}"
  if [[ "$v" == ~* ]]; then read -ra w <<<"${v#\~}"; deny+=("${w[@]}"); else read -ra w <<<"$v"; allow+=("${w[@]}"); fi
done < <(grep '^SystemCallFilter=' "$unit")
expand "${allow[@]}" | sort -u >"$work/allow"
expand "${deny[@]}" | sort -u >"$work/deny"
comm -23 "$work/allow" "$work/deny" >"$work/allowed"
echo "filter allows $(wc -l <"$work/allowed") syscalls (${allow[*]} minus ${deny[*]})"

"$bin" key generate --out "$work/l0.key" >/dev/null
"$bin" key generate --out "$work/user.key" >/dev/null
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
# traced NAME ENV... : runs the node under strace (trace in $work/NAME.trace, log in
# $work/NAME.log) with listeners on port 0; sets $api (its API), $tracer (strace's pid).
traced() {
  local name="$1"; shift
  local log="$work/$name.log"
  env ACCUMEN_API_ADDR=127.0.0.1:0 ACCUMEN_HEALTH_ADDR=127.0.0.1:0 ACCUMEN_METRICS_ADDR=127.0.0.1:0 ACCUMEN_ADMIN_ADDR=127.0.0.1:0 \
    ACCUMEN_LOGGING__LEVEL=info ACCUMEN_STORAGE=persistent ACCUMEN_DATA_DIR="$work/$name-data" "$@" \
    strace -f -qq -o "$work/$name.trace" "$bin" --role="$name" --config=config/local.yaml 2>"$log" &
  tracer=$!
  pids+=("$tracer")
  api=""
  for _ in $(seq 1 600); do
    api="$(grep -o ' api=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)"
    [ -n "$api" ] && return 0
    kill -0 "$tracer" 2>/dev/null || { cat "$log" >&2; echo "$name exited early" >&2; exit 1; }
    sleep 0.1
  done
  cat "$log" >&2; echo "$name did not start listening" >&2; exit 1
}
# stop_traced NAME PID: SIGTERM to the node itself (strace's child: strace would only detach).
stop_traced() {
  kill -TERM "$(cat /proc/"$2"/task/*/children | tr -d ' ')"
  wait "$2" || { cat "$work/$1.log" >&2; echo "$1 did not stop cleanly" >&2; exit 1; }
}

traced sequencer ACCUMEN_BLOCK_TIME=200ms ACCUMEN_BRIDGE__ENABLE_BRIDGE=true \
  ACCUMEN_BRIDGE__L0__ENDPOINT=http://127.0.0.1:9/v3 ACCUMEN_BRIDGE__L0__KEY_FILE="$work/l0.key" \
  ACCUMEN_BRIDGE__L0__DATA_ACCOUNT=acc://check.acme/anchors \
  ACCUMEN_BRIDGE__L0__KEY_PAGE=acc://check.acme/book/1
seq_tracer="$tracer" seq_api="$api"
export ACCUMEN_API="http://$seq_api"
addr_of() { grep -o '"contract": *"[0-9a-f]*"' | head -1 | grep -o '[0-9a-f]\{64\}'; }
counter="$("$bin" tx deploy --key "$work/user.key" --code tests/fixtures/counter.wat --wait | addr_of)"
"$bin" tx call --key "$work/user.key" --contract "$counter" --entry increment --wait >/dev/null
"$bin" query call --contract "$counter" --entry get >/dev/null
trapper="$("$bin" tx deploy --key "$work/user.key" --code tests/fixtures/trap.wat --wait | addr_of)"
"$bin" tx call --key "$work/user.key" --contract "$trapper" --entry run --wait >"$work/trap.json"
grep -q 'trap\|unreachable' "$work/trap.json" || { cat "$work/trap.json" >&2; echo "the trapping call did not trap" >&2; exit 1; }

# A follower replays those blocks (the same JIT, traps and storage, plus its sync client).
chain="$(curl -fsS "http://$seq_api/v1/chain")"
height="$(jq -r .height <<<"$chain")"
traced follower ACCUMEN_FOLLOWER__SEQUENCER_API="http://$seq_api" \
  ACCUMEN_FOLLOWER__SEQUENCER_KEY="$(jq -r .sequencer <<<"$chain")"
caught=""
for _ in $(seq 1 600); do
  caught="$(curl -fsS "http://$api/stats" | jq -r --argjson h "$height" \
    'select(.state == "caught_up" and .height >= $h) | .height' || true)"
  [ -n "$caught" ] && break
  sleep 0.1
done
[ -n "$caught" ] || { cat "$work/follower.log" >&2; echo "the follower did not reach $height" >&2; exit 1; }
stop_traced follower "$tracer"
stop_traced sequencer "$seq_tracer"
pids=()
cat "$work/sequencer.trace" "$work/follower.trace" >"$work/trace"

# strace lines: "PID name(args...) = ret", "PID <... name resumed> ...", "PID +++ exited ...".
sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p; s/^[0-9]+ +<\.\.\. ([a-z0-9_]+) resumed>.*/\1/p' "$work/trace" \
  | sort -u >"$work/used"
echo "the node made $(wc -l <"$work/used") distinct syscalls: $(tr '\n' ' ' <"$work/used")"
missing="$(comm -23 "$work/used" "$work/allowed")"
if [ -n "$missing" ]; then
  echo "syscalls the unit's filter would refuse (EPERM): $missing" >&2
  exit 1
fi
# The reason MemoryDenyWriteExecute= stays off: the JIT turns written pages executable.
wx="$(grep -cE 'mprotect\(.*PROT_EXEC' "$work/trace" || true)"
echo "mprotect(PROT_EXEC) calls (the wasmtime JIT; MemoryDenyWriteExecute= would refuse them): $wx"
[ "$wx" -gt 0 ] || { echo "no PROT_EXEC mprotect: did the contracts really compile?" >&2; exit 1; }
# ProcSubset=pid hides /proc entries other than processes (meminfo, cpuinfo, stat...), and
# PrivateDevices= leaves only pseudo devices under /dev: the node must not need anything else.
grep -oE '"/(proc|sys|dev)/[^"]*"' "$work/trace" | tr -d '"' | sort -u >"$work/paths" || true
echo "/proc, /sys and /dev paths opened: $(tr '\n' ' ' <"$work/paths")"
# One exception: glibc's malloc reads /proc/sys/vm/overcommit_memory when it shrinks a thread
# arena, and falls back to madvise when it cannot open it (only mode 2 changes anything).
hidden="$(grep -E '^/proc/' "$work/paths" | grep -vE '^/proc/(self|thread-self|[0-9]+)(/|$)' \
  | grep -vx /proc/sys/vm/overcommit_memory || true)"
devices="$(grep -E '^/dev/' "$work/paths" | grep -vE '^/dev/(null|zero|full|u?random|tty|pts/.*|shm/.*)$' || true)"
if [ -n "$hidden$devices" ]; then
  echo "paths ProcSubset=pid or PrivateDevices= would hide: $hidden $devices" >&2
  exit 1
fi
echo "syscall filter check passed: every syscall of the run is allowed"
