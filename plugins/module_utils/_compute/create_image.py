# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage half of Nova's ``spawn`` for one instance on one host.

``ensure_present`` runs, in this order, so that every refusal comes before any work:

1. validate the inputs (uuid, instance fields, flavor, image, backend, config drive inputs)
   and compute Nova's ``disk_info`` mapping (pure);
2. flavor checks that need no image (``min_ram``, ``min_disk``);
3. the base in ``<instances_path>/_base`` (``ImageCache.ensure``: fetched once under a lock,
   inspected before qemu-img sees it, converted to raw; re-inspected when reused). With
   ``root_gb > 0`` the inspection refuses a virtual size above the root disk before any
   conversion;
4. the flavor check against the image's virtual size (FlavorDiskSmallerThanImage);
5. ``disk`` (qcow2 overlay or flat copy, grown to root_gb), ``disk.local``, ``disk.swap``;
6. ``disk.info``; 7. ``disk.config`` when asked or when the image says
   ``img_config_drive=mandatory``.

Check mode decides everything and writes nothing. A failure removes whatever this run
created in the instance directory (never a base: bases are a cache, shared and re-checked).
``ensure_absent`` removes an instance's disk files; ``clean_cache`` is Nova's cache ageing.
"""
from __future__ import annotations

import filecmp
import os
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._guest.blockinfo import (
    DiskInfo, get_disk_info)
from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    build_config_drive, inspect_config_drive)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import DEFAULT_URI
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_copy, qemu_directory, qemu_file_options, restrict_to_qemu)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    CachedBase, ImageCache)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import (
    BOOT_FILE_FORMATS as IMAGE_BOOT_FILE_FORMATS, ImageSource)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_inspect import (
    QEMU_FORMATS, check_flavor_fits)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES, FetchPolicy, check_source_allowed)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_disks import (
    BACKENDS, GIB, DiskBuilder, DiskPlan, DiskState, in_use_bases, plan_disk, plan_root,
    remove_instance_disks, write_disk_info)
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    CONFIG_DRIVE, DEFAULT_INSTANCES_PATH, DEFAULT_STATE_DIR, DISK_INFO, DISK_NAMES, EPHEMERAL_DISK,
    KERNEL, RAMDISK, ROOT_DISK, SWAP_DISK, TMP_SUFFIX, InstanceLayout)
from ansible_collections.virtops.compute.plugins.module_utils._common.result import (
    Outcome, elapsed)
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    InstanceInfo, InstanceMetadata, content_digest)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_uuid
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import QemuImg
from ansible_collections.virtops.compute.plugins.module_utils._storage import rbd as _rbd
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import HostStorage
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.virt_probe import (
    resolve_virt_type)

STATES = ("present", "absent", "cache_cleaned")
# Nova's images_type: the local backends of instance_disks, and rbd (_storage/rbd.py).
IMAGE_BACKENDS = BACKENDS + ("rbd",)
CONFIG_DRIVE_FORMATS = ("iso9660", "vfat")
# Glance's formats for the files a direct kernel boot reads from the instance directory.
# The disk_format a kernel or ramdisk defaults to (Glance's aki/ari), by file name.
BOOT_FILE_FORMATS = {KERNEL: IMAGE_BOOT_FILE_FORMATS["kernel_id"],
                     RAMDISK: IMAGE_BOOT_FILE_FORMATS["ramdisk_id"]}
# Leftovers of an interrupted write (DiskBuilder, build_config_drive): removed with the disks.
TMP_LEFTOVERS = tuple(name + TMP_SUFFIX for name in DISK_NAMES)
TIMING_KEYS = ("lock_wait", "fetch", "inspect", "convert", "checksum_wait", "create", "config_drive",
               "total")


@dataclass(frozen=True)
class VmImageParams:
    """The module's parameters, as plain values."""
    instance: Optional[dict] = None
    image: Optional[dict] = None
    flavor: Optional[dict] = None
    kernel: Optional[dict] = None
    ramdisk: Optional[dict] = None
    state: str = "present"
    backend: str = "qcow2"
    rbd: Optional[dict] = None           # images_type rbd: pool, ceph_conf, user, secret_uuid
    force_raw: bool = True
    config_drive: bool = False
    config_drive_format: str = "iso9660"
    user_data: Optional[str] = None
    admin_pass: Optional[str] = field(default=None, repr=False)
    keypairs: List[dict] = field(default_factory=list)
    injected_files: List[dict] = field(default_factory=list)
    vendor_data: Dict[str, object] = field(default_factory=dict)
    network_info: List[dict] = field(default_factory=list)
    virt_type: str = "auto"
    state_dir: str = DEFAULT_STATE_DIR
    download_timeout: float = 60.0
    download_max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    image_roots: List[str] = field(default_factory=list)
    remove_unused_original_minimum_age_seconds: int = 86400
    instances_path: str = DEFAULT_INSTANCES_PATH
    libvirt_uri: str = DEFAULT_URI


