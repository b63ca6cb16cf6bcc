# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide whether KVM really works on this host, by running code under it.

libvirt's capabilities advertise kvm as soon as /dev/kvm is accessible, which says nothing about
whether a guest runs (nested or broken virtualisation makes guests hang). The probe boots a 64 KiB
firmware whose reset vector writes to QEMU's isa-debug-exit port, once under the accelerator:
QEMU exits with a known status only when guest code actually executed. QEMU warning that the
host cannot supply features of its default CPU model also counts as unusable: real guests then
hang or crash early.

Host preparation runs the probe once and records the result in ``<state dir>/host.json``
(``HOST_RECORD_PATH`` by default); ``detect_virt_type`` reads that record before probing again,
so every module agrees with what host preparation decided: an explicit virt type wins, then the
record, then a live probe.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DEFAULT_STATE_DIR, host_record_path)

# mov al, 0x31 ; out 0xf4, al ; hlt  -> isa-debug-exit exits QEMU with (0x31 << 1) | 1 = 99
_RESET_CODE = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4])
_EXPECTED_STATUS = 99
_FIRMWARE_SIZE = 65536
VIRT_TYPES = ("kvm", "qemu")
HOST_RECORD_PATH = host_record_path()


@dataclass(frozen=True)
class VirtProbe:
    virt_type: str          # what guests should use: kvm or qemu
    kvm_usable: bool
    reason: str             # why kvm is (not) usable, for the operator
    forced: bool = False


def _firmware() -> bytes:
    blob = bytearray(b"\xf4" * _FIRMWARE_SIZE)
    blob[-16:-16 + len(_RESET_CODE)] = _RESET_CODE
    return bytes(blob)


def probe_accel(accel: str, qemu_binary: Optional[str] = None, timeout: float = 10.0) -> str:
    """Return '' when ``accel`` runs guest code cleanly, else the reason it does not."""
    qemu = qemu_binary or find_binary("qemu-system-x86_64")
    with tempfile.NamedTemporaryFile(prefix="virtops-probe-", suffix=".bin") as fw:
        fw.write(_firmware())
        fw.flush()
        try:
            result = run([qemu, "-accel", accel, "-machine", "pc", "-m", "16", "-nodefaults",
                          "-nographic", "-display", "none", "-no-reboot", "-bios", fw.name,
                          "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
                         check=False, timeout=timeout)
        except VirtopsError as exc:
            return "QEMU with %s did not finish the probe (%s)" % (accel, exc.msg)
    stderr = result.stderr.strip()
    if result.rc != _EXPECTED_STATUS:
        return "QEMU with %s exited %d instead of running the probe: %s" % (
            accel, result.rc, stderr[-300:])
    if "host doesn't support requested feature" in stderr:
        return ("QEMU with %s cannot supply its default CPU model (%s); guests would hang"
                % (accel, stderr.splitlines()[0][-200:]))
    return ""


def probe_virt_type(forced: Optional[str] = None, kvm_device: str = "/dev/kvm") -> VirtProbe:
    """The live decision: ``forced`` if given, else run the probe (never reads the record)."""
    if forced:
        if forced not in VIRT_TYPES:
            raise VirtopsError("virt_type must be one of %s, not %r" % (", ".join(VIRT_TYPES), forced))
        return VirtProbe(forced, forced == "kvm", "forced by virtops_virt_type", forced=True)
    if not os.path.exists(kvm_device):
        return VirtProbe("qemu", False, "%s does not exist (no hardware virtualisation)" % kvm_device)
    if not os.access(kvm_device, os.R_OK | os.W_OK):
        return VirtProbe("qemu", False, "%s is not accessible" % kvm_device)
    reason = probe_accel("kvm")
    if reason:
        return VirtProbe("qemu", False, reason)
    return VirtProbe("kvm", True, "a probe guest ran under KVM")


def recorded_virt_type(path: str = HOST_RECORD_PATH) -> Optional[VirtProbe]:
    """The result host preparation recorded, or None when there is no record."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VirtopsError("cannot read the recorded virt type %s (%s): remove it or re-run "
                           "playbooks/prepare_hosts.yml" % (path, exc))
    if not isinstance(data, dict) or data.get("virt_type") not in VIRT_TYPES:
        raise VirtopsError("%s does not record a virt type (kvm or qemu): remove it or re-run "
                           "playbooks/prepare_hosts.yml" % path)
    return VirtProbe(virt_type=data["virt_type"], kvm_usable=bool(data.get("kvm_usable")),
                     reason=str(data.get("reason") or "recorded by host preparation"),
                     forced=bool(data.get("forced")))


def detect_virt_type(forced: Optional[str] = None, kvm_device: str = "/dev/kvm",
                     recorded_path: Optional[str] = HOST_RECORD_PATH) -> VirtProbe:
    """Explicit ``forced`` > the record host preparation wrote > a live probe."""
    if not forced and recorded_path:
        recorded = recorded_virt_type(recorded_path)
        if recorded is not None:
            return recorded
    return probe_virt_type(forced, kvm_device)


def resolve_virt_type(requested: Optional[str], state_dir: str = DEFAULT_STATE_DIR) -> VirtProbe:
    """What a module's ``virt_type`` option means: ``kvm`` or ``qemu`` as given; ``auto``
    (or nothing) the record host preparation wrote in ``<state_dir>/host.json``, else a live
    probe. The scheduler's host facts, the disks and the domain XML all decide through here,
    so they agree (Nova reads ``[libvirt] virt_type`` once for the whole compute service)."""
    if requested in VIRT_TYPES:
        return VirtProbe(requested, requested == "kvm", "set by virt_type", forced=True)
    if requested not in (None, "", "auto"):
        raise VirtopsError("virt_type must be auto, kvm or qemu, got %r" % (requested,))
    return detect_virt_type(None, recorded_path=host_record_path(state_dir))
