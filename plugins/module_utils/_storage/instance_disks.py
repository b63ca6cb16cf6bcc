# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local disks of one instance, in ``<instances_path>/<uuid>/`` (Nova's image backends).

- ``disk``: root; ``qcow2`` backend = overlay on the cached base (backing format pinned),
  ``flat`` backend = sparse raw copy of the base. Grown to ``root_gb``, never shrunk.
- ``disk.local``: ephemeral, from a formatted base ``ephemeral_<GB>_<fs>`` in ``_base``.
- ``disk.swap``: from a ``swap_<MB>`` base made with mkswap.
- ``disk.info``: JSON path -> format, so a format is never guessed again.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_write_json, qemu_directory, qemu_file_options, read_json, restrict_to_qemu)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    BASE_DIR, CachedBase, ImageCache, ImageSource)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import scan_instances
from ansible_collections.virtops.compute.plugins.module_utils._common.locks import file_lock
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import QemuImg

GIB = 1024 ** 3
MIB = 1024 ** 2
BACKENDS = ("qcow2", "flat")
EPHEMERAL_FS = "ext4"


@dataclass(frozen=True)
class DiskPlan:
    """What one disk file must be."""
    name: str
    format: str
    size: int                      # bytes, at least
    backing: Optional[str] = None  # absolute base path for overlays
    backing_format: Optional[str] = None
    copy_of: Optional[str] = None  # flat backend: a raw copy of this base


@dataclass
class DiskState:
    name: str
    path: str
    format: str
    virtual_size: int
    backing_file: Optional[str]
    action: str  # created | grown | unchanged | would create | would grow

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "format": self.format,
                "virtual_size": self.virtual_size, "backing_file": self.backing_file,
                "action": self.action}


def plan_root(base: CachedBase, flavor: Flavor, backend: str) -> DiskPlan:
    if backend not in BACKENDS:
        raise VirtopsError("backend must be one of %s, not %r" % (", ".join(BACKENDS), backend))
    size = max(flavor.root_gb * GIB, base.virtual_size)
    if backend == "qcow2":
        return DiskPlan("disk", "qcow2", size, backing=base.path, backing_format=base.format)
    if base.format != "raw":
        raise VirtopsError("the flat backend needs a raw base; set force_raw (the default)")
    return DiskPlan("disk", "raw", size, copy_of=base.path)