@dataclass
class VmImageResult(Outcome):
    """vm_image's result: the Outcome (changed, timings) and what the module returns."""
    state: str = "present"
    instance_dir: Optional[str] = None
    base: Optional[dict] = None
    disks: List[dict] = field(default_factory=list)
    disk_formats: Dict[str, str] = field(default_factory=dict)
    disk_info: Optional[dict] = None
    disk_info_file: Optional[str] = None
    config_drive: Optional[dict] = None
    boot_files: Dict[str, dict] = field(default_factory=dict)
    virt_type: Optional[str] = None
    removed: List[str] = field(default_factory=list)
    cache: Optional[dict] = None
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    def as_module_result(self) -> dict:
        out = {"changed": self.changed, "state": self.state, "timings": dict(self.timings)}
        if self.state == "present":
            out.update(instance_dir=self.instance_dir, base=self.base, disks=self.disks,
                       disk_formats=self.disk_formats, disk_info=self.disk_info,
                       disk_info_file=self.disk_info_file, config_drive=self.config_drive,
                       config_drive_path=(self.config_drive or {}).get("path"),
                       boot_files=self.boot_files, virt_type=self.virt_type)
        elif self.state == "absent":
            out.update(instance_dir=self.instance_dir, removed=self.removed)
        else:
            out.update(cache=self.cache)
        return out

    def diff(self, header: str) -> dict:
        return {"before": self.before, "after": self.after,
                "before_header": header, "after_header": header}


@dataclass(frozen=True)
class _Size:
    """Anything with a virtual size, for check_flavor_fits before the image is known."""
    virtual_size: int


@dataclass(frozen=True)
class PresentPlan:
    """Everything decided from the inputs alone, before any file is read or written."""
    instance_uuid: str
    instance_dir: str
    flavor: Flavor
    source: ImageSource
    backend: str
    disk_info: DiskInfo
    virt_type: str
    config_drive_format: Optional[str]   # None: no config drive
    metadata: Optional[InstanceMetadata] = field(default=None, repr=False)
    # File name in the instance directory ("kernel", "ramdisk") -> where it comes from.
    boot_files: Dict[str, ImageSource] = field(default_factory=dict)

    @property
    def max_virtual_size(self) -> Optional[int]:
        """root_gb as a byte limit for the inspection (0 = no flavor limit, as in Nova)."""
        return self.flavor.root_gb * GIB if self.flavor.root_gb > 0 else None


# --------------------------------------------------------------------------- decisions

def config_drive_wanted(requested: bool, image_properties: Mapping[str, object]) -> bool:
    """Nova's required_by: asked for by the server, or the image says mandatory."""
    return bool(requested) or \
        str(image_properties.get("img_config_drive") or "").lower() == "mandatory"


def injected_files_map(items: Optional[List[dict]]) -> Dict[str, str]:
    """Nova's injected_files ([(path, contents)]) as {guest path: content}."""
    files: Dict[str, str] = {}
    for index, item in enumerate(items or []):
        if not isinstance(item, Mapping) or "path" not in item:
            raise VirtopsError("injected_files[%d] needs a 'path' and a 'content'" % index)
        path = str(item["path"])
        if path in files:
            raise VirtopsError("injected_files names %s twice" % path)
        files[path] = "" if item.get("content") is None else item["content"]
    return files


def _instance_fields(instance: Mapping, flavor: Flavor, source: ImageSource,
                     disk_info: DiskInfo) -> dict:
    """The module's ``instance`` option in the shape InstanceInfo takes."""
    mapping = disk_info.mapping
    data = {
        "uuid": instance.get("uuid"), "name": instance.get("name"),
        "hostname": instance.get("hostname"), "launch_index": instance.get("launch_index"),
        "availability_zone": instance.get("availability_zone"),
        "meta": instance.get("metadata") or {},
        "flavor_name": flavor.name or None, "image_id": source.id,
        "root_device_name": "/dev/" + disk_info.root.dev,
        "ephemeral_device": ("/dev/" + mapping[EPHEMERAL_DISK].dev)
        if EPHEMERAL_DISK in mapping else None,
        "swap_device": ("/dev/" + mapping[SWAP_DISK].dev) if SWAP_DISK in mapping else None,
    }
    return {key: value for key, value in data.items() if value is not None}


