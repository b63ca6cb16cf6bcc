# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource claims on one host (Nova's ResourceTracker.instance_claim / resize_claim).

"Compute usage, check, write the record" happens under one per-host lock, so concurrent boots
can never oversubscribe a host. Usage counts every record on the host: instances being built,
and both sides of an unconfirmed resize (``<uuid>_resize`` on the source keeps the old flavor).
The scheduler's ``limits`` are checked again here; without them, totals times ratios apply.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)
from ansible_collections.virtops.compute.plugins.module_utils._common.locks import file_lock

CLAIM_LOCK = "compute-claims"   # locks/virtops-compute-claims.lock


@dataclass(frozen=True)
class Limits:
    memory_mb: Optional[float] = None
    vcpu: Optional[float] = None
    disk_gb: Optional[float] = None

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> "Limits":
        data = data or {}
        return cls(*(float(data[k]) if data.get(k) is not None else None
                     for k in ("memory_mb", "vcpu", "disk_gb")))


@dataclass(frozen=True)
class HostCapacity:
    vcpus: int
    memory_mb: int
    local_gb: int
    reserved_host_memory_mb: int = 512
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0

    def default_limits(self) -> Limits:
        return Limits(memory_mb=self.memory_mb * self.ram_allocation_ratio,
                      vcpu=self.vcpus * self.cpu_allocation_ratio,
                      disk_gb=self.local_gb * self.disk_allocation_ratio)


@dataclass(frozen=True)
class Usage:
    vcpus: int
    memory_mb: int
    disk_gb: int


def flavor_disk_gb(flavor: Flavor) -> int:
    return flavor.root_gb + flavor.ephemeral_gb


def claimed_flavors(record: InstanceRecord):
    """What a record holds on this host: its flavor, and the new one while a resize is open."""
    yield record.flavor
    if record.new_flavor is not None and record.new_flavor != record.flavor:
        yield record.new_flavor


def usage(store: RecordStore, reserved_host_memory_mb: int) -> Usage:
    vcpus = memory = disk = 0
    for record in store.all():
        if record.vm_state == "deleted":
            continue
        flavors = list(claimed_flavors(record))
        # Both flavors of an open resize on one record: hold the larger of each resource.
        vcpus += max(f.vcpus for f in flavors)
        memory += max(f.ram_mb for f in flavors)
        disk += max(flavor_disk_gb(f) for f in flavors)
    return Usage(vcpus, memory + reserved_host_memory_mb, disk)


def check_fits(flavor: Flavor, used: Usage, limits: Limits) -> None:
    """Nova's claim test: free = limit - used must cover the request, per resource."""
    problems = []
    checks = (("memory", "MB", flavor.ram_mb, used.memory_mb, limits.memory_mb),
              ("vcpu", "VCPU", flavor.vcpus, used.vcpus, limits.vcpu),
              ("disk", "GB", flavor_disk_gb(flavor), used.disk_gb, limits.disk_gb))
    for what, unit, requested, in_use, limit in checks:
        if limit is None or requested == 0:
            continue
        free = limit - in_use
        if requested > free:
            problems.append("Free %s %.2f %s < requested %d %s" % (what, free, unit, requested, unit))
    if problems:
        raise VirtopsError("Insufficient compute resources: %s." % "; ".join(problems),
                           reason="claim_failed")


class ClaimManager:
    def __init__(self, store: RecordStore, capacity: HostCapacity):
        self.store = store
        self.capacity = capacity

    @property
    def lock_path(self) -> str:
        return self.store.layout.lock_path(CLAIM_LOCK)

    def instance_claim(self, record: InstanceRecord, limits: Optional[Limits] = None,
                       check_mode: bool = False) -> bool:
        """Claim resources for a new instance and write its record. True when it changed.

        Re-claiming an instance already recorded here is a no-op (idempotent re-run).
        """
        with file_lock(self.lock_path, timeout=600):
            existing = self.store.load(record.uuid)
            if existing is not None:
                if existing.flavor != record.flavor:
                    raise VirtopsError("instance %s (%s) is already claimed here with flavor %s, "
                                       "not %s: resize it instead" % (
                                           existing.name, existing.uuid, existing.flavor.name,
                                           record.flavor.name))
                return False
            for other in self.store.find_by_name(record.name):
                if other.uuid != record.uuid:
                    raise VirtopsError("an instance named %s already exists on this host "
                                       "(uuid %s)" % (record.name, other.uuid))
            used = usage(self.store, self.capacity.reserved_host_memory_mb)
            check_fits(record.flavor, used, limits or self.capacity.default_limits())
            if not check_mode:
                record.limits = {k: v for k, v in vars(limits or Limits()).items() if v is not None}
                self.store.save(record)
            return True

    def resize_claim(self, uuid: str, new_flavor: Flavor, limits: Optional[Limits] = None,
                     check_mode: bool = False) -> bool:
        """Claim the new flavor for an existing record (same-host resize or migration target)."""
        with file_lock(self.lock_path, timeout=600):
            record = self.store.load(uuid)
            if record is None:
                raise VirtopsError("no instance %s on this host to resize" % uuid)
            if record.new_flavor == new_flavor:
                return False
            used = usage(self.store, self.capacity.reserved_host_memory_mb)
            # The record's current flavor is already counted: only growth needs room.
            growth = Flavor(new_flavor.name,
                            vcpus=max(0, new_flavor.vcpus - record.flavor.vcpus),
                            ram_mb=max(0, new_flavor.ram_mb - record.flavor.ram_mb),
                            root_gb=max(0, flavor_disk_gb(new_flavor) - flavor_disk_gb(record.flavor)))
            check_fits(growth, used, limits or self.capacity.default_limits())
            if not check_mode:
                record.new_flavor = new_flavor
                self.store.save(record)
            return True

    def release(self, uuid: str, check_mode: bool = False) -> bool:
        """Drop the record, which is the claim. True when there was one."""
        with file_lock(self.lock_path, timeout=600):
            path = self.store.path(uuid)
            if not os.path.exists(path):
                return False
            if not check_mode:
                os.unlink(path)
            return True
