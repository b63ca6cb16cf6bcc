# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk mapping: Nova's get_disk_info rules, its dict shape, and what it refuses."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._guest.blockinfo import (
    DiskInfo, find_free_dev, get_disk_info)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

PC = "pc-i440fx-7.2"
Q35 = "pc-q35-7.2"
HOST_BUSES_Q35 = ("fdc", "scsi", "virtio", "usb", "sata")   # domain capabilities, q35


def devs(info: DiskInfo) -> dict:
    return {name: (m.bus, m.dev, m.type) for name, m in info.mapping.items()}


def test_default_mapping_is_novas():
    info = get_disk_info("qemu", machine_type=PC, ephemeral_gb=1, swap_mb=512,
                         config_drive_format="iso9660")
    assert info.to_dict() == {
        "disk_bus": "virtio", "cdrom_bus": "ide",
        "mapping": {
            "root": {"bus": "virtio", "dev": "vda", "type": "disk", "boot_index": "1"},
            "disk": {"bus": "virtio", "dev": "vda", "type": "disk", "boot_index": "1"},
            "disk.local": {"bus": "virtio", "dev": "vdb", "type": "disk"},
            "disk.swap": {"bus": "virtio", "dev": "vdc", "type": "disk"},
            "disk.config": {"bus": "ide", "dev": "hda", "type": "cdrom"}}}
    assert info.boot_devs() == ["hd"]


def test_only_the_disks_the_flavor_asks_for():
    info = get_disk_info("kvm", machine_type=PC)
    assert sorted(info.mapping) == ["disk", "root"]
    info = get_disk_info("kvm", machine_type=PC, swap_mb=1)
    assert devs(info)["disk.swap"] == ("virtio", "vdb", "disk")


def test_vfat_config_drive_is_a_disk_on_the_disk_bus():
    info = get_disk_info("qemu", machine_type=PC, config_drive_format="vfat")
    assert devs(info)["disk.config"] == ("virtio", "vdb", "disk")


def test_q35_puts_the_cdrom_on_sata_and_shares_the_sd_names():
    info = get_disk_info("qemu", machine_type=Q35, disk_bus="sata", config_drive_format="iso9660",
                         host_buses=HOST_BUSES_Q35)
    assert info.cdrom_bus == "sata"
    assert devs(info)["disk"] == ("sata", "sda", "disk")
    assert devs(info)["disk.config"] == ("sata", "sdb", "cdrom")


def test_scsi_disk_and_ide_cdrom():
    info = get_disk_info("qemu", machine_type=PC, disk_bus="scsi", ephemeral_gb=2,
                         config_drive_format="iso9660")
    assert devs(info)["disk"] == ("scsi", "sda", "disk")
    assert devs(info)["disk.local"] == ("scsi", "sdb", "disk")
    assert devs(info)["disk.config"] == ("ide", "hda", "cdrom")


def test_all_on_ide_fills_the_four_slots():
    info = get_disk_info("qemu", machine_type=PC, disk_bus="ide", ephemeral_gb=1, swap_mb=1,
                         config_drive_format="iso9660")
    assert [m.dev for _name, m in info.disks()] == ["hda", "hdb", "hdc", "hdd"]


def test_iso_image_boots_from_a_cdrom_root():
    info = get_disk_info("qemu", machine_type=PC, image_disk_format="iso", ephemeral_gb=1)
    assert devs(info)["disk"] == ("ide", "hda", "cdrom")
    assert devs(info)["disk.local"] == ("virtio", "vda", "disk")
    assert info.boot_devs() == ["cdrom"]


def test_a_fifth_ide_device_is_refused():
    with pytest.raises(VirtopsError, match=r"too many devices for bus ide.*at most 4, the cdrom "
                                           r"included"):
        find_free_dev("ide", ["hda", "hdb", "hdc", "hdd"], "volume")
    assert find_free_dev("ide", ["hda", "hdc"], "volume") == "hdb"


def test_virtio_runs_out_after_26():
    used = ["vd" + chr(ord("a") + i) for i in range(26)]
    with pytest.raises(VirtopsError, match="too many devices for bus virtio"):
        find_free_dev("virtio", used, "volume")