class DiskBuilder:
    def __init__(self, cache: ImageCache, qemu_img: Optional[QemuImg] = None):
        self.cache = cache
        self.qemu_img = qemu_img or cache.qemu_img

    # ------------------------------------------------------------ formatted bases

    def ephemeral_base(self, size_gb: int, check_mode: bool) -> str:
        return self._formatted_base("ephemeral_%d_%s" % (size_gb, EPHEMERAL_FS), size_gb * GIB,
                                    [find_binary("mkfs.ext4"), "-q", "-F", "-L", "ephemeral0",
                                     "-E", "nodiscard"], check_mode)

    def swap_base(self, size_mb: int, check_mode: bool) -> str:
        return self._formatted_base("swap_%d" % size_mb, size_mb * MIB,
                                    [find_binary("mkswap"), "-L", "swap0"], check_mode)

    def _formatted_base(self, name: str, size: int, mkfs: List[str], check_mode: bool) -> str:
        path = os.path.join(self.cache.base_dir, name)
        if check_mode or os.path.isfile(path):
            if os.path.isfile(path) and not check_mode:
                os.utime(path)
            return path
        qemu_directory(self.cache.base_dir)
        with file_lock(self.cache.lock_path(name)):
            if os.path.isfile(path):
                return path
            tmp = path + ".tmp"
            try:
                with open(tmp, "wb") as handle:
                    handle.truncate(size)
                run(mkfs + [tmp])
                restrict_to_qemu(tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return path

    # ------------------------------------------------------------ instance disks

    def ensure(self, instance_dir: str, plan: DiskPlan, check_mode: bool) -> DiskState:
        path = os.path.join(instance_dir, plan.name)
        if not os.path.exists(path):
            if check_mode:
                return DiskState(plan.name, path, plan.format, plan.size, plan.backing,
                                 "would create")
            self._create(path, plan)
            info = self.qemu_img.info(path, plan.format)
            return DiskState(plan.name, path, plan.format, info.virtual_size,
                             info.backing_filename, "created")
        info = self.qemu_img.info(path, plan.format)
        if info.format != plan.format:
            raise VirtopsError("%s exists as %s, expected %s: remove the instance (state=absent) "
                               "and build it again" % (path, info.format, plan.format))
        if plan.backing and os.path.realpath(info.backing_filename or "") != os.path.realpath(plan.backing):
            raise VirtopsError("%s is backed by %s, expected %s" % (path, info.backing_filename,
                                                                    plan.backing))
        if info.virtual_size < plan.size:
            if check_mode:
                return DiskState(plan.name, path, plan.format, plan.size, info.backing_filename,
                                 "would grow")
            self.qemu_img.resize(path, plan.format, plan.size)
            return DiskState(plan.name, path, plan.format, plan.size, info.backing_filename,
                             "grown")
        return DiskState(plan.name, path, plan.format, info.virtual_size, info.backing_filename,
                         "unchanged")

    def _create(self, path: str, plan: DiskPlan) -> None:
        tmp = path + ".tmp"
        try:
            if plan.backing:
                self.qemu_img.create_overlay(tmp, plan.backing, plan.backing_format or "raw",
                                             plan.size)
            elif plan.copy_of:
                self.qemu_img.convert(plan.copy_of, "raw", tmp, "raw")
                self.qemu_img.resize(tmp, "raw", plan.size)
            else:
                self.qemu_img.create(tmp, plan.format, plan.size)
            restrict_to_qemu(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_disk_info(instance_dir: str, formats: Dict[str, str], check_mode: bool) -> bool:
    """``disk.info``: absolute path -> format. Returns True when it changed."""
    path = os.path.join(instance_dir, "disk.info")
    document = {os.path.join(instance_dir, name): fmt for name, fmt in sorted(formats.items())}
    if read_json(path) == document:
        return False
    if not check_mode:
        atomic_write_json(path, document, **qemu_file_options())
    return True


def _record_bases(instances_path: str, record: dict) -> List[str]:
    """The bases an instance record names: its ``image_base`` and its image id's base."""
    used = []
    base = record.get("image_base")
    if base:
        used.append(base)
    image = record.get("image") or {}
    if isinstance(image, dict) and (image.get("id") or image.get("url")):
        # Nova: the base named after the SHA-1 of an instance's image id is in use.
        source = ImageSource(url=str(image.get("url") or ""), disk_format="raw",
                             image_id=image.get("id"))
        used.append(os.path.join(instances_path, BASE_DIR, source.base_name))
    return used


def _read_leniently(path: str) -> dict:
    try:
        document = read_json(path, default={}) or {}
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def in_use_bases(instances_path: str, qemu_img: QemuImg) -> List[str]:
    """Every base an instance on this host uses: disk backing files and flat-disk sources.

    The instance directories come from the one scan of the instances path the host facts use.
    Directories that scan leaves out (a record naming another uuid, a broken ``instance.json``,
    no record at all) may still hold disks: whatever they name or back onto counts too, so
    that ageing never removes a base a disk may read from.
    """
    used: List[str] = []
    scan = scan_instances(instances_path)
    directories = [found.directory for found in scan.found]
    directories += [entry.path for entry in scan.ignored
                    if os.path.isdir(entry.path) and not os.path.islink(entry.path)]
    for directory in directories:
        used.extend(_record_bases(instances_path,
                                  _read_leniently(os.path.join(directory, "instance.json"))))
        for disk, fmt in _read_leniently(os.path.join(directory, "disk.info")).items():
            if fmt == "qcow2" and os.path.exists(disk):
                backing = qemu_img.info(disk, "qcow2").backing_filename
                if backing:
                    used.append(backing)
    return used


def remove_instance_disks(instance_dir: str, check_mode: bool) -> List[str]:
    """Delete the instance's disk files (never anything in ``_base``)."""
    removed = []
    if not os.path.isdir(instance_dir):
        return removed
    for name in ("disk", "disk.local", "disk.swap", "disk.config", "disk.info"):
        path = os.path.join(instance_dir, name)
        if os.path.lexists(path):
            removed.append(path)
            if not check_mode:
                os.unlink(path)
    return removed


def elapsed(started: float) -> float:
    return round(time.monotonic() - started, 3)