def plan_present(params: VmImageParams, virt_type: Optional[str] = None) -> PresentPlan:
    """Validate everything and decide the disk mapping; reads and writes nothing.

    ``virt_type`` overrides the resolution from ``params`` (tests, callers that know it).
    """
    instance = params.instance or {}
    if not instance.get("uuid"):
        raise VirtopsError("instance.uuid is required")
    instance_uuid = validate_uuid(instance["uuid"])
    if not instance.get("name"):
        raise VirtopsError("instance.name is required with state=present")
    if not params.image:
        raise VirtopsError("image is required with state=present")
    if not params.flavor:
        raise VirtopsError("flavor is required with state=present")
    if params.backend not in IMAGE_BACKENDS:
        raise VirtopsError("backend must be one of %s, not %r"
                           % (", ".join(IMAGE_BACKENDS), params.backend))
    HostStorage.from_values(params.backend, params.rbd)   # rbd settings exactly with rbd
    if params.config_drive_format not in CONFIG_DRIVE_FORMATS:
        raise VirtopsError("config_drive_format must be one of %s, not %r"
                           % (", ".join(CONFIG_DRIVE_FORMATS), params.config_drive_format))
    flavor = Flavor.from_dict(params.flavor)
    source = ImageSource.from_dict(params.image)
    if source.disk_format not in QEMU_FORMATS:
        raise VirtopsError("image %s: disk_format %r is not supported (supported: %s)"
                           % (source.url, source.disk_format, ", ".join(QEMU_FORMATS)))
    if params.backend == "flat" and not params.force_raw and source.disk_format != "raw":
        raise VirtopsError("the flat backend needs a raw base: keep force_raw (the default) or "
                           "use backend=qcow2")
    wants_drive = config_drive_wanted(params.config_drive, source.properties)
    drive_format = params.config_drive_format if wants_drive else None
    props = source.properties
    virt = virt_type or resolve_virt_type(params.virt_type, params.state_dir).virt_type
    disk_info = get_disk_info(
        virt, disk_bus=_prop(props, "hw_disk_bus"), cdrom_bus=_prop(props, "hw_cdrom_bus"),
        machine_type=_prop(props, "hw_machine_type"), ephemeral_gb=flavor.ephemeral_gb,
        swap_mb=flavor.swap_mb, config_drive_format=drive_format,
        image_disk_format=source.disk_format)
    fields = _instance_fields(instance, flavor, source, disk_info)
    metadata = None
    if wants_drive:
        metadata = InstanceMetadata.from_params(
            fields, keypairs=params.keypairs, user_data=params.user_data,
            admin_pass=params.admin_pass, files=injected_files_map(params.injected_files),
            vendor_data=params.vendor_data, network_info=params.network_info)
    else:
        InstanceInfo.from_dict(fields)   # the same checks, so both paths refuse alike
    # Where the image comes from and whether it can be verified: refused before any work.
    policy = fetch_policy(params)
    check_source_allowed(source.url, policy)
    source.require_verifiable()
    return PresentPlan(instance_uuid=instance_uuid,
                       instance_dir=InstanceLayout(params.instances_path).instance_dir(
                           instance_uuid),
                       flavor=flavor, source=source, backend=params.backend,
                       disk_info=disk_info, virt_type=virt, config_drive_format=drive_format,
                       metadata=metadata, boot_files=_boot_file_sources(params, source, policy))


def fetch_policy(params: VmImageParams) -> FetchPolicy:
    """Where images may be read from on this host, and how large a download may be."""
    return FetchPolicy.build(params.image_roots, params.download_max_bytes)


def _boot_file_sources(params: VmImageParams, source: ImageSource,
                       policy: FetchPolicy) -> Dict[str, ImageSource]:
    """The kernel and ramdisk to put in the instance directory (Nova's kernel_id/ramdisk_id)."""
    wanted = {}
    for name, given, prop in ((KERNEL, params.kernel, "kernel_id"),
                              (RAMDISK, params.ramdisk, "ramdisk_id")):
        if given:
            wanted[name] = ImageSource.from_dict(dict(given, disk_format=given.get("disk_format")
                                                      or BOOT_FILE_FORMATS[name]))
            check_source_allowed(wanted[name].url, policy)
            wanted[name].require_verifiable(name)
        elif _prop(source.properties, prop):
            raise VirtopsError(
                "image %s has %s=%s: give %s (url, checksum) so it is fetched into the instance "
                "directory for the direct kernel boot" % (source.url, prop,
                                                          source.properties[prop], name))
    if RAMDISK in wanted and KERNEL not in wanted:
        raise VirtopsError("a ramdisk is only used with a kernel: give kernel too")
    return wanted


def _prop(props: Mapping[str, object], name: str) -> Optional[str]:
    value = props.get(name)
    return None if value in (None, "") else str(value)


def check_flavor_before_fetch(flavor: Flavor, source: ImageSource) -> None:
    """min_ram and min_disk need no image: refuse before downloading anything."""
    check_flavor_fits(_Size(0), flavor.root_gb, source.min_disk, source.min_ram, flavor.ram_mb)


