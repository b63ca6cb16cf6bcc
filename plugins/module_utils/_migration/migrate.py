# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cold migration and resize of one instance between two hosts (Nova's move operations).

The phases, each run on the host it names, each idempotent:

``prep`` (destination)
    Nova's ``prep_resize``: refuse a shrink, claim the new flavor under the host's claim lock
    (with the scheduler's limits) and write the destination's record: new flavor, old flavor,
    ``old_vm_state``, task ``resize_prep``, migration ``pre-migrating``. When the instance
    directory is already visible here (same host, or instance storage shared with the source)
    the claim is taken in place on the instance's own record (``new_flavor``), as
    ``resize_claim`` does.
``migrate`` (source)
    ``resize_instance`` + ``migrate_disk_and_power_off``: migration ``migrating``, task
    ``resize_migrating``; refuse a shrink before anything changes; test for shared storage
    (a temp file made over ssh); create the remote directory; clean power off (ACPI, retried,
    then destroy); unplug VIFs; rename ``<uuid>`` to ``<uuid>_resize``; copy the disks and
    ``disk.info`` (and ``disk.config``, ``libvirt.xml``) with rsync over ssh, sparse-aware,
    compressed unless qcow2, never the swap disk; migration ``post-migrating``, task
    ``resize_migrated``. Any failure rolls back: remote copy and claim removed, ``_resize``
    renamed back, VIFs plugged, the guest started again if it ran, migration ``error``.
``finish`` (destination)
    ``finish_resize`` / ``finish_migration``: base image present in this host's cache (fetched,
    or copied from the source when the image source is gone), overlays rebased when the base
    path differs, disks grown to the new flavor, swap re-created, XML regenerated (same UUID,
    same MACs, machine type kept; the VNC console on this host's own ``vnc_listen``, as Nova's
    ``finish_migration`` writes the guest XML with the destination's ``[vnc] server_listen``),
    VIFs plugged, domain defined and started unless the
    instance was stopped; vm_state ``resized``, migration ``finished``. A failure sets vm_state
    ``error`` with the reason; revert stays possible.
``confirm`` (source, then destination)
    Source: undefine the old domain, unplug its VIFs, remove ``<uuid>_resize`` (its claim).
    Destination: vm_state ``active`` (or ``stopped``), migration ``confirmed``.
``revert_dest`` then ``revert_source``
    Destination: destroy and undefine its domain, unplug, remove the copy (its claim).
    Source: rename ``_resize`` back, old flavor, start it if it was running; ``reverted``.
``info`` (any host)
    What this host holds for the instance (records, domain state); changes nothing.

A crash between steps is recoverable: ``<uuid>_resize`` present means revert is possible,
and every phase re-run finishes its work or reports that nothing is left to do.

Disks on shared block storage (``images_type = rbd``)
    Nova's ``migrate_disk_and_power_off`` copies only what ``_get_instance_disk_info`` lists,
    and that leaves out network disks: with rbd every host of the cluster opens the same
    ``<pool>/<uuid>_disk``, so no disk byte moves. The *instance directory* is another matter:
    it is local to each host (unless it is on NFS, which the temp-file test still decides), so
    its small files (``disk.info``, ``libvirt.xml``) go over rsync as before. The migration
    record keeps the two apart: ``shared_storage`` (the instance directory, Nova's
    ``_is_path_shared_with``) and ``shared_block_storage`` (the disks, Nova's
    ``is_shared_block_storage``). Prep on an rbd destination checks that its pool holds the
    instance's root disk (same cluster, same pool) and records the cluster's fsid and pool;
    migrate on the source refuses a move between rbd and a local backend (Nova converts neither
    way) or between clusters, and a ``nova-resize`` snapshot left over from an earlier move.
    Finish takes the snapshot ``nova-resize`` of the root disk, grows the image to the new
    root_gb (never shrinks) and writes the domain XML with this host's monitors and secret;
    confirm removes the snapshot on the source (``_cleanup_resize``); revert rolls the image
    back to it and removes it on the source (``finish_revert_migration``), so the disk is
    exactly what it was before the move, size included. The destination's revert removes its
    instance directory and never an rbd image (the disks are the source's too).
"""
from __future__ import annotations

import os
import shutil
import time
import uuid as uuid_mod
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, Iterator, List, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _libvirt
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import domains as _domains
from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import ClaimManager, Limits
from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import (
    VmImageParams, rbd_cli_for)
from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import detect_format
from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import (
    DomainManager, DomainParams)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    qemu_directory, read_json)
from ansible_collections.virtops.compute.plugins.module_utils._model.console import (
    DEFAULT_VNC_LISTEN, valid_vnc_listen)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._guest.config import Guest, GuestDisk
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    INFO_SUFFIX, ImageCache)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSource
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES, FetchPolicy)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_disks import (
    BACKEND_FORMATS, DiskBuilder, DiskPlan, backend_for_format, write_disk_info)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore, utcnow)
from ansible_collections.virtops.compute.plugins.module_utils._common.locks import file_lock
from ansible_collections.virtops.compute.plugins.module_utils._migration.transport import (
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, SshConfig, TransferReport, Transport,
    allocated_bytes, remote_spec, validate_address)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_uuid
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER, valid_firewall_driver)
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import QemuImg
from ansible_collections.virtops.compute.plugins.module_utils._storage import rbd as _rbd
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import HostStorage
from ansible_collections.virtops.compute.plugins.module_utils._compute.capacity import host_capacity
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome, rounded
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    BOOT_FILES, CONFIG_DRIVE, DEFAULT_INSTANCES_PATH, DEFAULT_STATE_DIR, DISK_INFO, DOMAIN_XML, EPHEMERAL_DISK,
    RECORD, ROOT_DISK, SWAP_DISK, InstanceLayout)
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import (
    VmXmlParams, ensure_libvirt_xml)
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB, MIB

PHASES = ("info", "prep", "migrate", "finish", "confirm", "revert_dest", "revert_source")
STATUSES = ("pre-migrating", "migrating", "post-migrating", "finished", "confirmed", "reverted",
            "error")
MOVABLE_VM_STATES = ("active", "stopped")
LOCK_TIMEOUT = 600


# --------------------------------------------------------------------------- data

@dataclass
class Migration:
    """Nova's migration record, kept in the instance records of both hosts."""
    id: str
    instance_uuid: str
    migration_type: str                 # migration (same flavor) | resize
    source_host: str
    dest_host: str
    source_address: str
    dest_address: str
    source_instances_path: str
    dest_instances_path: str
    old_flavor: dict
    new_flavor: dict
    old_vm_state: str
    status: str = "pre-migrating"
    claim_in_place: bool = False        # same host or shared storage: claim on the record itself
    shared_storage: Optional[bool] = None   # the instance directory (Nova's _is_path_shared_with)
    # The disks (Nova's is_shared_block_storage): rbd images every host of the cluster opens.
    shared_block_storage: bool = False
    rbd: Optional[dict] = None          # the destination's cluster and pool: {fsid, pool}
    created_at: str = field(default_factory=utcnow)
    updated_at: str = field(default_factory=utcnow)
    power_off_at: Optional[float] = None     # epoch seconds: the source began powering off
    running_at: Optional[float] = None       # epoch seconds: RUNNING on the destination
    finished_at: Optional[float] = None      # epoch seconds: finish done (resize_confirm_window)
    downtime_seconds: Optional[float] = None
    power_off: Optional[dict] = None
    bytes_sent: int = 0
    allocated_bytes: int = 0
    transfer: Optional[dict] = None
    timings: Dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None

    def __post_init__(self):
        validate_uuid(self.instance_uuid)
        if self.status not in STATUSES:
            raise VirtopsError("unknown migration status %r (one of %s)"
                               % (self.status, ", ".join(STATUSES)))

    @property
    def same_host(self) -> bool:
        return self.source_host == self.dest_host

    def set_status(self, status: str, error: Optional[str] = None) -> None:
        if status not in STATUSES:
            raise VirtopsError("unknown migration status %r" % status)
        self.status = status
        self.updated_at = utcnow()
        if error is not None:
            self.error = error

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> "Migration":
        if not isinstance(data, dict) or not data.get("id"):
            raise VirtopsError("migration must be the dict a previous phase returned (it has "
                               "no id)")
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise VirtopsError("migration record is incomplete: %s" % exc)


@dataclass(frozen=True)
class MigrateParams:
    phase: str
    host: str
    uuid: Optional[str] = None
    name: Optional[str] = None
    address: Optional[str] = None
    instances_path: str = DEFAULT_INSTANCES_PATH
    libvirt_uri: str = _libvirt.DEFAULT_URI
    instance: Optional[dict] = None
    source_host: Optional[str] = None
    source_address: Optional[str] = None
    source_instances_path: Optional[str] = None
    new_flavor: Optional[dict] = None
    limits: Optional[dict] = None
    migration: Optional[dict] = None
    migration_id: Optional[str] = None
    allow_same_host: bool = False
    ssh_user: str = "root"
    ssh_key: Optional[str] = None
    ssh_options: Tuple[str, ...] = ()
    ssh_connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    rsync_timeout: int = DEFAULT_IO_TIMEOUT
    shutdown_timeout: float = 60
    retry_interval: float = 10
    vif_plugging_timeout: float = 300
    wait_for_console: Optional[str] = None
    console_timeout: float = 300
    virt_type: str = "auto"
    state_dir: str = DEFAULT_STATE_DIR
    nwfilter: str = DEFAULT_NWFILTER
    firewall_driver: str = DEFAULT_FIREWALL_DRIVER
    # The destination's own [vnc] server_listen: finish writes the domain XML with it.
    vnc_listen: str = DEFAULT_VNC_LISTEN
    force_raw_images: bool = True
    image_roots: Tuple[str, ...] = ()
    download_max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    reserved_host_memory_mb: int = 512
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    # This host's images_type and, for rbd, its Ceph settings (vm_image's backend and rbd).
    backend: str = "qcow2"
    rbd: Optional[dict] = None

    def __post_init__(self):
        if self.phase not in PHASES:
            raise VirtopsError("phase must be one of %s, not %r" % (", ".join(PHASES), self.phase))
        if not os.path.isabs(self.instances_path):
            raise VirtopsError("instances_path must be absolute, got %r" % self.instances_path)
        if not self.host:
            raise VirtopsError("host (this host's name in the fleet) is required")
        valid_firewall_driver(self.firewall_driver)
        valid_vnc_listen(self.vnc_listen)
        HostStorage.from_values(self.backend, self.rbd)

    @property
    def ssh(self) -> SshConfig:
        return SshConfig(user=self.ssh_user, key=self.ssh_key, options=tuple(self.ssh_options),
                         connect_timeout=self.ssh_connect_timeout)


@dataclass
class PhaseResult(Outcome):
    """One phase's Outcome (changed, actions, timings) and what vm_migrate returns."""
    phase: str = ""
    msg: str = ""
    migration: Optional[dict] = None
    instance: Optional[dict] = None
    before: Optional[dict] = None
    after: Optional[dict] = None
    warnings: List[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def as_module_result(self) -> dict:
        data = {"changed": self.changed, "msg": self.msg, "phase": self.phase,
                "migration": self.migration, "instance": self.instance,
                "actions": self.actions, "timings": self.rounded_timings()}
        data.update(self.extra)
        return data


# --------------------------------------------------------------------------- rules

def migration_type(old: Flavor, new: Flavor) -> str:
    return "migration" if old == new else "resize"


def check_no_shrink(old: Flavor, new: Flavor, root_virtual_size: Optional[int] = None) -> None:
    """Nova's rule: root and ephemeral disks only grow. Raises before anything changes."""
    problems = []
    if new.root_gb < old.root_gb:
        problems.append("root disk %d GiB -> %d GiB" % (old.root_gb, new.root_gb))
    if new.ephemeral_gb < old.ephemeral_gb:
        problems.append("ephemeral disk %d GiB -> %d GiB" % (old.ephemeral_gb, new.ephemeral_gb))
    if root_virtual_size and new.root_gb and root_virtual_size > new.root_gb * GIB:
        problems.append("the root disk holds %d bytes, more than %d GiB"
                        % (root_virtual_size, new.root_gb))
    if problems:
        raise VirtopsError("Unable to resize disk down. (%s: flavor %s -> %s; disks only grow)"
                           % ("; ".join(problems), old.name, new.name),
                           reason="resize_down", problems=problems)


def disk_formats(instance_dir: str) -> Dict[str, str]:
    """disk.info as {file name: format} (its keys are absolute paths of the host that wrote it)."""
    data = read_json(os.path.join(instance_dir, DISK_INFO), default={}) or {}
    if not isinstance(data, dict):
        raise VirtopsError("%s/%s must hold a JSON object" % (instance_dir, DISK_INFO))
    return {os.path.basename(str(path)): str(fmt) for path, fmt in data.items()}


SMALL_FILE = 4 * MIB


def transfer_groups(instance_dir: str, formats: Dict[str, str],
                    disks: bool = True) -> List[Tuple[List[str], bool]]:
    """Files to copy as (paths, compress) groups, one rsync run each.

    ``disks`` False (the disks are on shared block storage, rbd): only the instance
    directory's own small files, ``disk.info`` and ``libvirt.xml``, in one uncompressed run;
    no disk, config drive or boot file, whatever is lying in the directory.

    qcow2 disks go uncompressed, other disks compressed (Nova's NO_COMPRESSION_TYPES). The
    swap disk is never copied (re-created at its new size). disk.info, the config drive, the
    kernel and ramdisk of a direct kernel boot and libvirt.xml (the guest's identity: MACs,
    machine type) go with the disks; files under
    4 MiB ride along with the first group whatever their format, which saves an rsync run
    (a remote process and a protocol start, ~0.3 s) for a negligible number of bytes.
    """
    plain, packed, small = [], [], []
    if not disks:
        small = [os.path.join(instance_dir, name) for name in (DISK_INFO, DOMAIN_XML)
                 if os.path.isfile(os.path.join(instance_dir, name))]
        return [(small, False)] if small else []
    names = dict(formats)
    names.setdefault(CONFIG_DRIVE, "raw")
    for name in BOOT_FILES:   # a direct kernel boot's kernel and ramdisk
        names.setdefault(name, "raw")
    for name, fmt in sorted(names.items()):
        path = os.path.join(instance_dir, name)
        if name == SWAP_DISK or not os.path.isfile(path):
            continue
        if os.path.getsize(path) < SMALL_FILE:
            small.append(path)
        else:
            (plain if fmt == "qcow2" else packed).append(path)
    for name in (DISK_INFO, DOMAIN_XML):
        path = os.path.join(instance_dir, name)
        if os.path.isfile(path):
            small.append(path)
    if plain or not packed:
        plain += small
    else:
        packed += small
    return [(group, compress) for group, compress in ((plain, False), (packed, True)) if group]


def dest_record(source: InstanceRecord, migration: Migration, host: str) -> InstanceRecord:
    """The destination's record: the new flavor claimed, the old one kept for revert."""
    record = InstanceRecord.from_dict(source.to_dict())
    new = Flavor.from_dict(migration.new_flavor)
    record.flavor = new
    record.new_flavor = new
    record.old_flavor = Flavor.from_dict(migration.old_flavor)
    record.old_vm_state = migration.old_vm_state
    record.host = host
    record.image_base = None
    record.limits = {}
    record.fault = None
    record.migration = migration.to_dict()
    record.set_state(task_state="resize_prep")
    return record


def _same_migration(record: Optional[InstanceRecord], migration_id: Optional[str]) -> bool:
    return bool(record is not None and record.migration and migration_id
                and record.migration.get("id") == migration_id)


def recorded_identity(instance_dir: str, record: InstanceRecord) -> dict:
    """vm_xml's ``instance``, with the hostname and owner the copied libvirt.xml recorded."""
    instance = {"uuid": record.uuid, "name": record.name}
    try:
        with open(os.path.join(instance_dir, DOMAIN_XML), encoding="utf-8") as handle:
            meta = Guest.from_xml(handle.read()).metadata
    except (OSError, UnicodeDecodeError, VirtopsError):
        return instance
    if meta is not None:
        if meta.hostname:
            instance["hostname"] = meta.hostname
        if meta.owner is not None and (meta.owner.user or meta.owner.project):
            instance["owner"] = {"user": meta.owner.user, "project": meta.owner.project}
    return instance


def recorded_config_drive_format(instance_dir: str) -> str:
    """The config drive's format as the copied ``libvirt.xml`` attached it: a cdrom is
    iso9660, a disk vfat (blockinfo's rule); iso9660 when the file says nothing."""
    try:
        with open(os.path.join(instance_dir, DOMAIN_XML), encoding="utf-8") as handle:
            guest = Guest.from_xml(handle.read())
    except (OSError, UnicodeDecodeError, VirtopsError):
        return "iso9660"
    for disk in guest.devices_of(GuestDisk):
        source = disk.source_name or disk.source_path or ""
        if source.endswith("_" + CONFIG_DRIVE) or source.endswith("/" + CONFIG_DRIVE):
            return "iso9660" if disk.device == "cdrom" else "vfat"
    return "iso9660"


# --------------------------------------------------------------------------- helpers

@contextmanager
def instance_lock(instances_path: str, uuid: str) -> Iterator[float]:
    """One phase at a time per instance on a host."""
    path = InstanceLayout(instances_path).lock_path("migrate-%s" % uuid)
    with file_lock(path, timeout=LOCK_TIMEOUT) as waited:
        yield waited


def _destroy_and_undefine(dom) -> List[str]:
    lv = _libvirt.libvirt
    done = []
    name = dom.name()
    try:
        if dom.isActive():
            dom.destroy()
            done.append("destroyed domain %s" % name)
    except lv.libvirtError as exc:
        raise VirtopsError("destroying domain %s failed: %s" % (name, exc))
    if _domains.undefine(dom):
        done.append("undefined domain %s" % name)
    return done


class Phase:
    """Shared plumbing of the phases on one host."""

    def __init__(self, params: MigrateParams, check_mode: bool,
                 rbd_cli: Optional[_rbd.RbdCli] = None):
        self.p = params
        self.check_mode = check_mode
        self.store = RecordStore(params.instances_path)
        self.result = PhaseResult(phase=params.phase)
        self.started = time.monotonic()
        self._qemu_img: Optional[QemuImg] = None
        self._transport: Optional[Transport] = None
        self._rbd_cli = rbd_cli

    @property
    def qemu_img(self) -> QemuImg:
        if self._qemu_img is None:
            self._qemu_img = QemuImg()
        return self._qemu_img

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = Transport(self.p.ssh, io_timeout=self.p.rsync_timeout)
        return self._transport

    def rbd_cli(self, mig: Optional[Migration] = None) -> _rbd.RbdCli:
        """This host's ``rbd`` (its Ceph settings). A migration whose disks are in Ceph needs
        them on every host it touches; without them the phase is refused naming what to give."""
        if self.p.backend != "rbd":
            raise VirtopsError(
                "%sthis host's backend is %s: give backend rbd and its rbd settings "
                "(virtops_image_backend, virtops_rbd)"
                % ("the disks of migration %s are rbd images in Ceph, but " % mig.id if mig else "",
                   self.p.backend), reason="images_type")
        if self._rbd_cli is None:
            self._rbd_cli = rbd_cli_for(VmImageParams(backend=self.p.backend, rbd=self.p.rbd))
        return self._rbd_cli

    def snapshot_step(self, done: str, planned: str, step: _rbd.SnapshotStep) -> None:
        """Report one step of the resize snapshot (and keep it in the result)."""
        if step.done:
            self.result.act("%s %s" % (planned if self.check_mode else done, step.spec))
        self.result.extra["resize_snapshot"] = {"snapshot": step.spec,
                                                "action": (planned if self.check_mode else done)
                                                if step.done else "none"}

    def domain_params(self, uuid: str, state: str, network_info: Optional[list]) -> DomainParams:
        p = self.p
        return DomainParams(uuid=uuid, state=state, instances_path=p.instances_path,
                            libvirt_uri=p.libvirt_uri, network_info=network_info or [],
                            nwfilter=p.nwfilter, firewall_driver=p.firewall_driver,
                            vif_plugging_timeout=p.vif_plugging_timeout,
                            shutdown_timeout=p.shutdown_timeout, retry_interval=p.retry_interval,
                            wait_for_console=p.wait_for_console if state == "running" else None,
                            console_timeout=p.console_timeout)

    def ensure_domain(self, conn, record: InstanceRecord, running: bool) -> dict:
        """Define from libvirt.xml, plug and start (or leave stopped); returns vm_domain's result."""
        manager = DomainManager(conn, self.domain_params(record.uuid,
                                                         "running" if running else "stopped",
                                                         record.network_info),
                                check_mode=self.check_mode)
        outcome = manager.ensure()
        for action in outcome.actions:
            self.result.act(action)
        self.result.warnings.extend(outcome.warnings)
        return outcome.as_module_result()

    def save(self, record: InstanceRecord, resize: bool = False) -> None:
        if not self.check_mode:
            self.store.save(record, resize=resize)

    def finish(self, msg: str, migration: Optional[Migration] = None,
               record: Optional[InstanceRecord] = None) -> PhaseResult:
        total = self.result.timings["total"] = time.monotonic() - self.started
        if migration is not None and self.result.changed and not self.check_mode:
            migration.timings[self.p.phase] = round(total, 3)
        self.result.msg = msg
        self.result.migration = migration.to_dict() if migration is not None else None
        if record is not None:
            if migration is not None and record.migration and \
                    record.migration.get("id") == migration.id:
                record.migration = migration.to_dict()
            self.result.instance = record.to_dict()
        self.result.after = self.result.instance
        return self.result

    def require_migration(self) -> Migration:
        if not self.p.migration:
            raise VirtopsError("phase %s needs migration (the dict the previous phase returned)"
                               % self.p.phase)
        return Migration.from_dict(self.p.migration)

    def migration_id(self) -> Optional[str]:
        if self.p.migration_id:
            return self.p.migration_id
        if self.p.migration:
            return self.p.migration.get("id")
        return None


# --------------------------------------------------------------------------- info

class InfoPhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        uuid = p.uuid
        if uuid is None:
            if not p.name:
                raise VirtopsError("phase info needs uuid or name")
            found = sorted({r.uuid for r in self.store.find_by_name(p.name)})
            if len(found) > 1:
                raise VirtopsError("more than one instance named %s on this host: %s"
                                   % (p.name, ", ".join(found)))
            uuid = found[0] if found else None
        live = self.store.load(uuid) if uuid else None
        resized = self.store.load(uuid, resize=True) if uuid else None
        domain = {"defined": False, "power_state": "absent"}
        if uuid and (live or resized):
            with _libvirt.connect(p.libvirt_uri) as conn:
                dom = _domains.find_domain(conn, uuid=uuid)
                domain = {"defined": dom is not None, "power_state": _domains.power_state(dom)}
        holds = []
        if live is not None:
            mig = live.migration or {}
            if mig.get("dest_host") == p.host and mig.get("status") not in ("confirmed", "reverted") \
                    and (not mig.get("claim_in_place") or resized is not None):
                holds.append("migration_destination")
            else:
                holds.append("instance")
        if resized is not None:
            holds.append("migration_source")
        self.result.extra = {"uuid": uuid, "resize_instance": resized.to_dict() if resized else None,
                             "domain": domain, "holds": holds, "host": p.host,
                             "instances_path": p.instances_path}
        migration = None
        for record in (live, resized):
            if record is not None and record.migration:
                migration = Migration.from_dict(record.migration)
                break
        msg = "nothing here" if not holds else "holds %s" % ", ".join(holds)
        return self.finish(msg, migration, live)


# --------------------------------------------------------------------------- prep

class PrepPhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        if not p.instance:
            raise VirtopsError("phase prep needs instance (the source's record, from phase info)")
        source = InstanceRecord.from_dict(p.instance)
        source_host = p.source_host or source.host
        if not source_host:
            raise VirtopsError("phase prep needs source_host")
        same_host = source_host == p.host
        old = source.flavor
        new = Flavor.from_dict(p.new_flavor) if p.new_flavor else old
        if source.vm_state not in MOVABLE_VM_STATES:
            raise VirtopsError("instance %s is %s: only active or stopped instances can be "
                               "migrated or resized" % (source.name, source.vm_state))
        if same_host and new == old:
            raise VirtopsError("Unable to migrate instance (%s) to current host (%s)."
                               % (source.uuid, p.host), reason="same_host")
        if same_host and not p.allow_same_host:
            raise VirtopsError("resizing %s on its own host %s is not allowed "
                               "(allow_same_host is false)" % (source.name, p.host),
                               reason="same_host")
        check_no_shrink(old, new)
        shared_disks = self._shared_block_storage(source, old, new)
        address = validate_address(p.address or p.host)
        source_address = validate_address(p.source_address or source_host)
        limits = Limits.from_dict(p.limits)
        capacity = host_capacity(p.instances_path, p.reserved_host_memory_mb,
                                 p.cpu_allocation_ratio, p.ram_allocation_ratio,
                                 p.disk_allocation_ratio)
        claims = ClaimManager(self.store, capacity)
        uuid = source.uuid
        with instance_lock(p.instances_path, uuid):
            existing = self.store.load(uuid)
            resized = self.store.load(uuid, resize=True)
            done = self._already_prepared(existing, source_host, new)
            if done is not None:
                return self.finish("already prepared", done, existing)
            if resized is not None:
                raise VirtopsError("%s has an open migration here (%s_resize exists): confirm "
                                   "or revert it first" % (source.name, uuid))
            in_place = existing is not None
            if in_place and not same_host and existing.host not in (source_host, None):
                raise VirtopsError(
                    "%s already has a directory on %s, recorded for host %s: a leftover of a "
                    "failed migration? Run phase revert_dest here, or delete it"
                    % (source.name, p.host, existing.host))
            if in_place:
                self._refuse_busy(existing)
            migration = Migration(
                id=p.migration_id or str(uuid_mod.uuid4()), instance_uuid=uuid,
                migration_type=migration_type(old, new), source_host=source_host,
                dest_host=p.host, source_address=source_address, dest_address=address,
                source_instances_path=p.source_instances_path or p.instances_path,
                dest_instances_path=p.instances_path, old_flavor=old.to_dict(),
                new_flavor=new.to_dict(), old_vm_state=source.vm_state, claim_in_place=in_place,
                shared_block_storage=shared_disks is not None, rbd=shared_disks)
            with self.result.timed("claim"):
                if in_place:
                    claims.resize_claim(uuid, new, limits, check_mode=self.check_mode)
                    record = self.store.load(uuid) if not self.check_mode else existing
                    record.new_flavor = new
                    record.old_vm_state = source.vm_state
                    record.migration = migration.to_dict()
                    record.set_state(task_state="resize_prep")
                    self.save(record)
                    self.result.act("claimed %s in place on the instance's record (%s)"
                                    % (new.name, "same host" if same_host else "shared storage"))
                else:
                    record = dest_record(source, migration, p.host)
                    claims.instance_claim(record, limits, check_mode=self.check_mode)
                    self.result.act("claimed %s for %s and created %s"
                                    % (new.name, source.name, self.store.instance_dir(uuid)))
        msg = "prepared %s of %s on %s" % (migration.migration_type, source.name, p.host)
        return self.finish(msg, migration, record)

    def _shared_block_storage(self, source: InstanceRecord, old: Flavor,
                              new: Flavor) -> Optional[dict]:
        """With rbd here: the instance's root disk must be in this host's pool (the same
        cluster and pool as the source's, so nothing is to be copied); the flavor is refused as
        at boot when it has disks rbd does not keep yet, and a shrink by the image's real size.
        Returns the cluster and pool the migration records, or None (local disks)."""
        if self.p.backend != "rbd":
            return None
        if new.ephemeral_gb or new.swap_mb:
            raise VirtopsError("flavor %s has an ephemeral or swap disk; with images_type rbd only "
                               "the root disk and the config drive are supported so far" % new.name)
        cli = self.rbd_cli()
        root = cli.info(_rbd.root_name(source.uuid))
        if root is None:
            raise VirtopsError(
                "%s is not in this host's pool (%s): the destination must use the source's Ceph "
                "cluster and pool, where the disks stay" % (cli.spec(_rbd.root_name(source.uuid)),
                                                            cli.settings.pool),
                reason="not_shared")
        check_no_shrink(old, new, root.size)
        self.result.act("found %s (%d bytes) in this host's pool: the disks stay in Ceph"
                        % (cli.spec(root.name), root.size))
        return {"fsid": cli.fsid(), "pool": cli.settings.pool}

    def _already_prepared(self, existing: Optional[InstanceRecord], source_host: str,
                          new: Flavor) -> Optional[Migration]:
        if existing is None or not existing.migration:
            return None
        mig = Migration.from_dict(existing.migration)
        if mig.status in ("confirmed", "reverted", "error") or mig.dest_host != self.p.host:
            return None
        if self.p.migration_id:
            return mig if mig.id == self.p.migration_id else None
        if mig.source_host == source_host and Flavor.from_dict(mig.new_flavor) == new:
            return mig
        return None

    @staticmethod
    def _refuse_busy(record: InstanceRecord) -> None:
        mig = record.migration or {}
        if record.task_state is not None or mig.get("status") in (
                "pre-migrating", "migrating", "post-migrating", "finished"):
            raise VirtopsError("instance %s is busy (task_state %s, migration %s): let it finish, "
                               "or confirm or revert it" % (record.name, record.task_state,
                                                            mig.get("status")))


# --------------------------------------------------------------------------- migrate

class MigratePhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        mig = self.require_migration()
        if mig.source_host != p.host:
            raise VirtopsError("phase migrate runs on the source %s, not on %s"
                               % (mig.source_host, p.host))
        uuid = mig.instance_uuid
        store = self.store
        with instance_lock(p.instances_path, uuid):
            resized = store.load(uuid, resize=True)
            live = store.load(uuid)
            if resized is not None:
                if _same_migration(resized, mig.id) and resized.migration["status"] in (
                        "post-migrating", "finished", "confirmed"):
                    done = Migration.from_dict(resized.migration)
                    return self.finish("already migrated", done, resized)
                raise VirtopsError(
                    "%s_resize exists (migration %s, status %s): a migration of this instance "
                    "is open or stopped half-way; revert it (revert_dest on %s, then "
                    "revert_source here)" % (uuid, (resized.migration or {}).get("id"),
                                             (resized.migration or {}).get("status"),
                                             (resized.migration or {}).get("dest_host")))
            if live is None:
                raise VirtopsError("instance %s is not on this host (%s)" % (uuid, p.host))
            self._check_movable(live, mig)
            old, new = Flavor.from_dict(mig.old_flavor), Flavor.from_dict(mig.new_flavor)
            inst_dir = store.instance_dir(uuid)
            formats = disk_formats(inst_dir)
            root_size = None
            if mig.shared_block_storage or p.backend == "rbd":
                root_size = self._check_shared_disks(live, mig)
            elif ROOT_DISK in formats and os.path.exists(os.path.join(inst_dir, ROOT_DISK)):
                root_size = self.qemu_img.info(os.path.join(inst_dir, ROOT_DISK),
                                               formats[ROOT_DISK]).virtual_size
            check_no_shrink(old, new, root_size)
            if self.check_mode:
                return self._plan(live, mig, inst_dir, formats)
            if mig.same_host:
                return self._migrate(live, mig, inst_dir, formats)
            with ExitStack() as stack:
                with self.result.timed("ssh_connect"):
                    stack.enter_context(self.transport.session(mig.dest_address))
                return self._migrate(live, mig, inst_dir, formats)

    def _check_movable(self, live: InstanceRecord, mig: Migration) -> None:
        if live.vm_state not in MOVABLE_VM_STATES:
            raise VirtopsError("instance %s is %s: only active or stopped instances can be "
                               "migrated" % (live.name, live.vm_state))
        if _same_migration(live, mig.id) and live.migration.get("status") in ("error", "reverted"):
            raise VirtopsError("migration %s of %s already ended (%s): prepare a new one"
                               % (mig.id, live.name, live.migration.get("status")))
        ours = mig.claim_in_place and _same_migration(live, mig.id)
        if live.task_state is not None and not (ours and live.task_state == "resize_prep"):
            raise VirtopsError("instance %s is busy (task_state %s)" % (live.name, live.task_state))
        if Flavor.from_dict(mig.old_flavor) != live.flavor:
            raise VirtopsError("instance %s has flavor %s now, not %s as prepared: prepare again"
                               % (live.name, live.flavor.name, mig.old_flavor.get("name")))

    def _check_shared_disks(self, live: InstanceRecord, mig: Migration) -> int:
        """rbd on this host: the destination must keep its disks in the same cluster and pool
        (Nova converts neither way between rbd and local disks), the root disk must be there,
        and no ``nova-resize`` snapshot may be left from an earlier move (it would be taken
        for this one's way back). Returns the root disk's size. Nothing has changed yet."""
        if not mig.shared_block_storage:
            raise VirtopsError(
                "%s keeps its disks in Ceph (images_type rbd here) but the destination %s keeps "
                "them locally: moving between rbd and local disks is not supported"
                % (live.name, mig.dest_host), reason="images_type")
        cli = self.rbd_cli(mig)
        wanted = dict(mig.rbd or {})
        here = {"fsid": cli.fsid(), "pool": cli.settings.pool}
        if wanted != here:
            raise VirtopsError(
                "%s's disks are in pool %s of cluster %s here, but the destination %s uses pool "
                "%s of cluster %s: the disks would have to be copied between pools, which is not "
                "supported" % (live.name, here["pool"], here["fsid"], mig.dest_host,
                               wanted.get("pool"), wanted.get("fsid")), reason="not_shared")
        name = _rbd.root_name(live.uuid)
        root = cli.info(name)
        if root is None:
            raise VirtopsError("%s has no root disk %s" % (live.name, cli.spec(name)))
        if _rbd.RESIZE_SNAPSHOT in cli.snapshots(name):
            raise VirtopsError(
                "%s has a snapshot %s left from a move that was never confirmed or reverted; "
                "it would be taken for this move's way back. Remove it (rbd snap rm %s) if the "
                "disk as it is now is the one to keep"
                % (cli.spec(name), _rbd.RESIZE_SNAPSHOT,
                   _rbd.resize_snapshot_spec(cli, live.uuid)), reason="stale_snapshot")
        return root.size

    def _plan(self, live, mig, inst_dir, formats) -> PhaseResult:
        result = self.result
        dest = "locally (same host)" if mig.same_host else "to %s" % mig.dest_host
        if not mig.same_host:
            result.act("test for shared instance storage with %s" % mig.dest_host)
        result.act("power off domain %s (clean, then hard after %ss)"
                   % (live.name, self.p.shutdown_timeout))
        result.act("unplug VIFs of %s" % live.name)
        result.act("rename %s to %s_resize" % (inst_dir, inst_dir))
        if mig.shared_block_storage:
            result.act("leave the disks in Ceph pool %s (shared block storage): no disk is copied"
                       % (mig.rbd or {}).get("pool"))
        for group, compress in transfer_groups(inst_dir, formats,
                                               disks=not mig.shared_block_storage):
            result.act("copy %s %s%s" % (", ".join(os.path.basename(g) for g in group), dest,
                                         " compressed" if compress else ""))
        return self.finish("would migrate %s to %s" % (live.name, mig.dest_host), mig, live)

    def _migrate(self, live: InstanceRecord, mig: Migration, inst_dir: str,
                 formats: Dict[str, str]) -> PhaseResult:
        p, store, result = self.p, self.store, self.result
        resize_dir = store.instance_dir(mig.instance_uuid, resize=True)
        dest_dir = os.path.join(mig.dest_instances_path, mig.instance_uuid)
        with self.result.timed("shared_storage_test"):
            if mig.same_host:
                shared = True
            else:
                shared = self.transport.is_storage_shared(mig.dest_address,
                                                          mig.dest_instances_path,
                                                          p.instances_path)
                result.act("tested for shared storage with %s: %s"
                           % (mig.dest_host, "shared" if shared else "not shared"))
        if shared != mig.claim_in_place:
            raise VirtopsError(
                "the instance storage is %s with %s, but prep saw %s: prepare again"
                % ("shared" if shared else "not shared", mig.dest_host,
                   "the instance's own directory there" if mig.claim_in_place
                   else "no directory there"))
        if not shared:
            with self.result.timed("remote_dir"):
                claimed = self.transport.remote(
                    mig.dest_address, ["test", "-f", os.path.join(dest_dir, RECORD)],
                    "looking for the destination's claim", check=False)
                if claimed.rc != 0:
                    raise VirtopsError("%s holds no claim for %s (no %s/%s): run phase prep "
                                       "there first" % (mig.dest_host, live.name, dest_dir,
                                                        RECORD))
                self.transport.make_dir(mig.dest_address, dest_dir)
        mig.shared_storage = shared
        mig.set_status("migrating")
        before = live.to_dict()
        result.before = before
        live.migration = mig.to_dict()
        live.old_vm_state = mig.old_vm_state
        live.set_state(task_state="resize_migrating")
        store.save(live)
        state = _Progress()
        try:
            self._move(live, mig, inst_dir, resize_dir, dest_dir, formats, shared, state)
        except BaseException as exc:
            reason = exc.msg if isinstance(exc, VirtopsError) else "%s: %s" % (
                type(exc).__name__, exc)
            steps = self._rollback(mig, inst_dir, resize_dir, dest_dir, shared, state, reason)
            if not isinstance(exc, Exception):
                raise
            raise VirtopsError(
                "cold migration of %s to %s failed and was rolled back: %s"
                % (live.name, mig.dest_host, reason), rollback=steps,
                migration=mig.to_dict(), timings=rounded(result.timings))
        record = store.load(mig.instance_uuid, resize=True)
        result.extra = {"transfer": mig.transfer, "bytes_sent": mig.bytes_sent,
                        "allocated_bytes": mig.allocated_bytes, "shared_storage": shared,
                        "shared_block_storage": mig.shared_block_storage,
                        "power_off": mig.power_off}
        done = self.finish("migrated %s to %s" % (live.name, mig.dest_host), mig, record)
        record.migration = mig.to_dict()
        store.save(record, resize=True)
        return done

    def _move(self, live: InstanceRecord, mig: Migration, inst_dir: str, resize_dir: str,
              dest_dir: str, formats: Dict[str, str], shared: bool, state: "_Progress") -> None:
        p, store, result = self.p, self.store, self.result
        with _libvirt.connect(p.libvirt_uri) as conn:
            dom = _domains.find_domain(conn, uuid=mig.instance_uuid)
            manager = DomainManager(conn, self.domain_params(mig.instance_uuid, "stopped",
                                                             live.network_info))
            state.was_running = _domains.power_state(dom) in ("running", "paused")
            if dom is not None and dom.isActive():
                with self.result.timed("power_off"):
                    mig.power_off_at = time.time()
                    off = manager.power_off(dom)
                    mig.power_off = {"method": off.method, "acpi_requests": off.acpi_requests,
                                     "seconds": round(off.seconds, 2), "reason": off.reason}
                result.act("powered off domain %s (%s)" % (live.name, off.method))
            with self.result.timed("unplug"):
                manager.unplug_vifs()
                state.unplugged = True
                if manager.result.actions:
                    result.act("unplugged VIFs: %s" % "; ".join(manager.result.actions))
            manager.close()
        os.rename(inst_dir, resize_dir)
        state.renamed = True
        result.act("renamed %s to %s" % (inst_dir, resize_dir))
        if shared:
            os.makedirs(inst_dir, mode=0o700)
            state.new_dir = True
            qemu_directory(inst_dir)
        report = TransferReport()
        target = inst_dir + "/" if shared else remote_spec(mig.dest_address, dest_dir + "/")
        progress = store.load(mig.instance_uuid, resize=True)
        with self.result.timed("copy"):
            for group, compress in transfer_groups(resize_dir, formats,
                                                   disks=not mig.shared_block_storage):
                copied = self.transport.copy(group, target, compress, remote=not shared)
                report.copies.append(copied)
                report.allocated_bytes += sum(allocated_bytes(path) for path in group)
                mig.transfer = report.to_dict()
                progress.migration = mig.to_dict()
                store.save(progress, resize=True)  # progress, visible to phase info
                result.act("copied %s to %s (%d bytes sent)"
                           % (", ".join(copied.files), "local" if shared else mig.dest_host,
                              copied.bytes_sent))
        mig.bytes_sent = report.bytes_sent
        mig.allocated_bytes = report.allocated_bytes
        mig.transfer = report.to_dict()
        mig.set_status("post-migrating")
        source_copy = store.load(mig.instance_uuid, resize=True)
        source_copy.new_flavor = None          # the new flavor is the destination's claim
        source_copy.migration = mig.to_dict()
        source_copy.set_state(task_state="resize_migrated")
        if shared:
            target_record = dest_record(source_copy, mig, mig.dest_host)
            target_record.migration = mig.to_dict()
            target_record.set_state(task_state="resize_migrated")
            store.save(target_record)
        store.save(source_copy, resize=True)

    def _rollback(self, mig: Migration, inst_dir: str, resize_dir: str, dest_dir: str,
                  shared: bool, state: "_Progress", reason: str) -> List[str]:
        """Undo a failed migrate on the source: Nova's _cleanup_remote_migration and more."""
        steps: List[str] = []

        def attempt(description: str, action) -> None:
            try:
                action()
                steps.append(description)
            except (VirtopsError, OSError) as exc:
                steps.append("FAILED to %s: %s" % (description, getattr(exc, "msg", exc)))

        if not shared:
            attempt("remove %s on %s (the destination's copy and claim)" % (dest_dir, mig.dest_host),
                    lambda: self.transport.remove_instance_dir(mig.dest_address, dest_dir))
            if steps[-1].startswith("FAILED"):
                steps[-1] += "; run phase revert_dest on %s" % mig.dest_host
        if state.renamed:
            if state.new_dir and os.path.isdir(inst_dir):
                attempt("remove the partial copy %s" % inst_dir, lambda: shutil.rmtree(inst_dir))
            attempt("rename %s back to %s" % (resize_dir, inst_dir),
                    lambda: os.rename(resize_dir, inst_dir))
        record = self.store.load(mig.instance_uuid)
        if record is not None:
            mig.set_status("error", error=reason)
            record.new_flavor = None
            record.old_vm_state = None
            record.migration = mig.to_dict()
            record.set_state(mig.old_vm_state, None,
                             reason="cold migration to %s failed and was rolled back: %s"
                             % (mig.dest_host, reason))
            attempt("record the failure in %s" % self.store.path(mig.instance_uuid),
                    lambda: self.store.save(record))
            if state.was_running or state.unplugged:
                def restart():
                    with _libvirt.connect(self.p.libvirt_uri) as conn:
                        manager = DomainManager(conn, self.domain_params(
                            mig.instance_uuid, "running" if state.was_running else "stopped",
                            record.network_info))
                        if not state.was_running:
                            manager.plug_vifs()
                        else:
                            manager.ensure()
                attempt("plug the VIFs and start %s again" % record.name if state.was_running
                        else "plug the VIFs of %s again" % record.name, restart)
        return steps


@dataclass
class _Progress:
    was_running: bool = False
    unplugged: bool = False
    renamed: bool = False
    new_dir: bool = False


# --------------------------------------------------------------------------- finish

class FinishPhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        given = self.require_migration()
        if given.dest_host != p.host:
            raise VirtopsError("phase finish runs on the destination %s, not on %s"
                               % (given.dest_host, p.host))
        uuid = given.instance_uuid
        with instance_lock(p.instances_path, uuid):
            record = self.store.load(uuid)
            if record is None or not _same_migration(record, given.id):
                raise VirtopsError("%s holds no destination copy of migration %s: run prep and "
                                   "migrate first" % (p.host, given.id))
            mig = Migration.from_dict(record.migration)
            if mig.status in ("confirmed", "reverted"):
                return self.finish("migration already %s" % mig.status, mig, record)
            if mig.status not in ("finished", "error") and given.status != "post-migrating" \
                    and mig.status != "post-migrating":
                raise VirtopsError("the source has not finished copying (migration %s): run "
                                   "phase migrate on %s first" % (given.status, mig.source_host))
            if mig.claim_in_place and not os.path.isdir(self.store.instance_dir(uuid, True)):
                raise VirtopsError("%s_resize is missing: the source copy is gone" % uuid)
            for key in ("status", "shared_storage", "power_off_at", "power_off", "bytes_sent",
                        "allocated_bytes", "transfer"):
                if mig.status not in ("finished", "error") and getattr(given, key) is not None:
                    setattr(mig, key, getattr(given, key))
            mig.timings.update({k: v for k, v in given.timings.items() if k not in mig.timings})
            self.result.before = record.to_dict()
            try:
                self._finish(record, mig)
            except VirtopsError as exc:
                if not self.check_mode:
                    mig.set_status("error", error=exc.msg)
                    record.migration = mig.to_dict()
                    record.set_state("error", None, reason="finishing the migration from %s "
                                     "failed: %s" % (mig.source_host, exc.msg))
                    self.store.save(record)
                raise VirtopsError("finishing %s on %s failed (vm_state is error now; revert "
                                   "it with revert_dest here and revert_source on %s): %s"
                                   % (record.name, p.host, mig.source_host, exc.msg),
                                   migration=mig.to_dict(), **{k: v for k, v in exc.details.items()
                                                               if k != "migration"})
        return self.finish("%s of %s finished on %s" % (mig.migration_type, record.name, p.host),
                           mig, record)

    def _finish(self, record: InstanceRecord, mig: Migration) -> None:
        p, result = self.p, self.result
        new = Flavor.from_dict(mig.new_flavor)
        inst_dir = self.store.instance_dir(record.uuid)
        if mig.status != "finished":
            record.set_state(task_state="resize_finish")
            self.save(record)
        with self.result.timed("disks"):
            if mig.shared_block_storage:
                formats, base = self._shared_disks(record, mig, new, inst_dir), None
            else:
                formats, base = self._disks(record, mig, new, inst_dir)
        with self.result.timed("xml"):
            xml = self._xml(record, new, inst_dir, formats, mig)
        running = mig.old_vm_state != "stopped"
        with self.result.timed("domain"):
            if self.check_mode and xml:
                domain = {}
                result.act("define domain %s from the new %s%s" % (
                    record.name, DOMAIN_XML, " and start it" if running else ""))
            else:
                with _libvirt.connect(p.libvirt_uri) as conn:
                    domain = self.ensure_domain(conn, record, running)
        self.result.extra.update({"disks": formats, "image_base": base, "xml_changed": xml,
                                  "domain": domain})
        if mig.status != "finished":
            mig.set_status("finished")
            mig.finished_at = None if self.check_mode else round(time.time(), 3)
            if running and not self.check_mode:
                mig.running_at = time.time()
                if mig.power_off_at:
                    mig.downtime_seconds = round(mig.running_at - mig.power_off_at, 3)
            record.flavor = new
            record.image_base = base
            record.host = p.host
            record.migration = mig.to_dict()
            record.set_state("resized", None)
            result.act("recorded vm_state resized, migration finished")
            self.save(record)
        result.extra["downtime_seconds"] = mig.downtime_seconds

    # -- disks ---------------------------------------------------------------------------
    def _shared_disks(self, record: InstanceRecord, mig: Migration, new: Flavor,
                      inst_dir: str) -> Dict[str, str]:
        """The disks in Ceph, where the source left them (Nova's ``finish_migration`` with rbd):
        the snapshot ``nova-resize`` of the root disk first (the way back, ``_create_image``
        while the task is ``resize_finish``), then the image grown to the new root_gb (never
        shrunk: ``Rbd.create_image`` grows only), and ``disk.info`` with this host's paths.
        The config drive is the one in the pool (built once, as at boot)."""
        cli = self.rbd_cli(mig)
        name = _rbd.root_name(record.uuid)
        root = cli.info(name)
        if root is None:
            raise VirtopsError("%s is not in this host's pool: the source's disks are not "
                               "shared with %s" % (cli.spec(name), self.p.host))
        formats = disk_formats(inst_dir)
        formats[ROOT_DISK] = "raw"
        self.snapshot_step("took snapshot", "would take snapshot",
                           _rbd.take_resize_snapshot(cli, record.uuid, self.check_mode))
        iso = str((record.image or {}).get("disk_format", "")).lower() == "iso"
        wanted = 0 if iso else new.root_gb * GIB
        if wanted > root.size:
            self.result.act("%s %s from %d to %d bytes" % ("would grow" if self.check_mode else "grew",
                                                           cli.spec(name), root.size, wanted))
            if not self.check_mode:
                cli.resize(name, wanted)
        self.result.extra["rbd"] = {"root": cli.spec(name), "size": max(root.size, wanted)}
        if write_disk_info(inst_dir, formats, self.check_mode):
            self.result.act("write %s/%s for this host" % (inst_dir, DISK_INFO))
        return formats

    def _disks(self, record: InstanceRecord, mig: Migration, new: Flavor,
               inst_dir: str) -> Tuple[Dict[str, str], Optional[str]]:
        """The copied disks made right for this host and the new flavor, through the storage
        layer: bases adopted by this host's image cache, disks grown and made by the disk
        builder (Nova's finish_migration: _create_image with the new flavor's sizes)."""
        formats = disk_formats(inst_dir)
        if ROOT_DISK not in formats:
            raise VirtopsError("%s/%s does not name the root disk" % (inst_dir, DISK_INFO))
        cache = ImageCache(self.p.instances_path, self.qemu_img, force_raw=self.p.force_raw_images,
                           policy=FetchPolicy.build(self.p.image_roots, self.p.download_max_bytes))
        builder = DiskBuilder(cache, self.qemu_img)
        backend = backend_for_format(formats[ROOT_DISK])
        image_base = None
        # An ISO boots as a cdrom: the image as it is, never grown (as vm_image builds it).
        iso = str((record.image or {}).get("disk_format", "")).lower() == "iso"
        root_size = 0 if iso else new.root_gb * GIB
        for name, size in ((ROOT_DISK, root_size), (EPHEMERAL_DISK, new.ephemeral_gb * GIB)):
            path = os.path.join(inst_dir, name)
            if name not in formats:
                continue
            if not os.path.isfile(path):
                raise VirtopsError("%s is missing: the copy from %s is incomplete"
                                   % (path, mig.source_host))
            base = self._backing(record, mig, cache, builder, path, formats[name])
            if name == ROOT_DISK:
                image_base = base
            grown = builder.grow(inst_dir, name, formats[name], size, self.check_mode)
            if grown.previous_size is not None:
                self.result.act("grow %s from %d to %d bytes" % (name, grown.previous_size, size))
        if new.ephemeral_gb and EPHEMERAL_DISK not in formats:
            formats[EPHEMERAL_DISK] = self._create(
                builder, inst_dir, builder.ephemeral_plan(new.ephemeral_gb, backend, self.check_mode))
        swap = os.path.join(inst_dir, SWAP_DISK)
        if os.path.lexists(swap) and not self._swap_current(swap, formats.get(SWAP_DISK),
                                                            new.swap_mb):
            self.result.act("remove %s (swap is re-created at its new size)" % SWAP_DISK)
            if not self.check_mode:
                os.unlink(swap)
        formats.pop(SWAP_DISK, None)
        if new.swap_mb:
            if not os.path.lexists(swap) or self.check_mode:
                self._create(builder, inst_dir,
                             builder.swap_plan(new.swap_mb, backend, self.check_mode))
            formats[SWAP_DISK] = BACKEND_FORMATS[backend]
        if os.path.isfile(os.path.join(inst_dir, CONFIG_DRIVE)):
            formats.setdefault(CONFIG_DRIVE, "raw")
        if write_disk_info(inst_dir, formats, self.check_mode):
            self.result.act("write %s/%s for this host" % (inst_dir, DISK_INFO))
        return formats, image_base

    def _swap_current(self, path: str, fmt: Optional[str], swap_mb: int) -> bool:
        if not swap_mb or not fmt:
            return False
        info = self.qemu_img.info(path, fmt)
        backing_ok = fmt != "qcow2" or (info.backing_filename or "").startswith(
            InstanceLayout(self.p.instances_path).base_dir + "/")
        return info.virtual_size == swap_mb * MIB and backing_ok

    def _create(self, builder: DiskBuilder, inst_dir: str, plan: DiskPlan) -> str:
        """Make a missing disk with the disk builder; returns its format (for disk.info)."""
        state = builder.ensure(inst_dir, plan, self.check_mode)
        if state.action != "unchanged":
            self.result.act("%s %s (%d bytes)" % (state.action.replace("would ", ""), plan.name,
                                                  plan.size))
        return plan.format

    def _backing(self, record: InstanceRecord, mig: Migration, cache: ImageCache,
                 builder: DiskBuilder, path: str, fmt: str) -> Optional[str]:
        """Make the disk's base present in this host's cache and point the disk at it."""
        info = self.qemu_img.info(path, fmt)
        if info.format != fmt:
            raise VirtopsError("%s is %s, but disk.info says %s" % (path, info.format, fmt))
        if info.data_file:
            raise VirtopsError("%s refers to an external data file %s: refused"
                               % (path, info.data_file))
        if not info.backing_filename:
            return None
        backing = info.backing_filename
        name = os.path.basename(backing)
        allowed = {InstanceLayout(mig.source_instances_path).base_dir, cache.base_dir}
        if os.path.dirname(backing) not in allowed:
            raise VirtopsError("%s is backed by %s, outside the image caches of %s and %s: "
                               "refused" % (path, backing, mig.source_host, mig.dest_host))
        local = os.path.join(cache.base_dir, name)
        if not os.path.isfile(local):
            with self.result.timed("base_image"):
                self._obtain_base(record, mig, cache, name, info.backing_format)
        if backing != local:
            self.result.act("rebase %s onto %s" % (os.path.basename(path), local))
            if not self.check_mode:
                builder.rebase(path, local, info.backing_format or cache.recorded_format(name)
                               or "raw")
        return local

    def _obtain_base(self, record: InstanceRecord, mig: Migration, cache: ImageCache, name: str,
                     backing_format: Optional[str]) -> None:
        try:
            source = ImageSource.from_dict(record.image) if record.image else None
        except VirtopsError:
            source = None
        if source is not None and source.base_name == name:
            if self.check_mode:
                self.result.act("fetch image %s into %s" % (source.id, cache.base_dir))
                return
            try:
                cached = cache.ensure(source)
                self.result.act("fetched image %s into %s" % (source.id, cached.path))
                self.result.extra["base_source"] = "image"
                return
            except VirtopsError as exc:
                self.result.warnings.append("fetching image %s failed (%s); copying the base "
                                            "from %s instead" % (source.url, exc.msg,
                                                                 mig.source_host))
        self.result.act("copy base %s from %s" % (name, mig.source_host))
        if self.check_mode:
            return
        self._copy_base(mig, cache, name, backing_format)

    def _copy_base(self, mig: Migration, cache: ImageCache, name: str,
                   backing_format: Optional[str]) -> None:
        """Copy the base from the source host's cache into this one's (ImageCache.adopt: the
        lock, ``.part``, inspection, permissions and rename of a download)."""
        remote_base = InstanceLayout(mig.source_instances_path).base_path(name)

        def pull(part: str, info_part: str) -> None:
            if mig.same_host:
                raise VirtopsError("base %s is missing on this host" % cache.layout.base_path(name))
            with self.transport.session(mig.source_address):
                self.transport.pull(mig.source_address, remote_base, part)
                try:
                    self.transport.pull(mig.source_address, remote_base + INFO_SUFFIX, info_part)
                except VirtopsError:
                    if os.path.exists(info_part):
                        os.unlink(info_part)   # no description: the disk's backing format

        adopted = cache.adopt(name, pull, declared_format=backing_format)
        if adopted.fetched:
            self.result.extra["base_source"] = "copied from %s" % mig.source_host

    # -- xml -----------------------------------------------------------------------------
    def _xml(self, record: InstanceRecord, new: Flavor, inst_dir: str,
             formats: Dict[str, str], mig: Migration) -> bool:
        image = dict(record.image or {})
        image_id = image.get("id")
        if not image_id:
            try:
                image_id = ImageSource.from_dict(image).id
            except VirtopsError:
                image_id = "unknown"
        config = os.path.join(inst_dir, CONFIG_DRIVE)
        rbd: dict = {}
        if mig.shared_block_storage:
            # The config drive is <uuid>_disk.config in the pool; its format is the one the
            # copied definition attached (cdrom: iso9660, disk: vfat).
            has_config = CONFIG_DRIVE in formats
            config_format = recorded_config_drive_format(inst_dir) if has_config else "iso9660"
            rbd = {"rbd": self.p.rbd, "rbd_monitors": self.rbd_cli(mig).monitors()}
        else:
            has_config = os.path.isfile(config)
            config_format = (detect_format(config) or "iso9660") if has_config else "iso9660"
        params = VmXmlParams(
            instance=recorded_identity(inst_dir, record),
            flavor=new.to_dict(),
            image={"id": image_id, "name": image.get("name"),
                   "disk_format": image.get("disk_format"),
                   "properties": image.get("properties") or {}},
            network_info=record.network_info or [], disk_formats=dict(formats),
            instances_path=self.p.instances_path, virt_type=self.p.virt_type,
            state_dir=self.p.state_dir, libvirt_uri=self.p.libvirt_uri,
            config_drive=has_config, config_drive_format=config_format,
            vnc_listen=self.p.vnc_listen, nwfilter=self.p.nwfilter,
            firewall_driver=self.p.firewall_driver, **rbd)
        outcome = ensure_libvirt_xml(params, check_mode=self.check_mode)
        if outcome.changed:
            self.result.act("write %s with flavor %s" % (outcome.path, new.name))
        return outcome.changed


# --------------------------------------------------------------------------- confirm

class ConfirmPhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        uuid = p.uuid or (p.migration or {}).get("instance_uuid")
        if not uuid:
            raise VirtopsError("phase confirm needs uuid (or migration)")
        validate_uuid(uuid)
        wanted = self.migration_id()
        mig = None
        with instance_lock(p.instances_path, uuid):
            resized = self.store.load(uuid, resize=True)
            live = self.store.load(uuid)
            if resized is not None and resized.migration and \
                    (not wanted or resized.migration.get("id") == wanted) and \
                    resized.migration.get("source_host") == p.host:
                mig = self._confirm_source(resized, live)
            if live is not None and live.migration and \
                    (not wanted or live.migration.get("id") == wanted) and \
                    live.migration.get("dest_host") == p.host and live.host == p.host:
                mig = self._confirm_dest(live) or mig
        if mig is None:
            return self.finish("nothing to confirm here", None, live)
        msg = "confirmed" if self.result.changed else "already confirmed"
        return self.finish(msg, mig, live)

    def _confirm_source(self, resized: InstanceRecord, live: Optional[InstanceRecord]) -> Migration:
        mig = Migration.from_dict(resized.migration)
        if mig.status != "post-migrating":
            raise VirtopsError("cannot confirm: the source copy's migration is %s, not "
                               "post-migrating; revert it instead" % mig.status)
        if mig.same_host:
            dest_status = (live.migration or {}).get("status") if live is not None else None
        else:
            dest_status = (self.p.migration or {}).get("status")
        if dest_status not in ("finished", "confirmed"):
            raise VirtopsError(
                "cannot confirm: the destination %s reports migration status %s, not finished. "
                "Pass migration as phase info on %s returns it; a failed finish must be reverted"
                % (mig.dest_host, dest_status, mig.dest_host))
        resize_dir = self.store.instance_dir(resized.uuid, resize=True)
        if not mig.same_host:
            with self.result.timed("domain"):
                with _libvirt.connect(self.p.libvirt_uri) as conn:
                    dom = _domains.find_domain(conn, uuid=resized.uuid)
                    if dom is not None:
                        if dom.isActive():
                            self.result.warnings.append(
                                "the source domain %s was running; it is destroyed now that the "
                                "resize is confirmed" % resized.name)
                        if self.check_mode:
                            self.result.act("undefine the source domain %s" % resized.name)
                        else:
                            for done in _destroy_and_undefine(dom):
                                self.result.act(done)
                    manager = DomainManager(conn, self.domain_params(
                        resized.uuid, "stopped", resized.network_info), check_mode=self.check_mode)
                    manager.unplug_vifs()
                    for action in manager.result.actions:
                        self.result.act(action)
        if mig.shared_block_storage:
            # Nova's _cleanup_resize with rbd: the way back goes before the directory that
            # says a revert is possible, so a crash in between is finished by a re-run.
            self.snapshot_step("removed snapshot", "would remove snapshot",
                               _rbd.drop_resize_snapshot(self.rbd_cli(mig), resized.uuid,
                                                         self.check_mode))
        self.result.act("remove %s (the source's claim)" % resize_dir)
        if not self.check_mode:
            shutil.rmtree(resize_dir)
        return mig

    def _confirm_dest(self, live: InstanceRecord) -> Optional[Migration]:
        mig = Migration.from_dict(live.migration)
        if mig.status == "confirmed":
            return mig
        if mig.status != "finished":
            raise VirtopsError("cannot confirm %s: its migration is %s here, not finished; revert "
                               "it instead" % (live.name, mig.status))
        if mig.shared_block_storage and not os.path.isdir(self.store.instance_dir(live.uuid, True)):
            # The source's confirm removed it already; this covers a source that is gone.
            self.snapshot_step("removed snapshot", "would remove snapshot",
                               _rbd.drop_resize_snapshot(self.rbd_cli(mig), live.uuid,
                                                         self.check_mode))
        if mig.claim_in_place and os.path.isdir(self.store.instance_dir(live.uuid, True)) \
                and not self.check_mode:
            raise VirtopsError("%s_resize still exists: confirm on the source %s first"
                               % (live.uuid, mig.source_host))
        with _libvirt.connect(self.p.libvirt_uri) as conn:
            power = _domains.power_state(_domains.find_domain(conn, uuid=live.uuid))
        self.result.before = live.to_dict()
        mig.set_status("confirmed")
        live.migration = mig.to_dict()
        live.old_flavor = None
        live.new_flavor = None
        live.old_vm_state = None
        live.set_state("active" if power in ("running", "paused") else "stopped", None)
        self.result.act("recorded migration confirmed, vm_state %s" % live.vm_state)
        self.save(live)
        return mig


# --------------------------------------------------------------------------- revert

class RevertDestPhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        uuid = p.uuid or (p.migration or {}).get("instance_uuid")
        if not uuid:
            raise VirtopsError("phase revert_dest needs uuid (or migration)")
        validate_uuid(uuid)
        wanted = self.migration_id()
        inst_dir = self.store.instance_dir(uuid)
        with instance_lock(p.instances_path, uuid):
            live = self.store.load(uuid)
            resized = self.store.load(uuid, resize=True)
            if live is None:
                return self._leftover(inst_dir, resized)
            if not live.migration or (wanted and live.migration.get("id") != wanted):
                return self.finish("no migration %s here" % (wanted or ""), None, live)
            mig = Migration.from_dict(live.migration)
            if mig.dest_host != p.host:
                return self.finish("%s is not the destination of migration %s"
                                   % (p.host, mig.id), mig, live)
            if mig.status == "confirmed":
                raise VirtopsError("migration %s of %s is confirmed: it cannot be reverted"
                                   % (mig.id, live.name))
            if mig.status == "reverted":
                return self.finish("already reverted", mig, live)
            self.result.before = live.to_dict()
            dest_copy = not mig.claim_in_place or resized is not None
            if not dest_copy:
                # Same host or shared storage, never moved (or rolled back): drop the claim.
                live.new_flavor = None
                live.old_vm_state = None
                mig.set_status("reverted")
                live.migration = mig.to_dict()
                live.set_state(task_state=None)
                self.result.act("released the in-place claim of %s on %s"
                                % (mig.new_flavor.get("name"), live.name))
                self.save(live)
                return self.finish("reverted", mig, live)
            live.set_state(task_state="resize_reverting")
            self.save(live)
            with self.result.timed("domain"):
                with _libvirt.connect(p.libvirt_uri) as conn:
                    dom = _domains.find_domain(conn, uuid=uuid)
                    if dom is not None:
                        if self.check_mode:
                            self.result.act("destroy and undefine domain %s" % live.name)
                        else:
                            for done in _destroy_and_undefine(dom):
                                self.result.act(done)
                    manager = DomainManager(conn, self.domain_params(uuid, "stopped",
                                                                     live.network_info),
                                            check_mode=self.check_mode)
                    manager.unplug_vifs()
                    for action in manager.result.actions:
                        self.result.act(action)
            self.result.act("remove %s (the destination's copy and claim)" % inst_dir)
            if not self.check_mode:
                shutil.rmtree(inst_dir)
            mig.set_status("reverted")
        return self.finish("reverted on the destination", mig, None)

    def _leftover(self, inst_dir: str, resized: Optional[InstanceRecord]) -> PhaseResult:
        """A directory without a record: what a copy interrupted before prep's record left."""
        if resized is None and os.path.isdir(inst_dir) and not os.listdir(inst_dir):
            self.result.act("remove the empty %s" % inst_dir)
            if not self.check_mode:
                os.rmdir(inst_dir)
        return self.finish("nothing to revert here" if not self.result.changed else
                           "removed leftovers", None, None)


class RevertSourcePhase(Phase):
    def run(self) -> PhaseResult:
        p = self.p
        uuid = p.uuid or (p.migration or {}).get("instance_uuid")
        if not uuid:
            raise VirtopsError("phase revert_source needs uuid (or migration)")
        validate_uuid(uuid)
        wanted = self.migration_id()
        inst_dir = self.store.instance_dir(uuid)
        resize_dir = self.store.instance_dir(uuid, resize=True)
        with instance_lock(p.instances_path, uuid):
            resized = self.store.load(uuid, resize=True)
            live = self.store.load(uuid)
            if resized is not None and resized.migration and \
                    (not wanted or resized.migration.get("id") == wanted):
                mig = Migration.from_dict(resized.migration)
                if mig.source_host != p.host:
                    raise VirtopsError("%s is not the source of migration %s" % (p.host, mig.id))
                if os.path.lexists(inst_dir):
                    raise VirtopsError("%s exists next to %s: run phase revert_dest on %s first"
                                       % (inst_dir, resize_dir, mig.dest_host))
                self._roll_back_disks(mig)
                self.result.before = resized.to_dict()
                self.result.act("rename %s back to %s" % (resize_dir, inst_dir))
                record = resized
                if not self.check_mode:
                    os.rename(resize_dir, inst_dir)
                self._restore(record, mig)
                return self._start(record, mig)
            if live is not None and live.migration and \
                    (not wanted or live.migration.get("id") == wanted) and \
                    live.migration.get("source_host") == p.host:
                mig = Migration.from_dict(live.migration)
                if mig.status == "confirmed" or (mig.status == "finished" and not mig.same_host):
                    raise VirtopsError("migration %s of %s is %s: it cannot be reverted here"
                                       % (mig.id, live.name, mig.status))
                if mig.claim_in_place and live.host == mig.dest_host and not mig.same_host:
                    raise VirtopsError("%s holds the destination copy: run revert_dest first"
                                       % inst_dir)
                if mig.status != "reverted":
                    self._roll_back_disks(mig)
                    self.result.before = live.to_dict()
                    self._restore(live, mig)
                return self._start(live, mig)
        return self.finish("nothing to revert here", None, live)

    def _roll_back_disks(self, mig: Migration) -> None:
        """rbd: the root disk back to the snapshot the destination's finish took, and the
        snapshot removed (Nova's ``finish_revert_migration``: ``rollback_to_snap``,
        ``remove_snap``), before the record says reverted, so a crash in between is finished
        by a re-run. The disk is then exactly what it was when the source powered off: data
        and size."""
        if not mig.shared_block_storage:
            return
        with self.result.timed("rollback"):
            self.snapshot_step("rolled back to and removed snapshot",
                               "would roll back to and remove snapshot",
                               _rbd.roll_back_to_resize_snapshot(self.rbd_cli(mig), mig.instance_uuid,
                                                                 self.check_mode))

    def _restore(self, record: InstanceRecord, mig: Migration) -> None:
        old = Flavor.from_dict(mig.old_flavor)
        mig.set_status("reverted")
        record.flavor = old
        record.old_flavor = None
        record.new_flavor = None
        record.old_vm_state = None
        record.host = self.p.host
        record.migration = mig.to_dict()
        record.set_state(mig.old_vm_state if mig.old_vm_state in MOVABLE_VM_STATES else "active",
                         None, reason="migration %s reverted" % mig.id)
        self.result.act("restored flavor %s and vm_state %s" % (old.name, record.vm_state))
        self.save(record)

    def _start(self, record: InstanceRecord, mig: Migration) -> PhaseResult:
        running = mig.old_vm_state != "stopped"
        with self.result.timed("domain"):
            if self.check_mode and not os.path.isdir(self.store.instance_dir(record.uuid)):
                self.result.act("define and %s domain %s" % ("start" if running else "keep off",
                                                             record.name))
            else:
                with _libvirt.connect(self.p.libvirt_uri) as conn:
                    self.result.extra["domain"] = self.ensure_domain(conn, record, running)
        msg = "reverted" if self.result.changed else "already reverted"
        return self.finish(msg, mig, record)


PHASE_CLASSES = {"info": InfoPhase, "prep": PrepPhase, "migrate": MigratePhase,
                 "finish": FinishPhase, "confirm": ConfirmPhase, "revert_dest": RevertDestPhase,
                 "revert_source": RevertSourcePhase}


def run_phase(params: MigrateParams, check_mode: bool = False,
              rbd_cli: Optional[_rbd.RbdCli] = None) -> PhaseResult:
    return PHASE_CLASSES[params.phase](params, check_mode, rbd_cli).run()
