# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance.json: the truth about one instance, kept by the host that runs it.

No database: ``<instances_path>/<uuid>/instance.json`` holds what Nova keeps in its instances
and migrations tables. Written atomically. States follow Nova's vm_states and task_states.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_write_json, read_json)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._model.names import (
    validate_instance_name, validate_uuid)
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    LOCK_DIR, RECORD, RESIZE_SUFFIX, InstanceLayout)

# Entries of the instances path that belong to the collection and are not instances: the image
# cache (``_base``), the lock files (``locks``) and, by convention, every ``_`` or ``.`` name;
# ``lost+found`` is the filesystem's own when the instances path is a mount point.
RESERVED_ENTRIES = (LOCK_DIR, "lost+found")
RESERVED_PREFIXES = ("_", ".")
# ``<uuid>`` (the instance) or ``<uuid>_resize`` (a resize source kept until confirm), in the
# canonical lower-case form the store writes.
_INSTANCE_DIR_RE = re.compile(
    r"^(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?P<resize>%s)?$"
    % RESIZE_SUFFIX)
VM_STATES = ("building", "active", "stopped", "paused", "resized", "error", "deleted")
TASK_STATES = (None, "scheduling", "networking", "block_device_mapping", "spawning",
               "powering-off", "powering-on", "rebooting", "rebooting_hard", "deleting",
               "resize_prep", "resize_migrating", "resize_migrated", "resize_finish",
               "resize_reverting", "resize_confirming")
HISTORY_LIMIT = 50


