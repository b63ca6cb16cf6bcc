# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local disks of one instance, in ``<instances_path>/<uuid>/`` (Nova's image backends).

File names and paths are the instance layout's (``_model.instance_layout``).

- ``disk``: root; ``qcow2`` backend = overlay on the cached base (backing format pinned),
  ``flat`` backend = sparse raw copy of the base (``plan_disk``, the one place that decides).
  Grown to ``root_gb``, never shrunk.
- ``disk.local``: ephemeral, from a formatted base ``ephemeral_<GB>_<fs>`` in ``_base``.
- ``disk.swap``: from a ``swap_<MB>`` base made with mkswap.
- ``disk.info``: JSON path -> format, so a format is never guessed again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_write_json, qemu_directory, qemu_file_options, read_json, restrict_to_qemu)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DISK_INFO, DISK_NAMES, EPHEMERAL_DISK, RECORD, ROOT_DISK, SWAP_DISK, InstanceLayout)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    CachedBase, ImageCache)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSource
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import scan_instances
from ansible_collections.virtops.compute.plugins.module_utils._common.locks import file_lock
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import QemuImg
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB, MIB

# Nova's image backends and the format of the disks each makes.
BACKEND_FORMATS = {"qcow2": "qcow2", "flat": "raw"}
BACKENDS = tuple(BACKEND_FORMATS)
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
    previous_size: Optional[int] = None   # the virtual size before it grew

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "format": self.format,
                "virtual_size": self.virtual_size, "backing_file": self.backing_file,
                "action": self.action}


def backend_for_format(disk_format: str) -> str:
    """The backend that made a disk of this format: qcow2 disks are overlays, the rest flat."""
    return "qcow2" if disk_format == "qcow2" else "flat"


def plan_disk(name: str, backend: str, size: int, base: str, base_format: str) -> DiskPlan:
    """A disk made from a base in ``_base``: the qcow2 or raw decision, made here only.

    Nova's ``Qcow2`` image backend makes a qcow2 overlay whose backing file (and its format,
    pinned so qemu never probes it) is the base; the ``Flat`` backend makes a sparse raw copy.
    """
    if backend not in BACKENDS:
        raise VirtopsError("backend must be one of %s, not %r" % (", ".join(BACKENDS), backend))
    if backend == "qcow2":
        return DiskPlan(name, "qcow2", size, backing=base, backing_format=base_format)
    if base_format != "raw":
        raise VirtopsError("the flat backend needs a raw base; set force_raw (the default)")
    return DiskPlan(name, "raw", size, copy_of=base)


def plan_root(base: CachedBase, flavor: Flavor, backend: str) -> DiskPlan:
    return plan_disk(ROOT_DISK, backend, max(flavor.root_gb * GIB, base.virtual_size), base.path,
                     base.format)


class DiskBuilder:
    def __init__(self, cache: ImageCache, qemu_img: Optional[QemuImg] = None):
        self.cache = cache
        self.qemu_img = qemu_img or cache.qemu_img

    def ephemeral_plan(self, size_gb: int, backend: str, check_mode: bool) -> DiskPlan:
        """``disk.local`` of ``size_gb`` GiB, from the formatted base (made once per host)."""
        return plan_disk(EPHEMERAL_DISK, backend, size_gb * GIB,
                         self.ephemeral_base(size_gb, check_mode), "raw")

    def swap_plan(self, size_mb: int, backend: str, check_mode: bool) -> DiskPlan:
        """``disk.swap`` of ``size_mb`` MiB, from the mkswap'd base (made once per host)."""
        return plan_disk(SWAP_DISK, backend, size_mb * MIB, self.swap_base(size_mb, check_mode),
                         "raw")

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
        return self._grow(path, plan.name, plan.format, plan.size, info, check_mode)

    def rebase(self, path: str, base: str, base_format: str) -> None:
        """Point an overlay at the same base under another path (a migrated disk on a host
        whose cache is elsewhere): a header rewrite only, as Nova's finish_migration does."""
        self.qemu_img.rebase_unsafe(path, base, base_format)

    def grow(self, instance_dir: str, name: str, disk_format: str, size: int,
             check_mode: bool) -> DiskState:
        """Grow an existing disk to ``size`` bytes; never shrink it (Nova's disks only grow)."""
        path = os.path.join(instance_dir, name)
        return self._grow(path, name, disk_format, size, self.qemu_img.info(path, disk_format),
                          check_mode)

    def _grow(self, path: str, name: str, disk_format: str, size: int, info,
              check_mode: bool) -> DiskState:
        if info.virtual_size < size:
            if not check_mode:
                self.qemu_img.resize(path, disk_format, size)
            return DiskState(name, path, disk_format, size, info.backing_filename,
                             "would grow" if check_mode else "grown",
                             previous_size=info.virtual_size)
        return DiskState(name, path, disk_format, info.virtual_size, info.backing_filename,
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
    path = os.path.join(instance_dir, DISK_INFO)
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
        used.append(InstanceLayout(instances_path).base_path(source.base_name))
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
                                  _read_leniently(os.path.join(directory, RECORD))))
        for disk, fmt in _read_leniently(os.path.join(directory, DISK_INFO)).items():
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
    for name in DISK_NAMES + (DISK_INFO,):
        path = os.path.join(instance_dir, name)
        if os.path.lexists(path):
            removed.append(path)
            if not check_mode:
                os.unlink(path)
    return removed
