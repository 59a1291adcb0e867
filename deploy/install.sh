#!/usr/bin/env bash
# Installs an Accumen node under systemd: the `accumen` system user, /var/lib/accumen (0700) and
# /etc/accumen (0750), the binary, the config (only when none is there: an operator's edits are
# never overwritten), both units and the runbook, then `systemctl daemon-reload`. Idempotent: a
# second run changes nothing and says so; a changed binary or unit is replaced atomically (a
# running node keeps its old binary until restarted). It never enables or starts a unit.
# Usage: deploy/install.sh [--dry-run] [--root DIR] [--bin PATH] [--config PATH]
#   --dry-run   print what would change, change nothing
#   --root DIR  install under DIR instead of / (tests, images); no daemon-reload there
#   --bin       the binary (default bin/accumen, from `make build-release`)
#   --config    the config to install as /etc/accumen/production.yaml (default
#               config/production.yaml)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
root=/ dry=0 bin="$src/bin/accumen" config="$src/config/production.yaml"
usage() { sed -n '7,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --bin) bin="${2:?--bin needs a path}"; shift 2 ;;
    --config) config="${2:?--config needs a path}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
  esac
done
# Every input is checked before anything changes.
[ -d "$root" ] || { echo "install.sh: --root $root is not a directory" >&2; exit 2; }
root="$(cd "$root" && pwd)"
[ -f "$bin" ] && [ -x "$bin" ] || { echo "install.sh: binary $bin is missing or not executable (make build-release)" >&2; exit 2; }
[ -f "$config" ] || { echo "install.sh: config $config is missing" >&2; exit 2; }
for u in accumen.service accumen-follower.service; do
  [ -f "$src/deploy/$u" ] || { echo "install.sh: deploy/$u is missing" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || [ "$dry" = 1 ] || { echo "install.sh: run as root (or with --dry-run)" >&2; exit 2; }
[ -f "$root/etc/passwd" ] && [ -f "$root/etc/group" ] || { echo "install.sh: $root/etc/passwd or group is missing" >&2; exit 2; }

p() { printf '%s%s\n' "${root%/}" "$1"; }   # a path under the root
step() { if [ "$dry" = 1 ]; then echo "would $*"; else echo "$*"; fi; }
changed=0

# 1. The system user and group (no login, no home of its own besides the state directory).
if grep -q '^accumen:' "$(p /etc/passwd)"; then
  echo "unchanged: user accumen"
else
  step "create: system user and group accumen"; changed=1
  if [ "$dry" = 0 ]; then
    prefix=(); [ "$root" = / ] || prefix=(--prefix "$root")
    # A group left by an earlier, interrupted run (or made by hand) is reused.
    group=(--user-group); grep -q '^accumen:' "$(p /etc/group)" && group=(--gid accumen)
    useradd "${prefix[@]}" --system "${group[@]}" --home-dir /var/lib/accumen --no-create-home \
      --shell /usr/sbin/nologin --comment "Accumen node" accumen
  fi
fi
# Owners by number from the root's own passwd/group (the host's may differ under --root).
uid="$(awk -F: '$1=="accumen"{print $3}' "$(p /etc/passwd)")"
gid="$(awk -F: '$1=="accumen"{print $3}' "$(p /etc/group)")"
[ "$dry" = 1 ] && [ -z "$uid" ] && uid=accumen gid=accumen

# 2. Directories: state 0700 accumen (systemd's StateDirectory= keeps it so), config 0750
# root:accumen (the node reads it, cannot change it).
dir() { # path mode owner group [system: only created, never changed when it exists]
  local d; d="$(p "$1")"
  if [ -d "$d" ] && { [ "${5:-}" = system ] || [ "$(stat -c '%a %u %g' "$d")" = "$2 $3 $4" ]; }; then
    echo "unchanged: $1"
  else
    step "install: directory $1 ($2)"; changed=1
    [ "$dry" = 1 ] || install -d -m "$2" -o "$3" -g "$4" "$d"
  fi
}
dir /var/lib/accumen 700 "$uid" "$gid"
dir /etc/accumen 750 0 "$gid"
dir /usr/local/bin 755 0 0 system
dir /etc/systemd/system 755 0 0 system
dir /usr/share/doc/accumen 755 0 0

# 3. Files: replaced when their content, mode or owner differs; written to a temporary name in
# the same directory first, then renamed, so a reader never sees half a file.
file() { # source dest mode group [keep]
  local d; d="$(p "$2")"
  if [ -f "$d" ] && [ "${5:-}" = keep ]; then
    if cmp -s "$1" "$d"; then echo "unchanged: $2"; else echo "kept: $2 (yours; differs from $1)"; fi
    return
  fi
  if [ -f "$d" ] && cmp -s "$1" "$d" && [ "$(stat -c '%a %u %g' "$d")" = "$3 0 $4" ]; then
    echo "unchanged: $2"
    return
  fi
  if [ -f "$d" ]; then step "update: $2"; else step "install: $2"; fi
  changed=1
  [ "$dry" = 1 ] && return
  install -m "$3" -o 0 -g "$4" "$1" "$d.install-tmp"
  mv -f "$d.install-tmp" "$d"
}
file "$bin" /usr/local/bin/accumen 755 0
file "$config" /etc/accumen/production.yaml 640 "$gid" keep
file "$src/deploy/accumen.service" /etc/systemd/system/accumen.service 644 0
file "$src/deploy/accumen-follower.service" /etc/systemd/system/accumen-follower.service 644 0
file "$src/RUNBOOK.md" /usr/share/doc/accumen/RUNBOOK.md 644 0

# 4. systemd reads unit files only on daemon-reload.
if [ "$root" != / ]; then
  echo "skipped: daemon-reload (installing under --root $root)"
elif [ ! -d /run/systemd/system ]; then
  echo "skipped: daemon-reload (systemd is not running on this machine)"
elif [ "$dry" = 1 ]; then
  echo "would run: systemctl daemon-reload"
else
  systemctl daemon-reload && echo "ran: systemctl daemon-reload"
fi

if [ "$changed" = 0 ]; then echo "nothing to change"; fi
[ "$dry" = 1 ] && exit 0
cat <<'NEXT'
Next (RUNBOOK "Installing with systemd"): edit /etc/accumen/production.yaml, create the keys as
the node's user, check the config, then enable one unit:
  sudo -u accumen accumen key generate --out /var/lib/accumen/l0.key
  sudo -u accumen accumen config check --config /etc/accumen/production.yaml
  systemctl enable --now accumen        # or accumen-follower
NEXT