def utcnow() -> str:
    """Now, UTC, to the millisecond (Nova keeps its timestamps to the microsecond): a whole
    build can take less than a second, and its history must still say what came first."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class InstanceRecord:
    uuid: str
    name: str
    flavor: Flavor
    image: Dict[str, object] = field(default_factory=dict)
    vm_state: str = "building"
    task_state: Optional[str] = "scheduling"
    power_state: str = "nostate"
    host: Optional[str] = None
    availability_zone: Optional[str] = None
    server_group: Optional[str] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    key_name: Optional[str] = None
    launch_index: int = 0
    network_info: List[dict] = field(default_factory=list)
    image_base: Optional[str] = None
    limits: Dict[str, float] = field(default_factory=dict)
    migration: Optional[dict] = None
    old_flavor: Optional[Flavor] = None
    new_flavor: Optional[Flavor] = None
    old_vm_state: Optional[str] = None
    fault: Optional[dict] = None
    created_at: str = field(default_factory=utcnow)
    updated_at: str = field(default_factory=utcnow)
    launched_at: Optional[str] = None
    history: List[dict] = field(default_factory=list)

    def __post_init__(self):
        validate_uuid(self.uuid)
        validate_instance_name(self.name)
        if self.vm_state not in VM_STATES:
            raise VirtopsError("unknown vm_state %r (one of %s)" % (self.vm_state, ", ".join(VM_STATES)))
        if self.task_state not in TASK_STATES:
            raise VirtopsError("unknown task_state %r" % (self.task_state,))

    @property
    def ips(self) -> List[str]:
        return [ip["address"] for vif in self.network_info
                for subnet in (vif.get("network") or {}).get("subnets", [])
                for ip in subnet.get("ips", [])]

    def set_state(self, vm_state: Optional[str] = None, task_state: object = "unchanged",
                  reason: Optional[str] = None) -> bool:
        """Move to a new state, keeping a short history. Returns True when it changed."""
        new_vm = vm_state or self.vm_state
        new_task = self.task_state if task_state == "unchanged" else task_state
        if new_vm not in VM_STATES:
            raise VirtopsError("unknown vm_state %r" % new_vm)
        if new_task not in TASK_STATES:
            raise VirtopsError("unknown task_state %r" % (new_task,))
        if (new_vm, new_task) == (self.vm_state, self.task_state) and not reason:
            return False
        self.vm_state, self.task_state = new_vm, new_task
        self.updated_at = utcnow()
        if new_vm == "active" and not self.launched_at:
            self.launched_at = self.updated_at
        if new_vm == "error":
            self.fault = {"message": reason or "unknown error", "at": self.updated_at}
        entry = {"at": self.updated_at, "vm_state": new_vm, "task_state": new_task}
        if reason:
            entry["reason"] = reason
        self.history = (self.history + [entry])[-HISTORY_LIMIT:]
        return True

    def to_dict(self) -> dict:
        data = {key: getattr(self, key) for key in self.__dataclass_fields__}
        for key in ("flavor", "old_flavor", "new_flavor"):
            if data[key] is not None:
                data[key] = data[key].to_dict()
        data["ips"] = self.ips
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "InstanceRecord":
        values = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        for key in ("flavor", "old_flavor", "new_flavor"):
            if values.get(key) is not None:
                values[key] = Flavor.from_dict(values[key])
        if "flavor" not in values:
            raise VirtopsError("instance record %s has no flavor" % data.get("uuid"))
        return cls(**values)


@dataclass(frozen=True)
class IgnoredEntry:
    """An entry of the instances path that is not an instance directory, and why."""
    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class FoundRecord:
    """One instance directory: its path, ``instance.json`` as read, and the record parsed."""
    directory: str
    document: dict
    record: InstanceRecord


@dataclass
class InstancesScan:
    """What the instances path holds: the instance records, and the entries left out."""
    found: List[FoundRecord] = field(default_factory=list)
    ignored: List[IgnoredEntry] = field(default_factory=list)

    @property
    def records(self) -> List[InstanceRecord]:
        return [item.record for item in self.found]


def _read_record(directory: str, uuid: str):
    """``(document, record)`` of one instance directory, or ``(None, reason)`` for a stray."""
    path = os.path.join(directory, RECORD)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, "no %s in it (not an instance directory)" % RECORD
    except OSError as exc:
        return None, "cannot read %s: %s" % (RECORD, exc.strerror or exc)
    try:
        document = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        return None, "%s is not valid JSON: %s" % (RECORD, exc)
    if not isinstance(document, dict):
        return None, "%s holds a %s, not an instance record" % (RECORD, type(document).__name__)
    try:
        record = InstanceRecord.from_dict(document)
    except (VirtopsError, TypeError, ValueError) as exc:
        return None, "%s is not a valid instance record: %s" % (RECORD, exc)
    if record.uuid != uuid:
        return None, "%s names instance %s, not the directory's %s" % (RECORD, record.uuid, uuid)
    return document, record


def classify_entry(instances_path: str, name: str):
    """``None`` for a reserved entry, an :class:`IgnoredEntry` for a stray one, else the
    :class:`FoundRecord` of an instance directory."""
    if name in RESERVED_ENTRIES or name.startswith(RESERVED_PREFIXES):
        return None
    path = os.path.join(instances_path, name)
    match = _INSTANCE_DIR_RE.match(name)
    if not match:
        return IgnoredEntry(path, "the name is not an instance uuid (or <uuid>%s)" % RESIZE_SUFFIX)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None  # removed while the listing was read (a delete or a confirm)
    except OSError as exc:
        return IgnoredEntry(path, "cannot stat it: %s" % (exc.strerror or exc))
    if stat.S_ISLNK(mode):
        # A link could lead anywhere (another host's records on shared storage): the records of
        # this host are real directories, as the store makes them.
        return IgnoredEntry(path, "a symbolic link, not an instance directory")
    if not stat.S_ISDIR(mode):
        return IgnoredEntry(path, "not a directory")
    document, record = _read_record(path, match.group("uuid"))
    if document is None:
        return IgnoredEntry(path, record)
    return FoundRecord(path, document, record)


def scan_instances(instances_path: str) -> InstancesScan:
    """Every instance record under ``instances_path`` and every entry that is not one.

    Nova's resource tracker counts instances from its database, so nothing on the disk can
    hide a host; here the disk is the database, so a stray file, a foreign directory or a
    broken ``instance.json`` is left out and reported instead of failing the whole host.
    A missing instances path holds nothing; one that cannot be listed raises OSError.
    """
    scan = InstancesScan()
    if not os.path.isdir(instances_path):
        return scan
    for name in sorted(os.listdir(instances_path)):
        entry = classify_entry(instances_path, name)
        if isinstance(entry, IgnoredEntry):
            scan.ignored.append(entry)
        elif entry is not None:
            scan.found.append(entry)
    return scan


class RecordStore:
    """The instance records of one host."""

    def __init__(self, instances_path: str):
        self.instances_path = instances_path
        self.layout = InstanceLayout(instances_path)

    def instance_dir(self, uuid: str, resize: bool = False) -> str:
        validate_uuid(uuid)
        return self.layout.instance_dir(uuid, resize)

    def path(self, uuid: str, resize: bool = False) -> str:
        return os.path.join(self.instance_dir(uuid, resize), RECORD)

    def load(self, uuid: str, resize: bool = False) -> Optional[InstanceRecord]:
        data = read_json(self.path(uuid, resize))
        return InstanceRecord.from_dict(data) if data else None

    def save(self, record: InstanceRecord, resize: bool = False) -> None:
        """Write the record; a directory made for it goes again when the write fails (a full
        or read-only filesystem), so a refused claim leaves nothing behind."""
        directory = self.instance_dir(record.uuid, resize)
        created = not os.path.isdir(directory)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        record.updated_at = utcnow()
        try:
            atomic_write_json(os.path.join(directory, RECORD), record.to_dict(), mode=0o600)
        except BaseException:
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            raise

    def scan(self) -> InstancesScan:
        return scan_instances(self.instances_path)

    def all(self) -> List[InstanceRecord]:
        """Every record on this host, ``<uuid>`` and ``<uuid>_resize`` directories alike;
        entries that are not instance directories are skipped (``scan()`` says which)."""
        return self.scan().records

    def find_by_name(self, name: str) -> List[InstanceRecord]:
        return [r for r in self.all() if r.name == name]