def _explain_refusal(exc: VirtopsError, flavor: Flavor) -> VirtopsError:
    """Name the flavor when the inspection refused a virtual size above root_gb."""
    if flavor.root_gb > 0 and "exceeds the maximum" in exc.msg:
        details = dict(exc.details, reason="FlavorDiskSmallerThanImage")
        return VirtopsError("%s: the flavor's root disk is %d GiB (FlavorDiskSmallerThanImage)"
                            % (exc.msg, flavor.root_gb), **details)
    return exc


def disk_plans(plan: PresentPlan, base: CachedBase, builder: DiskBuilder,
               check_mode: bool) -> List[DiskPlan]:
    """The plans of ``disk``, ``disk.local`` and ``disk.swap`` (Nova's image backends)."""
    flavor = plan.flavor
    if plan.source.disk_format == "iso":
        # An ISO boots as a cdrom: it is the image as it is, never grown to root_gb.
        root = plan_disk(ROOT_DISK, plan.backend, base.virtual_size or 1, base.path, base.format)
    else:
        root = plan_root(base, flavor, plan.backend)
    plans = [root]
    if flavor.ephemeral_gb:
        plans.append(builder.ephemeral_plan(flavor.ephemeral_gb, plan.backend, check_mode))
    if flavor.swap_mb:
        plans.append(builder.swap_plan(flavor.swap_mb, plan.backend, check_mode))
    return plans


def _relax_existing(plan: DiskPlan, instance_dir: str) -> DiskPlan:
    """An existing ephemeral or swap disk is kept (grown if needed), whatever base made it:
    a resize to another flavor changes the formatted base's name, not the guest's data."""
    if plan.name != ROOT_DISK and os.path.exists(os.path.join(instance_dir, plan.name)):
        return replace(plan, backing=None, backing_format=None, copy_of=None)
    return plan


def _current(qemu_img: QemuImg, path: str, fmt: str) -> Optional[dict]:
    """What an existing disk is now (for the diff); None when absent or unreadable
    (DiskBuilder.ensure then says what is wrong with it)."""
    if not os.path.isfile(path):
        return None
    try:
        info = qemu_img.info(path, fmt)
    except VirtopsError:
        return None
    return {"format": info.format, "virtual_size": info.virtual_size,
            "backing_file": info.backing_filename}


def _describe(state: DiskState) -> dict:
    return {"format": state.format, "virtual_size": state.virtual_size,
            "backing_file": state.backing_file}


# --------------------------------------------------------------------------- present

class _Undo:
    """What this run created, removed again (newest first) when the run fails."""

    def __init__(self):
        self.files: List[str] = []
        self.directory: Optional[str] = None

    def rollback(self) -> None:
        for path in reversed(self.files):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self.directory:
            try:
                os.rmdir(self.directory)
            except OSError:
                pass  # not empty: something else lives there now


def ensure_present(params: VmImageParams, check_mode: bool = False,
                   qemu_img: Optional[QemuImg] = None,
                   virt_type: Optional[str] = None,
                   rbd_cli: Optional[_rbd.RbdCli] = None) -> VmImageResult:
    started = time.monotonic()
    plan = plan_present(params, virt_type)
    check_flavor_before_fetch(plan.flavor, plan.source)
    qemu_img = qemu_img or QemuImg()
    if plan.backend == "rbd":
        return _ensure_present_rbd(plan, params, check_mode, qemu_img, started, rbd_cli)
    cache = ImageCache(params.instances_path, qemu_img=qemu_img, force_raw=params.force_raw,
                       policy=fetch_policy(params))
    builder = DiskBuilder(cache)
    result = VmImageResult(changed=False, state="present", instance_dir=plan.instance_dir,
                           disk_info=plan.disk_info.to_dict(), virt_type=plan.virt_type,
                           timings={key: 0.0 for key in TIMING_KEYS})
    timings = result.timings
    undo = _Undo()
    try:
        base = _ensure_base(plan, cache, params, check_mode, result, timings)
        check_flavor_fits(base, plan.flavor.root_gb, plan.source.min_disk,
                          plan.source.min_ram, plan.flavor.ram_mb)
        _ensure_instance_dir(plan.instance_dir, check_mode, result, undo)
        _ensure_disks(plan, base, builder, check_mode, result, undo, timings)
        _ensure_disk_info(plan, check_mode, result, undo)
        _ensure_config_drive(plan, check_mode, result, undo, timings, params.libvirt_uri)
        _ensure_boot_files(plan, cache, params, check_mode, result, undo)
    except BaseException:
        if not check_mode:
            undo.rollback()
        raise
    timings["total"] = elapsed(started)
    return result


