#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# One-time (and re-runnable) set-up of a development/test machine, used by `make demo` and
# `make test`: Debian packages from bindep.txt, /dev/kvm permissions, the virtualenv, the
# collection linked into a collections path, and virtlogd/libvirtd running. Safe and fast to re-run.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (e.g. 'sudo make test'): set-up installs Debian packages, starts libvirtd and creates network namespaces."
command -v dpkg-query >/dev/null || die "this set-up supports Debian/Ubuntu (dpkg/apt) only; on other systems install the packages in bindep.txt by hand."

# 1. Debian packages: every bindep.txt line that is not rpm-only.
wanted=()
while read -r pkg rest; do
  case "$pkg" in ''|'#'*) continue ;; esac
  case "$rest" in *platform:rpm*) continue ;; esac
  wanted+=("$pkg")
done < bindep.txt
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  # The tests start PostgreSQL servers of their own (tests/fixtures/postgres.py); Debian's
  # package would also create and start a system cluster on port 5432 that nothing uses.
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/virtops-tests.conf
  fi
  # Debian's ceph-mon/ceph-osd make no cluster and start no daemon of their own: the tests make
  # theirs, by PID, under /var/tmp (tests/fixtures/ceph.py).
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: check the network/proxy and /etc/apt/sources.list, then re-run."
  # policy-rc.d keeps package scripts from starting services on machines without systemd.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/virtops-apt.log 2>&1 \
    || die "could not install: ${missing[*]} (log: /tmp/virtops-apt.log). Fix apt, or install them by hand, then re-run."
fi

# 2. /dev/kvm as Debian's udev rule sets it. With 0600 root:root libvirt re-probes QEMU on every
#    define/start (seen: 4 s to 47 s each).
if [ -c /dev/kvm ]; then
  if [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
    say "setting /dev/kvm to root:kvm 0660"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
fi

# 3. The virtualenvs: Debian's python3 with system site packages (python3-libvirt, python3-lxml).
#    requirements.txt states the ansible-core range the collection supports, ">=LOWEST,<NEXT", and
#    both ends are tested (CONTRIBUTING.md, Tests): .venv gets the highest minor release of the
#    range and every tool; .cache/venv-core-lowest (`setup.sh --core-lowest`, which
#    `make test-core-lowest` runs) gets the lowest and the test tools only.
core_range=$(sed -nE 's/^ansible-core>=([0-9]+\.[0-9]+),<([0-9]+\.[0-9]+)$/\1 \2/p' requirements.txt)
[ -n "$core_range" ] || die "requirements.txt must state ansible-core as 'ansible-core>=X.Y,<X.Z' (the range whose ends are tested)."
read -r CORE_LOWEST core_next <<<"$core_range"
CORE_HIGHEST="${core_next%.*}.$(( ${core_next#*.} - 1 ))"

# make_venv DIR CORE_MINOR PIP_ARGS...: (re)install only when what it asks for changed.
make_venv() {
  local dir=$1 core=$2 hash
  shift 2
  if [ ! -x "$dir/bin/python" ]; then
    say "creating $dir"
    /usr/bin/python3 -m venv --system-site-packages "$dir"
  fi
  hash=$( { printf '%s\n' "$@" "ansible-core==$core.*"; cat requirements.txt requirements-dev.txt; } \
          | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$dir/.requirements.sha256" 2>/dev/null || true)" != "$hash" ]; then
    say "installing Python requirements (ansible-core $core.*) into $dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" "ansible-core==$core.*" \
      || die "pip install into $dir failed: check access to PyPI, then re-run."
    echo "$hash" > "$dir/.requirements.sha256"
  fi
}
make_venv "$VENV" "$CORE_HIGHEST" -r requirements.txt -r requirements-dev.txt
if [ "${1:-}" = "--core-lowest" ]; then
  # The test tools of requirements-dev.txt (not the linters: they run with .venv's ansible-core).
  mapfile -t test_tools < <(grep -E '^(pytest|ansible-runner)([<>=!~ ]|$)' requirements-dev.txt)
  make_venv "$ROOT/.cache/venv-core-lowest" "$CORE_LOWEST" -r requirements.txt "${test_tools[@]}"
fi

# 4. The collection, importable as ansible_collections.virtops.compute (ansible.cfg points here).
mkdir -p .cache/collections/ansible_collections/virtops
ln -sfn ../../../.. .cache/collections/ansible_collections/virtops/compute

# 5. libvirt running (systemd or not).
scripts/ensure-libvirt.sh
say "ready"
