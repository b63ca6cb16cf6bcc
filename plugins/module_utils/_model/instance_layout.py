# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an instance's files live on its host: one layout, paths only (no I/O).

Nova keeps this in two places, ``nova/virt/libvirt/utils.get_instance_path`` (the directory
``<instances_path>/<uuid>``, ``<uuid>_resize`` while a resize is open) and the image backends'
file names (``disk``, ``disk.local``, ``disk.swap``, ``disk.config``, ``disk.info``); here both
are one model shared by every layer, so a file name is spelled once:

    <instances_path>/                 DEFAULT_INSTANCES_PATH unless configured
        _base/<name>                  the image cache (ImageCache) and formatted bases
        locks/virtops-<name>.lock     host-local locks (cache files, claims, migrations)
        <uuid>/                       one instance (``<uuid>_resize``: a resize source)
            disk disk.local disk.swap disk.config   root, ephemeral, swap, config drive
            disk.info                 path -> format, so a format is never guessed
            kernel ramdisk nvram.fd   direct kernel boot, UEFI variables
            libvirt.xml console.log instance.json   definition, serial log, record
"""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_INSTANCES_PATH = "/var/lib/virtops/instances"
# The host's own state: the record host preparation writes (the probed virt type).
DEFAULT_STATE_DIR = "/etc/virtops"
HOST_RECORD = "host.json"
# The module options that name these places, as the doc fragments virtops.compute.libvirt
# INSTANCES_PATH and STATE_DIR document them.
INSTANCES_PATH_ARGS = dict(instances_path=dict(type="path", default=DEFAULT_INSTANCES_PATH))
STATE_DIR_ARGS = dict(state_dir=dict(type="path", default=DEFAULT_STATE_DIR))
BASE_DIR = "_base"
LOCK_DIR = "locks"
RESIZE_SUFFIX = "_resize"


def host_record_path(state_dir: str = DEFAULT_STATE_DIR) -> str:
    """``<state_dir>/host.json``, the host record."""
    return os.path.join(state_dir, HOST_RECORD)


ROOT_DISK = "disk"
EPHEMERAL_DISK = "disk.local"
SWAP_DISK = "disk.swap"
CONFIG_DRIVE = "disk.config"
DISK_INFO = "disk.info"
DOMAIN_XML = "libvirt.xml"
CONSOLE_LOG = "console.log"
RECORD = "instance.json"
KERNEL = "kernel"
RAMDISK = "ramdisk"
NVRAM = "nvram.fd"
# The disks an instance may have, in Nova's disk_info order; the files a direct kernel boot reads.
DISK_NAMES = (ROOT_DISK, EPHEMERAL_DISK, SWAP_DISK, CONFIG_DRIVE)
BOOT_FILES = (KERNEL, RAMDISK)
# Files a write in progress leaves (``<name>.tmp``, renamed into place when done).
TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class InstanceDir:
    """The files of one instance directory (``<instances_path>/<uuid>[_resize]``)."""
    path: str

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def root_disk(self) -> str:
        return self.file(ROOT_DISK)

    @property
    def disk_info(self) -> str:
        return self.file(DISK_INFO)

    @property
    def config_drive(self) -> str:
        return self.file(CONFIG_DRIVE)

    @property
    def domain_xml(self) -> str:
        return self.file(DOMAIN_XML)

    @property
    def console_log(self) -> str:
        return self.file(CONSOLE_LOG)

    @property
    def record(self) -> str:
        return self.file(RECORD)


@dataclass(frozen=True)
class InstanceLayout:
    """The instances path of one host and everything under it (Nova's get_instance_path)."""
    instances_path: str = DEFAULT_INSTANCES_PATH

    @property
    def base_dir(self) -> str:
        """The image cache: ``<instances_path>/_base``."""
        return os.path.join(self.instances_path, BASE_DIR)

    def base_path(self, name: str) -> str:
        return os.path.join(self.base_dir, name)

    @property
    def lock_dir(self) -> str:
        return os.path.join(self.instances_path, LOCK_DIR)

    def lock_path(self, name: str) -> str:
        """``locks/virtops-<name>.lock``: the lock of a cache file, a claim, a migration."""
        return os.path.join(self.lock_dir, "virtops-%s.lock" % name)

    def instance_dir(self, uuid: str, resize: bool = False) -> str:
        """``<instances_path>/<uuid>``, or ``<uuid>_resize`` for a resize source."""
        return os.path.join(self.instances_path, uuid + (RESIZE_SUFFIX if resize else ""))

    def instance(self, uuid: str, resize: bool = False) -> InstanceDir:
        return InstanceDir(self.instance_dir(uuid, resize))

    def is_base(self, path: str) -> bool:
        """Whether ``path`` names a file directly in this host's ``_base``."""
        return os.path.dirname(path) == self.base_dir