def _ensure_base(plan: PresentPlan, cache: ImageCache, params: VmImageParams,
                 check_mode: bool, result: VmImageResult, timings: Dict[str, float]
                 ) -> CachedBase:
    try:
        if check_mode:
            base = cache.peek(plan.source, plan.max_virtual_size)
        else:
            base = cache.ensure(plan.source, plan.max_virtual_size,
                                download_timeout=params.download_timeout)
    except VirtopsError as exc:
        raise _explain_refusal(exc, plan.flavor)
    path = cache.base_path(plan.source)
    if base is None:
        # check mode, nothing cached: what the fetch would give, sizes still unknown
        fmt = "raw" if params.force_raw else QEMU_FORMATS[plan.source.disk_format]
        result.base = {"path": path, "format": fmt, "virtual_size": None, "file_size": None,
                       "fetched": False, "image_id": plan.source.id, "action": "would fetch"}
        result.changed = True
        result.before["base"], result.after["base"] = None, {"path": path, "format": fmt}
        return CachedBase(path, fmt, 0, 0, False, {}, plan.source.id)
    for key, value in base.timings.items():
        timings[key] = value
    result.base = dict(base.to_dict(), action="fetched" if base.fetched else "reused")
    result.changed = result.changed or base.fetched
    described = {"path": base.path, "format": base.format, "virtual_size": base.virtual_size}
    result.before["base"] = None if base.fetched else described
    result.after["base"] = described
    return base


def _ensure_instance_dir(instance_dir: str, check_mode: bool, result: VmImageResult,
                         undo: _Undo) -> None:
    if os.path.islink(instance_dir) or (os.path.exists(instance_dir)
                                        and not os.path.isdir(instance_dir)):
        raise VirtopsError("%s exists and is not a directory; remove it" % instance_dir)
    if os.path.isdir(instance_dir):
        if not check_mode:
            restrict_to_qemu(instance_dir)   # one made before the modes were tightened
        return
    result.changed = True
    if check_mode:
        return
    os.makedirs(instance_dir, mode=0o700)
    undo.directory = instance_dir
    qemu_directory(instance_dir)   # libvirt's QEMU user reaches the disks, nobody else


def _ensure_disks(plan: PresentPlan, base: CachedBase, builder: DiskBuilder, check_mode: bool,
                  result: VmImageResult, undo: _Undo, timings: Dict[str, float]) -> None:
    started = time.monotonic()
    unknown_base = check_mode and base.virtual_size == 0
    size_from_image = plan.flavor.root_gb == 0 or plan.source.disk_format == "iso"
    for disk_plan in disk_plans(plan, base, builder, check_mode):
        path = os.path.join(plan.instance_dir, disk_plan.name)
        before = _current(builder.qemu_img, path, disk_plan.format)
        if check_mode and not os.path.isdir(plan.instance_dir):
            state = DiskState(disk_plan.name, path, disk_plan.format, disk_plan.size,
                              disk_plan.backing, "would create")
        else:
            state = builder.ensure(plan.instance_dir, _relax_existing(disk_plan, plan.instance_dir),
                                   check_mode)
        if state.action == "created":
            undo.files.append(path)
        if state.action != "unchanged":
            result.changed = True
        if unknown_base and disk_plan.name == ROOT_DISK and size_from_image \
                and state.action == "would create":
            state.virtual_size = None   # the image's size, known once it is fetched
        result.disks.append(state.to_dict())
        result.disk_formats[disk_plan.name] = state.format
        result.before[disk_plan.name] = before
        result.after[disk_plan.name] = _describe(state)
    timings["create"] = elapsed(started)


def _ensure_disk_info(plan: PresentPlan, check_mode: bool, result: VmImageResult,
                      undo: _Undo) -> None:
    formats = dict(result.disk_formats)
    if plan.config_drive_format:
        formats[CONFIG_DRIVE] = "raw"
    path = os.path.join(plan.instance_dir, DISK_INFO)
    existed = os.path.exists(path)
    result.disk_info_file = path
    if write_disk_info(plan.instance_dir, formats, check_mode):
        result.changed = True
        if not check_mode and not existed:
            undo.files.append(path)
    result.disk_formats = formats


