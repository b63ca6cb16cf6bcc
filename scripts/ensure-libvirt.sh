#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Start virtlogd and libvirtd when they are not answering; works with and without systemd.
set -euo pipefail
say() { printf 'libvirt: %s\n' "$*"; }
die() { printf 'libvirt: ERROR: %s\n' "$*" >&2; exit 1; }

if timeout 20 virsh -c qemu:///system version >/dev/null 2>&1; then
  exit 0
fi
if [ -d /run/systemd/system ]; then
  say "starting virtlogd and libvirtd with systemctl"
  systemctl start virtlogd.socket libvirtd.service || die "systemctl start libvirtd failed: see 'journalctl -u libvirtd'."
else
  alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
  if ! alive /run/virtlogd.pid; then say "starting virtlogd"; /usr/sbin/virtlogd -d; fi
  if ! alive /run/libvirtd.pid; then say "starting libvirtd"; /usr/sbin/libvirtd -d; fi
fi
for _ in $(seq 1 120); do
  if timeout 20 virsh -c qemu:///system version >/dev/null 2>&1; then
    say "libvirtd answers on qemu:///system"
    exit 0
  fi
  sleep 0.5
done
die "libvirtd does not answer on qemu:///system after 60 s: see /var/log/libvirt/libvirtd.log."