@pytest.mark.parametrize("kwargs, message", [
    (dict(disk_bus="xen"), "disk bus 'xen' is not supported for virt type qemu"),
    (dict(disk_bus="lxc"), "not supported"),
    (dict(cdrom_bus="virtio", config_drive_format="iso9660"), "cannot carry a cdrom"),
    (dict(disk_bus="ide", machine_type=Q35), "'ide' does not exist on machine type pc-q35"),
    (dict(cdrom_bus="ide", machine_type=Q35), "q35 has no IDE"),
    (dict(disk_bus="usb", machine_type=Q35, host_buses=("virtio", "sata")),
     "not offered by this host's QEMU"),
    (dict(config_drive_format="ext4"), "unsupported config drive format"),
    (dict(swap_mb=-1), "must not be negative"),
])
def test_refusals(kwargs, message):
    kwargs.setdefault("machine_type", PC)
    with pytest.raises(VirtopsError, match=message):
        get_disk_info("qemu", **kwargs)


def test_unknown_virt_type_is_refused():
    with pytest.raises(VirtopsError, match="unsupported virt type 'xen'"):
        get_disk_info("xen")


def test_dict_round_trip_keeps_novas_shape():
    info = get_disk_info("kvm", machine_type=PC, ephemeral_gb=1, config_drive_format="vfat")
    data = info.to_dict()
    assert DiskInfo.from_dict(data, "kvm", PC) == info
    assert list(data["mapping"]) == ["root", "disk", "disk.local", "disk.config"]


def test_from_dict_accepts_an_integer_boot_index_and_no_root():
    data = {"disk_bus": "virtio", "cdrom_bus": "ide",
            "mapping": {"disk": {"bus": "virtio", "dev": "vda", "type": "disk", "boot_index": 1}}}
    info = DiskInfo.from_dict(data, "qemu", PC)
    assert info.root.boot_index == "1"
    assert info.boot_devs() == ["hd"]


def mapping(**entries):
    base = {"disk": {"bus": "virtio", "dev": "vda", "type": "disk", "boot_index": "1"}}
    base.update(entries)
    return {"disk_bus": "virtio", "cdrom_bus": "ide", "mapping": base}


@pytest.mark.parametrize("data, message", [
    (mapping(**{"disk.eph0": {"bus": "virtio", "dev": "vdb"}}), "virtops does not manage: disk.eph0"),
    ({"disk_bus": "virtio", "mapping": {"disk.local": {"bus": "virtio", "dev": "vdb"}}},
     "no 'disk' entry"),
    (mapping(root={"bus": "virtio", "dev": "vdb", "type": "disk"}), "same device as 'disk'"),
    (mapping(**{"disk.local": {"bus": "ide", "dev": "vdb", "type": "disk"}}),
     "device name 'vdb' does not fit bus ide"),
    (mapping(**{"disk.local": {"bus": "ide", "dev": "hde", "type": "disk"}}),
     "does not fit bus ide"),
    (mapping(**{"disk.local": {"bus": "virtio", "dev": "vda", "type": "disk"}}),
     "both use device vda"),
    (mapping(**{"disk.config": {"bus": "virtio", "dev": "vdb", "type": "cdrom"}}),
     "cannot carry a cdrom"),
    (mapping(**{"disk.config": {"bus": "sata", "dev": "sda", "type": "cdrom"}}),
     "cdrom on bus sata but cdrom_bus is ide"),
    (mapping(**{"disk.local": {"bus": "virtio", "dev": "vdb", "type": "floppy"}}),
     "unsupported device type 'floppy'"),
    (mapping(**{"disk.local": {"bus": "virtio"}}), "missing key 'dev'"),
    ({"mapping": "vda"}, "must be a dict"),
    (mapping(**{"disk.local": {"bus": "virtio", "dev": "vdb", "boot_index": "x"}}),
     "boot_index must be a number"),
])
def test_from_dict_refuses_what_get_disk_info_would_never_build(data, message):
    with pytest.raises(VirtopsError, match=message):
        DiskInfo.from_dict(data, "qemu", PC)


def test_from_dict_checks_the_host_buses():
    data = get_disk_info("qemu", machine_type=PC, config_drive_format="iso9660").to_dict()
    with pytest.raises(VirtopsError, match="'ide' does not exist on machine type pc-q35"):
        DiskInfo.from_dict(data, "qemu", Q35, HOST_BUSES_Q35)