def _ensure_config_drive(plan: PresentPlan, check_mode: bool, result: VmImageResult,
                         undo: _Undo, timings: Dict[str, float], libvirt_uri: str) -> None:
    if plan.config_drive_format is None:
        return
    started = time.monotonic()
    target = os.path.join(plan.instance_dir, CONFIG_DRIVE)
    wanted = content_digest(plan.metadata)
    current = inspect_config_drive(target) if os.path.isdir(plan.instance_dir) else None
    entry = {"path": target, "format": plan.config_drive_format, "content_digest": wanted}
    result.before[CONFIG_DRIVE] = None if current is None else {
        "format": current.format, "content_digest": current.content_digest}
    result.after[CONFIG_DRIVE] = {"format": plan.config_drive_format, "content_digest": wanted}
    if current is not None and current.format == plan.config_drive_format \
            and current.content_digest == wanted:
        entry.update(size_bytes=current.size_bytes, action="unchanged")
    elif check_mode:
        result.changed = True
        entry.update(size_bytes=None,
                     action="would create" if current is None else "would rebuild")
    else:
        if current is not None and _domain_running(libvirt_uri, plan.instance_uuid):
            # A running guest has the drive open (a vfat one read-write): never swap it
            # under the guest; Nova builds it once, before the first start.
            raise VirtopsError("the config drive of %s would change (%s) but the domain is "
                               "running: stop it first" % (plan.instance_uuid, target),
                               path=target)
        built = build_config_drive(target, plan.metadata, plan.config_drive_format)
        if current is None:
            undo.files.append(target)
        result.changed = True
        entry.update(size_bytes=built.size_bytes,
                     action="created" if current is None else "rebuilt")
    result.config_drive = entry
    timings["config_drive"] = elapsed(started)


def _ensure_boot_files(plan: PresentPlan, cache: ImageCache, params: VmImageParams,
                       check_mode: bool, result: VmImageResult, undo: _Undo) -> None:
    """The kernel and ramdisk, from the cache into the instance directory (Nova copies them
    there too: the domain reads ``<uuid>/kernel`` and ``<uuid>/ramdisk``)."""
    for name, source in sorted(plan.boot_files.items()):
        target = os.path.join(plan.instance_dir, name)
        present = os.path.isfile(target)
        if check_mode:
            cached = cache.peek_boot_file(source)
        else:
            cached = cache.ensure_boot_file(source, download_timeout=params.download_timeout)
        if cached is not None and present and filecmp.cmp(cached.path, target, shallow=False):
            action = "unchanged"
        elif check_mode:
            action = "would copy" if cached is not None else "would fetch and copy"
        else:
            atomic_copy(cached.path, target, **qemu_file_options())
            if not present:
                undo.files.append(target)
            action = "copied"
        if action != "unchanged":
            result.changed = True
            result.before[name] = {"path": target} if present else None
            result.after[name] = {"path": target, "source": source.url}
        result.boot_files[name] = {"path": target, "source": source.url, "image_id": source.id,
                                   "base": cache.base_path(source), "action": action,
                                   "fetched": bool(cached is not None and cached.fetched)}


# --------------------------------------------------------------------------- rbd

def rbd_cli_for(params: VmImageParams) -> _rbd.RbdCli:
    """The ``rbd`` wrapper for the host's rbd settings (refused when they are not valid)."""
    storage = HostStorage.from_values(params.backend, params.rbd)
    if storage.rbd is None:
        raise VirtopsError("backend %s keeps no disk in Ceph" % params.backend)
    return _rbd.RbdCli(storage.rbd)


