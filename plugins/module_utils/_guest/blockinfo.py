# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which bus and device name each instance disk gets: Nova's ``blockinfo.get_disk_info``.

The result has Nova's dict shape (``DiskInfo.to_dict()``), which ``vm_image`` returns and
``vm_xml`` consumes::

    {"disk_bus": "virtio", "cdrom_bus": "ide",
     "mapping": {"root":        {"bus": "virtio", "dev": "vda", "type": "disk", "boot_index": "1"},
                 "disk":        {"bus": "virtio", "dev": "vda", "type": "disk", "boot_index": "1"},
                 "disk.local":  {"bus": "virtio", "dev": "vdb", "type": "disk"},
                 "disk.swap":   {"bus": "virtio", "dev": "vdc", "type": "disk"},
                 "disk.config": {"bus": "ide", "dev": "hda", "type": "cdrom"}}}

Rules (Nova's): disk bus from image property ``hw_disk_bus`` else virtio; CD-ROM bus from
``hw_cdrom_bus`` else ide (sata on q35 machines, which have no IDE controller); names are the
bus prefix plus the first free letter; the config drive is a cdrom for iso9660 and a disk for
vfat; an ``iso`` image boots from a cdrom root. Volumes (block device mappings) are not
supported, so every mapping entry is one of the files named above.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    CONFIG_DRIVE, DISK_NAMES, EPHEMERAL_DISK, ROOT_DISK, SWAP_DISK)

VIRT_TYPES = ("kvm", "qemu")
# Nova's SUPPORTED_DEVICE_BUSES for kvm/qemu, without the floppy controller.
DISK_BUSES = {"kvm": ("virtio", "ide", "scsi", "usb", "sata"),
              "qemu": ("virtio", "ide", "scsi", "usb", "sata")}
DEV_PREFIX = {"virtio": "vd", "ide": "hd", "scsi": "sd", "sata": "sd", "usb": "sd"}
# Two IDE channels with master and slave each: four devices, the cdrom included. The other
# buses are limited by the one-letter names Nova hands out (Nova's default of 26).
MAX_DEVICES = {"ide": 4}
DEFAULT_MAX_DEVICES = 26
DEVICE_TYPES = ("disk", "cdrom")
CONFIG_DRIVE_FORMATS = ("iso9660", "vfat")
BOOT_DEV_FOR_TYPE = {"disk": "hd", "cdrom": "cdrom"}
# The instance files in the order Nova maps them; 'root' is an alias of the boot disk.


def is_q35(machine_type: Optional[str]) -> bool:
    return bool(machine_type) and "q35" in machine_type


def max_devices(bus: str) -> int:
    return MAX_DEVICES.get(bus, DEFAULT_MAX_DEVICES)


def default_disk_bus(virt_type: str) -> str:
    validate_virt_type(virt_type)
    return "virtio"


def default_cdrom_bus(virt_type: str, machine_type: Optional[str]) -> str:
    validate_virt_type(virt_type)
    return "sata" if is_q35(machine_type) else "ide"


def validate_virt_type(virt_type: str) -> str:
    if virt_type not in VIRT_TYPES:
        raise VirtopsError("unsupported virt type %r (expected one of %s)"
                           % (virt_type, ", ".join(VIRT_TYPES)))
    return virt_type


def validate_bus(bus: str, virt_type: str, device_type: str = "disk",
                 machine_type: Optional[str] = None,
                 host_buses: Optional[Sequence[str]] = None, what: str = "disk bus") -> str:
    """Refuse a bus this virt type, machine type or host cannot give the device."""
    validate_virt_type(virt_type)
    if device_type not in DEVICE_TYPES:
        raise VirtopsError("unsupported device type %r (expected one of %s)"
                           % (device_type, ", ".join(DEVICE_TYPES)))
    if bus not in DISK_BUSES[virt_type]:
        raise VirtopsError("%s %r is not supported for virt type %s (supported: %s)"
                           % (what, bus, virt_type, ", ".join(DISK_BUSES[virt_type])))
    if bus == "ide" and is_q35(machine_type):
        raise VirtopsError("%s 'ide' does not exist on machine type %s (q35 has no IDE "
                           "controller); use sata" % (what, machine_type))
    if host_buses is not None and bus not in host_buses:
        raise VirtopsError("%s %r is not offered by this host's QEMU for machine type %s "
                           "(it offers: %s)" % (what, bus, machine_type, ", ".join(host_buses)))
    if device_type == "cdrom" and bus == "virtio":
        raise VirtopsError("%s 'virtio' cannot carry a cdrom (virtio-blk has no removable "
                           "media); use ide, sata, scsi or usb" % what)
    return bus


