# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide whether KVM really works on this host, by running code under it.

libvirt's capabilities advertise kvm as soon as /dev/kvm is accessible, which says nothing about
whether a guest runs (nested or broken virtualisation makes guests hang). The probe boots a 64 KiB
firmware whose reset vector writes to QEMU's isa-debug-exit port, once under the accelerator:
QEMU exits with a known status only when guest code actually executed. QEMU warning that the
host cannot supply features of its default CPU model also counts as unusable: real guests then
hang or crash early.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Optional

from ansible_collections.virtops.compute.plugins.module_utils._errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._process import find_binary, run

# mov al, 0x31 ; out 0xf4, al ; hlt  -> isa-debug-exit exits QEMU with (0x31 << 1) | 1 = 99
_RESET_CODE = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4])
_EXPECTED_STATUS = 99
_FIRMWARE_SIZE = 65536
VIRT_TYPES = ("kvm", "qemu")


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


def detect_virt_type(forced: Optional[str] = None, kvm_device: str = "/dev/kvm") -> VirtProbe:
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