def _ensure_present_rbd(plan: PresentPlan, params: VmImageParams, check_mode: bool,
                        qemu_img: QemuImg, started: float,
                        cli: Optional[_rbd.RbdCli]) -> VmImageResult:
    """Nova's ``_create_image`` with ``images_type = rbd`` (``Rbd.cache``, ``create_image``):

    - ``<uuid>_disk`` that exists is kept (grown to root_gb if smaller);
    - a raw image with an ``rbd://`` location of this cluster, readable by this host's user,
      is cloned from that snapshot: nothing is downloaded;
    - anything else is fetched to ``_base`` by the image cache (the same inspection as for
      the local backends, converted to raw) and ``rbd import``ed;
    - the root disk grows to the flavor's root_gb, never shrinks;
    - the config drive is built in the instance directory, imported as
      ``<uuid>_disk.config`` and the local file removed.

    The instance directory holds only ``disk.info`` (formats, for vm_xml) and what the other
    steps write. A failure removes the rbd images and files this run made, and only those.
    Ephemeral and swap disks are not in Ceph yet: such flavors are refused before any work."""
    flavor = plan.flavor
    if flavor.ephemeral_gb or flavor.swap_mb:
        raise VirtopsError("flavor %s has an ephemeral or swap disk; with images_type rbd only the root disk "
                           "and the config drive are supported so far" % (flavor.name or "?"))
    if plan.boot_files:
        raise VirtopsError("a direct kernel boot (kernel, ramdisk) is not supported with images_type rbd yet")
    cli = cli or rbd_cli_for(params)
    uuid = plan.instance_uuid
    root = _rbd.root_name(uuid)
    result = VmImageResult(changed=False, state="present", instance_dir=plan.instance_dir,
                           disk_info=plan.disk_info.to_dict(), virt_type=plan.virt_type,
                           timings={key: 0.0 for key in TIMING_KEYS})
    timings = result.timings
    undo = _Undo()
    made: List[str] = []
    size = flavor.root_gb * GIB if flavor.root_gb > 0 and plan.source.disk_format != "iso" else None
    try:
        _ensure_instance_dir(plan.instance_dir, check_mode, result, undo)
        began = time.monotonic()
        existing = cli.info(root)
        root_plan = _rbd.plan_root(plan.source.disk_format, plan.source.locations, cli.fsid())
        parent_size = cli.snapshot_size(root_plan.source) if root_plan.source is not None else None
        entry = {"name": ROOT_DISK, "rbd": cli.spec(root), "format": "raw", "path": "rbd:%s" % cli.spec(root),
                 "backing_file": None}
        base: Optional[CachedBase] = None
        if existing is not None:
            how, virtual = "existing", existing.size
        elif parent_size is not None:
            how, virtual = "clone", parent_size
            check_flavor_fits(_Size(parent_size), flavor.root_gb, plan.source.min_disk,
                              plan.source.min_ram, flavor.ram_mb)
        else:
            how = "import"
            cache = ImageCache(params.instances_path, qemu_img=qemu_img, force_raw=True,
                               policy=fetch_policy(params))
            base = _ensure_base(plan, cache, params, check_mode, result, timings)
            check_flavor_fits(base, flavor.root_gb, plan.source.min_disk, plan.source.min_ram, flavor.ram_mb)
            virtual = base.virtual_size or None
        wanted = max(size or 0, virtual or 0) or None
        entry.update(made=how, reason=root_plan.reason if how == "import" else "",
                     parent=root_plan.source.snap_spec if how == "clone" else None, virtual_size=wanted)
        if how != "existing":
            result.changed = True
            entry["action"] = ("would %s" % how) if check_mode else "created"
        elif wanted is not None and wanted > existing.size:
            result.changed = True
            entry["action"] = "would grow" if check_mode else "grown"
        else:
            entry["action"] = "unchanged"
        result.before[ROOT_DISK] = None if existing is None else {"rbd": entry["name"], "virtual_size": existing.size}
        result.after[ROOT_DISK] = {"rbd": entry["name"], "virtual_size": wanted}
        if not check_mode:
            if existing is None:
                made.append(root)   # removed again if anything below fails, a grow included
            decided = _rbd.RootPlan(root_plan.source if how == "clone" else None, root_plan.reason)
            # Nova's Rbd.create_image grows only: an existing larger image is left as it is.
            grow_to = size if existing is None or (size or 0) > existing.size else None
            outcome = _rbd.ensure_root(cli, uuid, decided, lambda: _raw_base(base), grow_to)
            entry["made"] = outcome.made
        result.disks.append(entry)
        result.disk_formats[ROOT_DISK] = "raw"
        timings["create"] = elapsed(began)
        _ensure_disk_info(plan, check_mode, result, undo)
        _ensure_rbd_config_drive(plan, cli, check_mode, result, undo, made, timings)
    except BaseException:
        if not check_mode:
            for name in reversed(made):
                try:
                    cli.remove(name)
                except VirtopsError:
                    pass   # the failure that got here is the one to report
            undo.rollback()
        raise
    timings["total"] = elapsed(started)
    return result


def _raw_base(base: Optional[CachedBase]) -> str:
    """The fetched base ``rbd import`` reads: raw, as the cache made it (force_raw)."""
    if base is None or base.format != "raw":
        raise VirtopsError("the image's base is not raw: rbd imports only raw data")
    return base.path


def _ensure_rbd_config_drive(plan: PresentPlan, cli: _rbd.RbdCli, check_mode: bool,
                             result: VmImageResult, undo: _Undo, made: List[str],
                             timings: Dict[str, float]) -> None:
    """Nova's ``_create_configdrive`` with rbd: built locally, imported as
    ``<uuid>_disk.config``, the local copy removed. One that exists is kept: Nova builds it
    once, before the first start."""
    if plan.config_drive_format is None:
        return
    began = time.monotonic()
    name = _rbd.config_name(plan.instance_uuid)
    entry = {"path": "rbd:%s" % cli.spec(name), "format": plan.config_drive_format,
             "content_digest": content_digest(plan.metadata)}
    existing = cli.info(name)
    result.before[CONFIG_DRIVE] = None if existing is None else {"rbd": cli.spec(name)}
    result.after[CONFIG_DRIVE] = {"rbd": cli.spec(name), "format": plan.config_drive_format}
    if existing is not None:
        entry.update(size_bytes=existing.size, action="unchanged")
    elif check_mode:
        result.changed = True
        entry.update(size_bytes=None, action="would create")
    else:
        local = os.path.join(plan.instance_dir, CONFIG_DRIVE)
        undo.files.append(local)
        built = build_config_drive(local, plan.metadata, plan.config_drive_format)
        made.append(name)
        _rbd.import_config_drive(cli, plan.instance_uuid, local, os.unlink)
        result.changed = True
        entry.update(size_bytes=built.size_bytes, action="created")
    result.config_drive = entry
    timings["config_drive"] = elapsed(began)