def _dev_letter(index: int) -> str:
    return string.ascii_lowercase[index]


def find_free_dev(bus: str, used: Iterable[str], what: str) -> str:
    used = set(used)
    prefix = DEV_PREFIX[bus]
    for index in range(max_devices(bus)):
        dev = prefix + _dev_letter(index)
        if dev not in used:
            return dev
    count = sum(1 for dev in used if dev.startswith(prefix))
    extra = ", the cdrom included" if bus == "ide" else ""
    raise VirtopsError("too many devices for bus %s: %s would be device %d (at most %d%s)"
                       % (bus, what, count + 1, max_devices(bus), extra))


@dataclass(frozen=True)
class DiskMapping:
    bus: str
    dev: str
    type: str = "disk"
    boot_index: Optional[str] = None

    def to_dict(self) -> dict:
        data = {"bus": self.bus, "dev": self.dev, "type": self.type}
        if self.boot_index is not None:
            data["boot_index"] = self.boot_index
        return data

    @classmethod
    def from_dict(cls, data: dict, name: str = "?") -> "DiskMapping":
        if not isinstance(data, dict):
            raise VirtopsError("disk_info mapping %r must be a dict, got %r" % (name, data))
        try:
            boot_index = data.get("boot_index")
            return cls(bus=str(data["bus"]), dev=str(data["dev"]),
                       type=str(data.get("type", "disk")),
                       boot_index=None if boot_index is None else str(boot_index))
        except KeyError as exc:
            raise VirtopsError("disk_info mapping %r is missing key %s" % (name, exc))


@dataclass(frozen=True)
class DiskInfo:
    disk_bus: str
    cdrom_bus: str
    mapping: Dict[str, DiskMapping]

    def to_dict(self) -> dict:
        return {"disk_bus": self.disk_bus, "cdrom_bus": self.cdrom_bus,
                "mapping": {name: m.to_dict() for name, m in self._ordered_items(True)}}

    def _ordered_items(self, with_root: bool):
        names = (["root"] if with_root and "root" in self.mapping else []) + \
            [n for n in DISK_NAMES if n in self.mapping]
        return [(name, self.mapping[name]) for name in names]

    def disks(self) -> List[tuple]:
        """(file name, mapping) of every instance file, boot disk first, 'root' left out."""
        return self._ordered_items(False)

    def boot_devs(self) -> List[str]:
        """``<boot dev>`` order: devices with a boot index, by index (Nova's get_boot_order)."""
        booted = sorted((int(m.boot_index), BOOT_DEV_FOR_TYPE[m.type])
                        for _name, m in self.disks() if m.boot_index is not None)
        order = []
        for _index, dev in booted:
            if dev not in order:
                order.append(dev)
        return order

    @property
    def root(self) -> DiskMapping:
        return self.mapping.get("root") or self.mapping[ROOT_DISK]

    @classmethod
    def from_dict(cls, data, virt_type: str, machine_type: Optional[str] = None,
                  host_buses: Optional[Sequence[str]] = None) -> "DiskInfo":
        """Read Nova's dict shape and check it as strictly as get_disk_info builds it."""
        if not isinstance(data, dict) or not isinstance(data.get("mapping"), dict):
            raise VirtopsError("disk_info must be a dict with 'disk_bus', 'cdrom_bus' and "
                               "'mapping', got %r" % (data,))
        mapping = {name: DiskMapping.from_dict(value, name)
                   for name, value in data["mapping"].items()}
        info = cls(disk_bus=str(data.get("disk_bus") or default_disk_bus(virt_type)),
                   cdrom_bus=str(data.get("cdrom_bus")
                                 or default_cdrom_bus(virt_type, machine_type)),
                   mapping=mapping)
        info.validate(virt_type, machine_type, host_buses)
        return info

    def validate(self, virt_type: str, machine_type: Optional[str] = None,
                 host_buses: Optional[Sequence[str]] = None) -> None:
        unknown = sorted(set(self.mapping) - set(DISK_NAMES) - {"root"})
        if unknown:
            raise VirtopsError("disk_info mapping has entries virtops does not manage: %s "
                               "(supported: root, %s)" % (", ".join(unknown), ", ".join(DISK_NAMES)))
        if ROOT_DISK not in self.mapping:
            raise VirtopsError("disk_info mapping has no 'disk' entry (booting from a volume "
                               "is not supported)")
        if "root" in self.mapping and self.mapping["root"] != self.mapping[ROOT_DISK]:
            raise VirtopsError("disk_info 'root' must describe the same device as 'disk'")
        seen: Dict[str, str] = {}
        per_bus: Dict[str, int] = {}
        for name, m in self.disks():
            validate_bus(m.bus, virt_type, m.type, machine_type, host_buses,
                         what="bus of %s" % name)
            prefix = DEV_PREFIX[m.bus]
            letters = string.ascii_lowercase[:max_devices(m.bus)]
            if len(m.dev) != len(prefix) + 1 or not m.dev.startswith(prefix) \
                    or m.dev[-1] not in letters:
                raise VirtopsError("disk_info %s: device name %r does not fit bus %s (expected "
                                   "%s followed by one of %s..%s)"
                                   % (name, m.dev, m.bus, prefix, letters[0], letters[-1]))
            if m.dev in seen:
                raise VirtopsError("disk_info %s and %s both use device %s"
                                   % (seen[m.dev], name, m.dev))
            seen[m.dev] = name
            per_bus[m.bus] = per_bus.get(m.bus, 0) + 1
            if m.boot_index is not None and not m.boot_index.isdigit():
                raise VirtopsError("disk_info %s: boot_index must be a number, got %r"
                                   % (name, m.boot_index))
        for bus, count in per_bus.items():
            if count > max_devices(bus):
                raise VirtopsError("too many devices for bus %s: %d (at most %d)"
                                   % (bus, count, max_devices(bus)))
        config = self.mapping.get(CONFIG_DRIVE)
        if config is not None and config.type == "cdrom" and config.bus != self.cdrom_bus:
            raise VirtopsError("disk_info disk.config is a cdrom on bus %s but cdrom_bus is %s"
                               % (config.bus, self.cdrom_bus))


