# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""instance.json: the truth about one instance, kept by the host that runs it.

No database: ``<instances_path>/<uuid>/instance.json`` holds what Nova keeps in its instances
and migrations tables. Written atomically. States follow Nova's vm_states and task_states.
"""
from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._fileio import (
    atomic_write_json, read_json)
from ansible_collections.virtops.compute.plugins.module_utils._flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._names import (
    validate_instance_name, validate_uuid)

RECORD = "instance.json"
RESIZE_SUFFIX = "_resize"
VM_STATES = ("building", "active", "stopped", "paused", "resized", "error", "deleted")
TASK_STATES = (None, "scheduling", "networking", "block_device_mapping", "spawning",
               "powering-off", "powering-on", "rebooting", "deleting", "resize_prep",
               "resize_migrating", "resize_migrated", "resize_finish", "resize_reverting",
               "resize_confirming")
HISTORY_LIMIT = 50


def utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


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


class RecordStore:
    """The instance records of one host."""

    def __init__(self, instances_path: str):
        self.instances_path = instances_path

    def instance_dir(self, uuid: str, resize: bool = False) -> str:
        validate_uuid(uuid)
        return os.path.join(self.instances_path, uuid + (RESIZE_SUFFIX if resize else ""))

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

    def all(self) -> List[InstanceRecord]:
        """Every record on this host, ``<uuid>`` and ``<uuid>_resize`` directories alike."""
        records = []
        if not os.path.isdir(self.instances_path):
            return records
        for entry in sorted(os.listdir(self.instances_path)):
            if entry.startswith(("_", ".")) or entry == "locks":
                continue
            data = read_json(os.path.join(self.instances_path, entry, RECORD))
            if data:
                try:
                    records.append(InstanceRecord.from_dict(data))
                except VirtopsError:
                    continue
        return records

    def find_by_name(self, name: str) -> List[InstanceRecord]:
        return [r for r in self.all() if r.name == name]