def _remove_rbd_images(params: VmImageParams, instance_uuid: str, check_mode: bool) -> List[str]:
    """Nova's ``_cleanup_rbd``: the pool's images of this instance, and nothing else."""
    cli = rbd_cli_for(params)
    names = cli.instance_images(instance_uuid)
    if not check_mode:
        names = _rbd.remove_instance_images(cli, instance_uuid)
    return ["rbd:%s" % cli.spec(name) for name in names]


# --------------------------------------------------------------------------- absent

def _domain_running(libvirt_uri: str, instance_uuid: str) -> bool:
    """Whether libvirt runs a domain with this uuid (its disks must not vanish under it)."""
    # Imported here: cache ageing and disk building need no libvirt binding.
    from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
        HAS_LIBVIRT, connect)
    from ansible_collections.virtops.compute.plugins.module_utils._libvirt.domains import (
        find_domain)
    if not HAS_LIBVIRT:
        raise VirtopsError("state=absent checks that no domain still uses the disks and needs "
                           "the libvirt Python binding (python3-libvirt) on the host")
    # Only "no such domain" means not running: any other libvirt error is raised, so disks are
    # never removed because libvirtd could not be asked.
    with connect(libvirt_uri, read_only=True) as conn:
        domain = find_domain(conn, uuid=instance_uuid)
        return domain is not None and bool(domain.isActive())


def ensure_absent(params: VmImageParams, check_mode: bool = False) -> VmImageResult:
    started = time.monotonic()
    instance = params.instance or {}
    if not instance.get("uuid"):
        raise VirtopsError("instance.uuid is required")
    instance_uuid = validate_uuid(instance["uuid"])
    instance_dir = InstanceLayout(params.instances_path).instance_dir(instance_uuid)
    result = VmImageResult(changed=False, state="absent", instance_dir=instance_dir)
    if os.path.isdir(instance_dir) and not os.path.islink(instance_dir):
        if _domain_running(params.libvirt_uri, instance_uuid):
            raise VirtopsError("domain %s is running: stop or delete it before removing its "
                               "disks" % instance_uuid, instance_dir=instance_dir)
        removed = remove_instance_disks(instance_dir, check_mode)
        for name in TMP_LEFTOVERS:
            path = os.path.join(instance_dir, name)
            if os.path.lexists(path):
                removed.append(path)
                if not check_mode:
                    os.unlink(path)
        result.removed = removed
        result.before = {os.path.basename(p): "present" for p in removed}
        if not check_mode and not os.listdir(instance_dir):
            os.rmdir(instance_dir)   # nothing else (record, XML, log) lives there
            result.removed.append(instance_dir)
        result.changed = bool(removed)
    if params.backend == "rbd":
        if _domain_running(params.libvirt_uri, instance_uuid):
            raise VirtopsError("domain %s is running: stop or delete it before removing its "
                               "disks" % instance_uuid)
        gone = _remove_rbd_images(params, instance_uuid, check_mode)
        result.removed.extend(gone)
        result.before.update({name: "present" for name in gone})
        result.changed = result.changed or bool(gone)
    result.timings = {"total": elapsed(started)}
    return result


# --------------------------------------------------------------------------- ageing

def clean_cache(params: VmImageParams, check_mode: bool = False,
                qemu_img: Optional[QemuImg] = None) -> VmImageResult:
    started = time.monotonic()
    if params.remove_unused_original_minimum_age_seconds < 0:
        raise VirtopsError("remove_unused_original_minimum_age_seconds cannot be negative")
    qemu_img = qemu_img or QemuImg()
    cache = ImageCache(params.instances_path, qemu_img=qemu_img, force_raw=params.force_raw)
    before = cache.bases()
    in_use = in_use_bases(params.instances_path, qemu_img)
    outcome = cache.clean(in_use, params.remove_unused_original_minimum_age_seconds, check_mode)
    result = VmImageResult(changed=any(outcome[key] for key in (
        "removed", "removed_leftovers", "removed_locks")), state="cache_cleaned", cache=outcome)
    result.before = {"bases": before}
    result.after = {"bases": [b for b in before if b not in outcome["removed"]]}
    result.timings = {"total": elapsed(started)}
    return result


def run(params: VmImageParams, check_mode: bool = False) -> VmImageResult:
    if params.state == "present":
        return ensure_present(params, check_mode)
    if params.state == "absent":
        return ensure_absent(params, check_mode)
    if params.state == "cache_cleaned":
        return clean_cache(params, check_mode)
    raise VirtopsError("state must be one of %s, not %r" % (", ".join(STATES), params.state))
