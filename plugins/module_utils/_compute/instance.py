# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An instance record on its host (vm_instance's driver): claim (Nova's ``instance_claim`` with
the record it makes), update the vm_state/task_state, release."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Optional

from ansible_collections.virtops.compute.plugins.module_utils._compute.capacity import (
    host_capacity)
from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import (
    ClaimManager, HostCapacity, Limits)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)


@dataclass
class RecordOutcome(Outcome):
    """What a claim, update or release did to the instance record (``Outcome``: changed)."""
    record: Optional[InstanceRecord] = None
    before: Optional[dict] = None
    msg: str = ""


def claim(store: RecordStore, capacity: HostCapacity, params: dict, check_mode: bool) -> RecordOutcome:
    flavor = Flavor.from_dict(params["flavor"])
    record = InstanceRecord(
        uuid=params["uuid"], name=params["name"], flavor=flavor, image=params.get("image") or {},
        host=params.get("host"), availability_zone=params.get("availability_zone"),
        server_group=params.get("server_group"), metadata=params.get("metadata") or {},
        key_name=params.get("key_name"), launch_index=params.get("launch_index") or 0,
        network_info=params.get("network_info") or [])
    # The record's first history entry, as Nova's instance actions begin with "create": a new
    # record is already building/scheduling, so the entry needs its reason to be written.
    record.set_state("building", "scheduling",
                     reason="claimed on %s" % record.host if record.host else "claimed")
    existing = store.load(record.uuid)
    manager = ClaimManager(store, capacity)
    changed = manager.instance_claim(record, Limits.from_dict(params.get("limits")), check_mode)
    current = store.load(record.uuid) if not check_mode else (existing or record)
    changed |= update(store, current, params, check_mode)
    return RecordOutcome(changed=changed, record=current,
                         before=existing.to_dict() if existing else None,
                         msg="claimed" if changed and existing is None else "already claimed")


def update(store: RecordStore, record: InstanceRecord, params: dict, check_mode: bool) -> bool:
    """Apply vm_state/task_state/network_info/image_base from params to an existing record."""
    changed = False
    if params.get("network_info") is not None and record.network_info != params["network_info"]:
        record.network_info = params["network_info"]
        changed = True
    if params.get("image_base") and record.image_base != params["image_base"]:
        record.image_base = params["image_base"]
        changed = True
    if params.get("vm_state") or params.get("task_state") is not None or params.get("clear_task_state"):
        task = None if params.get("clear_task_state") else (
            params["task_state"] if params.get("task_state") is not None else "unchanged")
        changed |= record.set_state(params.get("vm_state"), task, params.get("reason"))
    if changed and not check_mode:
        store.save(record)
    return changed


def release(store: RecordStore, uuid: str, check_mode: bool, remove_directory: bool) -> RecordOutcome:
    record = store.load(uuid)
    directory = store.instance_dir(uuid)
    if record is None and not (remove_directory and os.path.isdir(directory)):
        return RecordOutcome(changed=False, msg="no such instance here")
    if not check_mode:
        if remove_directory:
            shutil.rmtree(directory, ignore_errors=False)
        else:
            ClaimManager(store, HostCapacity(1, 1, 1)).release(uuid)
    return RecordOutcome(changed=True, before=record.to_dict() if record else None,
                         msg="released")


def run(params: dict, check_mode: bool) -> RecordOutcome:
    store = RecordStore(params["instances_path"])
    state = params["state"]
    if state == "absent":
        return release(store, params["uuid"], check_mode, params["remove_directory"])
    if state == "updated":
        record = store.load(params["uuid"])
        if record is None:
            raise VirtopsError("no instance %s on this host: claim it first (state=present)"
                               % params["uuid"])
        before = record.to_dict()
        changed = update(store, record, params, check_mode)
        return RecordOutcome(changed=changed, record=record, before=before,
                             msg="updated" if changed else "unchanged")
    if not params.get("name") or not params.get("flavor"):
        raise VirtopsError("state=present needs name and flavor to claim resources")
    capacity = host_capacity(params["instances_path"], params["reserved_host_memory_mb"],
                             params["cpu_allocation_ratio"], params["ram_allocation_ratio"],
                             params["disk_allocation_ratio"])
    return claim(store, capacity, params, check_mode)
