# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host weighers (Nova's RAM, Disk and CPU weighers) and min-max normalisation.

A weigher gives each host a raw value; the scheduler normalises the raw values of one
weigher over the candidate hosts to 0..1 (all equal -> 0), multiplies by the weigher's
multiplier and sums over weighers. The highest total wins. A positive multiplier spreads
instances (prefers the emptiest host), a negative one stacks them (fills hosts up first).

The multiplier comes from the scheduler config; as in Nova, a host's aggregates may set
their own (``ram_weight_multiplier`` ... in aggregate metadata; the smallest value wins).
"""
from __future__ import annotations

from typing import Iterable, Optional

from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import HostState


def normalize(values: Iterable[float], minval: Optional[float] = None, maxval: Optional[float] = None) -> list:
    """Nova's weights.normalize: scale into 0..1; all equal (or empty) -> zeros."""
    values = list(values)
    if not values:
        return []
    lo = float(min(values) if minval is None else minval)
    hi = float(max(values) if maxval is None else maxval)
    if lo == hi:
        return [0] * len(values)
    span = hi - lo
    return [(v - lo) / span for v in values]


class BaseWeigher:
    name = "BaseWeigher"
    option = ""  # config key and aggregate metadata key of the multiplier

    def raw(self, host: HostState) -> float:
        raise NotImplementedError

    def raw_many(self, hosts: list) -> list:
        raw = self.raw
        return [raw(h) for h in hosts]

    def multiplier(self, host: HostState, default: float) -> float:
        """The aggregate override when the host has one (smallest value), else the config's."""
        if self.option not in host.weight_multiplier_keys:
            return default
        values = host.aggregate_metadata.get(self.option)
        if not values:
            return default
        try:
            return min(float(v) for v in values)
        except ValueError:
            return default


class RAMWeigher(BaseWeigher):
    """Free RAM in MB (memory_mb - memory_mb_used, before the allocation ratio)."""

    name = "RAMWeigher"
    option = "ram_weight_multiplier"

    def raw(self, host):
        return host.free_ram_mb

    def raw_many(self, hosts):
        return [h.memory_mb - h.memory_mb_used for h in hosts]


class DiskWeigher(BaseWeigher):
    """Free disk in MB (Nova's free_disk_mb)."""

    name = "DiskWeigher"
    option = "disk_weight_multiplier"

    def raw(self, host):
        return host.free_disk_mb

    def raw_many(self, hosts):
        return [(fs if (fs := h.free_disk_gb) < (free := h.local_gb - h.local_gb_used) else free) * 1024
                for h in hosts]


class CPUWeigher(BaseWeigher):
    """Free vCPUs: vcpus x cpu_allocation_ratio - vcpus_used."""

    name = "CPUWeigher"
    option = "cpu_weight_multiplier"

    def raw(self, host):
        return host.vcpus * host.cpu_allocation_ratio - host.vcpus_used

    def raw_many(self, hosts):
        return [h.vcpus * h.cpu_allocation_ratio - h.vcpus_used for h in hosts]


WEIGHER_CLASSES = (RAMWeigher, DiskWeigher, CPUWeigher)
