#!/usr/bin/env bash
# Tests deploy/install.sh in a temporary root, then runs `systemd-analyze verify` on the units
# as installed there (the binary they start must exist, so the verify uses that root).
# Checks: a dry run changes nothing; the first run installs the user, directories, files with
# their modes and owners; a second run changes nothing; an operator's config edit survives a
# rerun; a changed unit is updated; bad arguments change nothing.
# Usage: deploy/test-install.sh PATH/TO/accumen   (as root: the install chowns)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?usage: deploy/test-install.sh PATH/TO/accumen}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
r="$work/root"
mkdir -p "$r/etc"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$r/etc/shadow"
printf 'root:*::\n' >"$r/etc/gshadow"
fail() { echo "test-install: $*" >&2; exit 1; }
snapshot() { (cd "$r" && find . -printf '%p %m %u %g %s\n' | sort && cat etc/passwd etc/group); }

# Both roles run the same binary: their hardening must not drift apart (check-syscalls.sh reads
# the sequencer unit's filter for both).
diff <(sed -n '/^# --- Hardening/,$p' deploy/accumen.service) \
  <(sed -n '/^# --- Hardening/,$p' deploy/accumen-follower.service) >/dev/null \
  || fail "the hardening sections of accumen.service and accumen-follower.service differ"

# Bad arguments: refused with a message, nothing changed.
before="$(snapshot)"
for args in "--bin $work/nope" "--config $work/nope.yaml" "--root $work/nowhere" "--frobnicate"; do
  # shellcheck disable=SC2086
  if deploy/install.sh --root "$r" --bin "$bin" $args >"$work/out" 2>&1; then fail "accepted $args"; fi
  grep -q 'install.sh:' "$work/out" || fail "no message for $args: $(cat "$work/out")"
done
deploy/install.sh --dry-run --root "$r" --bin "$bin" >"$work/dry"
[ "$(snapshot)" = "$before" ] || fail "a refused run or --dry-run changed the root"
grep -q '^would create: system user' "$work/dry" || fail "dry run does not announce the user: $(cat "$work/dry")"

deploy/install.sh --root "$r" --bin "$bin" >"$work/first"
grep -q '^accumen:x:[0-9]*:[0-9]*:Accumen node:/var/lib/accumen:/usr/sbin/nologin$' "$r/etc/passwd" \
  || fail "user not created: $(cat "$r/etc/passwd")"
uid="$(awk -F: '$1=="accumen"{print $3}' "$r/etc/passwd")"
gid="$(awk -F: '$1=="accumen"{print $3}' "$r/etc/group")"
expect() { # path "mode uid gid"
  [ -e "$r$1" ] || fail "$1 missing"
  [ "$(stat -c '%a %u %g' "$r$1")" = "$2" ] || fail "$1 is $(stat -c '%a %u %g' "$r$1"), expected $2"
}
expect /var/lib/accumen "700 $uid $gid"
expect /etc/accumen "750 0 $gid"
expect /usr/local/bin/accumen "755 0 0"
expect /etc/accumen/production.yaml "640 0 $gid"
expect /etc/systemd/system/accumen.service "644 0 0"
expect /etc/systemd/system/accumen-follower.service "644 0 0"
expect /usr/share/doc/accumen/RUNBOOK.md "644 0 0"
cmp -s "$bin" "$r/usr/local/bin/accumen" || fail "binary differs"

# Idempotent: the second run changes nothing and says so.
after_first="$(snapshot)"
deploy/install.sh --root "$r" --bin "$bin" >"$work/second"
[ "$(snapshot)" = "$after_first" ] || fail "second run changed the root"
grep -q '^nothing to change$' "$work/second" || fail "second run: $(cat "$work/second")"
[ "$(grep -c '^accumen:' "$r/etc/passwd")" = 1 ] || fail "user created twice"

# The operator's config survives; a changed unit is replaced.
echo "# edited by the operator" >>"$r/etc/accumen/production.yaml"
echo "# stale" >>"$r/etc/systemd/system/accumen.service"
deploy/install.sh --root "$r" --bin "$bin" >"$work/third"
tail -1 "$r/etc/accumen/production.yaml" | grep -q 'edited by the operator' || fail "config overwritten"
grep -q '^kept: /etc/accumen/production.yaml' "$work/third" || fail "third run: $(cat "$work/third")"
grep -q '^update: /etc/systemd/system/accumen.service' "$work/third" || fail "unit not updated"
cmp -s deploy/accumen.service "$r/etc/systemd/system/accumen.service" || fail "unit differs"
# A group without its user (an interrupted run) is reused, not an error.
r2="$work/root2"
mkdir -p "$r2/etc"
cp "$r"/etc/{shadow,gshadow} "$r2/etc/" && sed -i '/^accumen:/d' "$r2"/etc/{shadow,gshadow}
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$r2/etc/passwd"
printf 'root:x:0:\naccumen:x:990:\n' >"$r2/etc/group"
echo 'accumen:!::' >>"$r2/etc/gshadow"
deploy/install.sh --root "$r2" --bin "$bin" >"$work/partial" || fail "partial state: $(cat "$work/partial")"
grep -q '^accumen:x:[0-9]*:990:' "$r2/etc/passwd" || fail "existing group not reused: $(cat "$r2/etc/passwd")"
echo "install.sh: dry run, first run, idempotent rerun, kept config, updated unit, reused group, bad arguments: ok"

# systemd-analyze verify needs the manager's own units (sysinit.target...) under the root.
if command -v systemd-analyze >/dev/null 2>&1 && [ -d /usr/lib/systemd/system ]; then
  mkdir -p "$r/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$r/usr/lib/systemd/"
  # ExecReload runs /bin/kill (procps, on every target system); verify checks it exists.
  mkdir -p "$r/bin"
  cp /bin/kill "$r/bin/kill"
  for u in accumen.service accumen-follower.service; do
    # Any output is a warning (an unknown or misplaced key, a missing binary): fail on it too.
    out="$(systemd-analyze verify --root="$r" "/etc/systemd/system/$u" 2>&1)" || fail "verify $u: $out"
    [ -z "$out" ] || fail "verify $u warned: $out"
  done
  echo "systemd-analyze verify: accumen.service, accumen-follower.service: ok"
  # The exposure score (0 best, 10 worst; the pre-hardening unit scored 8.5, these 1.3): fail
  # if a change weakens the hardening past 2.0 (--threshold is in tenths).
  for u in accumen.service accumen-follower.service; do
    systemd-analyze security --offline=true --threshold=20 --root="$r" "/etc/systemd/system/$u" \
      >"$work/security" 2>&1 || { cat "$work/security" >&2; fail "$u: exposure above 2.0"; }
    echo "systemd-analyze security $u: $(grep -o 'exposure level.*' "$work/security")"
  done
else
  echo "SKIPPED: systemd-analyze is not installed; the units were not verified" >&2
fi
