# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host and domain capabilities parsing, the O_DIRECT probe, and vm_xml's file helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import qemu_access
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.host_caps import (
    DomainCapabilities, HostCapabilities, supports_direct_io)
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import (
    choose_disk_cache, nearest_existing_dir, read_disk_info_file, resolve_virt_type,
    write_atomic)

CAPS_DIR = Path(__file__).resolve().parents[5] / "tests" / "fixtures" / "host_caps"


def load(name):
    return (CAPS_DIR / name).read_text()


def test_host_capabilities_machine_types_and_aliases():
    caps = HostCapabilities.from_xml(load("capabilities_x86_64.xml"))
    assert caps.arch == "x86_64"
    guest = caps.guest_arch("x86_64", "qemu")
    assert guest.emulator == "/usr/bin/qemu-system-x86_64"
    assert set(guest.domain_types) == {"qemu", "kvm"}
    assert caps.resolve_machine_type("x86_64", "qemu", "pc") == "pc-i440fx-7.2"
    assert caps.resolve_machine_type("x86_64", "kvm", "q35") == "pc-q35-7.2"
    assert caps.resolve_machine_type("x86_64", "qemu", "pc-i440fx-6.2") == "pc-i440fx-6.2"
    with pytest.raises(VirtopsError, match="machine type 'virt' is not offered"):
        caps.resolve_machine_type("x86_64", "qemu", "virt")
    with pytest.raises(VirtopsError, match="cannot run hvm guests of architecture aarch64"):
        caps.guest_arch("aarch64", "qemu")


def test_domain_capabilities_of_pc_and_q35():
    pc = DomainCapabilities.from_xml(load("domcaps_qemu_pc.xml"))
    q35 = DomainCapabilities.from_xml(load("domcaps_qemu_q35.xml"))
    assert (pc.domain, pc.arch, pc.machine) == ("qemu", "x86_64", "pc-i440fx-7.2")
    assert "ide" in pc.disk_buses and "ide" not in q35.disk_buses
    assert "virtio" in pc.video_models and "virtio" in pc.rng_models
    assert "host-passthrough" not in pc.cpu_modes and "host-model" in pc.cpu_modes
    assert pc.hyperv_features == ("spinlocks", "vendor_id")
    assert pc.max_vcpus == 255


def test_uefi_loader_only_when_firmware_is_listed():
    assert DomainCapabilities.from_xml(load("domcaps_qemu_pc.xml")).uefi_loader() is None
    ovmf = DomainCapabilities.from_xml(load("domcaps_qemu_pc_ovmf.xml"))
    assert ovmf.firmware == ("efi",)
    # the Secure Boot and Microsoft-key variants are skipped
    assert ovmf.uefi_loader() == "/usr/share/OVMF/OVMF_CODE_4M.fd"


def test_garbage_capabilities_are_refused():
    with pytest.raises(VirtopsError, match="cannot parse libvirt capabilities XML"):
        HostCapabilities.from_xml("<capabilities>")


def test_direct_io_probe_leaves_nothing_behind(tmp_path):
    assert supports_direct_io(str(tmp_path)) in (True, False)
    assert os.listdir(tmp_path) == []
    mode = choose_disk_cache("auto", str(tmp_path / "missing" / "uuid"))
    assert mode == ("none" if supports_direct_io(str(tmp_path)) else "writeback")
    assert choose_disk_cache("unsafe", "/nonexistent") == "unsafe"
    assert nearest_existing_dir(str(tmp_path / "a" / "b")) == str(tmp_path)


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "libvirt.xml"
    target.write_text("old")
    write_atomic(str(target), "<domain/>\n")
    assert target.read_text() == "<domain/>\n"
    assert target.stat().st_mode & 0o777 == qemu_access().file_mode   # never world-readable
    assert sorted(os.listdir(tmp_path)) == ["libvirt.xml"]


def test_disk_info_file(tmp_path):
    assert read_disk_info_file(str(tmp_path)) is None
    (tmp_path / "disk.info").write_text('{"%s/disk": "qcow2"}' % tmp_path)
    assert read_disk_info_file(str(tmp_path)) == {"%s/disk" % tmp_path: "qcow2"}
    (tmp_path / "disk.info").write_text("[1]")
    with pytest.raises(VirtopsError, match="JSON object"):
        read_disk_info_file(str(tmp_path))


def test_auto_virt_type_takes_the_host_preparation_record(tmp_path):
    caps = HostCapabilities.from_xml(load("capabilities_x86_64.xml"))
    (tmp_path / "host.json").write_text('{"virt_type": "kvm", "reason": "probe ran"}')
    assert resolve_virt_type("auto", caps, "x86_64", str(tmp_path)) == ("kvm", "probe ran")
    (tmp_path / "host.json").write_text('{"virt_type": "qemu", "reason": "no KVM"}')
    assert resolve_virt_type("auto", caps, "x86_64", str(tmp_path)) == ("qemu", "no KVM")
    assert resolve_virt_type("kvm", caps, "x86_64", str(tmp_path)) == ("kvm", "set by virt_type")
    with pytest.raises(VirtopsError, match="cannot run hvm guests of architecture aarch64"):
        resolve_virt_type("qemu", caps, "aarch64", str(tmp_path))