def get_disk_info(virt_type: str, *, disk_bus: Optional[str] = None,
                  cdrom_bus: Optional[str] = None, machine_type: Optional[str] = None,
                  ephemeral_gb: int = 0, swap_mb: int = 0,
                  config_drive_format: Optional[str] = None, image_disk_format: Optional[str] = None,
                  host_buses: Optional[Sequence[str]] = None) -> DiskInfo:
    """Map the instance's files to buses and device names.

    ``disk_bus``/``cdrom_bus`` are the image properties ``hw_disk_bus``/``hw_cdrom_bus``;
    ``config_drive_format`` is None when the instance has no config drive; ``host_buses`` is the
    bus list of libvirt's domain capabilities, when known.
    """
    disk_bus = disk_bus or default_disk_bus(virt_type)
    cdrom_bus = cdrom_bus or default_cdrom_bus(virt_type, machine_type)
    validate_bus(disk_bus, virt_type, "disk", machine_type, host_buses, what="disk bus")
    validate_bus(cdrom_bus, virt_type, "cdrom", machine_type, host_buses, what="cdrom bus")
    if config_drive_format is not None and config_drive_format not in CONFIG_DRIVE_FORMATS:
        raise VirtopsError("unsupported config drive format %r (expected one of %s)"
                           % (config_drive_format, ", ".join(CONFIG_DRIVE_FORMATS)))
    if ephemeral_gb < 0 or swap_mb < 0:
        raise VirtopsError("ephemeral_gb and swap_mb must not be negative")

    mapping: Dict[str, DiskMapping] = {}
    used: List[str] = []

    def add(name: str, bus: str, device_type: str, boot_index: Optional[str] = None):
        dev = find_free_dev(bus, used, name)
        used.append(dev)
        mapping[name] = DiskMapping(bus=bus, dev=dev, type=device_type, boot_index=boot_index)

    if image_disk_format == "iso":
        add(ROOT_DISK, cdrom_bus, "cdrom", "1")
    else:
        add(ROOT_DISK, disk_bus, "disk", "1")
    mapping["root"] = mapping[ROOT_DISK]
    if ephemeral_gb:
        add(EPHEMERAL_DISK, disk_bus, "disk")
    if swap_mb:
        add(SWAP_DISK, disk_bus, "disk")
    if config_drive_format == "iso9660":
        add(CONFIG_DRIVE, cdrom_bus, "cdrom")
    elif config_drive_format == "vfat":
        add(CONFIG_DRIVE, disk_bus, "disk")
    info = DiskInfo(disk_bus=disk_bus, cdrom_bus=cdrom_bus, mapping=mapping)
    info.validate(virt_type, machine_type, host_buses)
    return info
