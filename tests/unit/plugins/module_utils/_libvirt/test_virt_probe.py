# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import shutil

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.virt_probe import (
    detect_virt_type, probe_accel)

needs_qemu = pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="no QEMU")


@needs_qemu
def test_tcg_runs_the_probe_firmware():
    assert probe_accel("tcg") == ""


@needs_qemu
def test_unknown_accelerator_is_reported_not_raised():
    reason = probe_accel("no-such-accel")
    assert "no-such-accel" in reason and "exited" in reason


def test_missing_kvm_device_means_qemu(tmp_path):
    probe = detect_virt_type(kvm_device=str(tmp_path / "kvm"), recorded_path=None)
    assert probe.virt_type == "qemu" and not probe.kvm_usable
    assert "does not exist" in probe.reason


def test_forced_virt_type_skips_the_probe():
    probe = detect_virt_type("kvm", kvm_device="/nonexistent")
    assert probe.virt_type == "kvm" and probe.forced


def test_forced_virt_type_is_validated():
    with pytest.raises(VirtopsError, match="virt_type must be one of kvm, qemu"):
        detect_virt_type("xen")


@needs_qemu
def test_probe_result_is_consistent_with_the_kvm_device():
    probe = detect_virt_type()
    assert probe.virt_type in ("kvm", "qemu")
    assert probe.kvm_usable == (probe.virt_type == "kvm")
    assert probe.reason
