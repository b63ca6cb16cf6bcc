# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What this host has to claim from (Nova's resource tracker reads the same from the driver):
its CPUs, its memory (MemTotal) and the size of the file system of the instances path, with
the operator's reservation and allocation ratios. Claims (vm_instance) and a migration's
prep phase measure the host through this one function."""
from __future__ import annotations

import os

from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB
from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import HostCapacity
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import (
    total_memory_mb)


def host_capacity(instances_path: str, reserved_host_memory_mb: int, cpu_ratio: float,
                  ram_ratio: float, disk_ratio: float) -> HostCapacity:
    """The host's totals and ratios; the disk is the instances path's file system (``/``
    before the path exists)."""
    fs_path = instances_path if os.path.isdir(instances_path) else "/"
    stat = os.statvfs(fs_path)
    return HostCapacity(vcpus=os.cpu_count() or 1, memory_mb=total_memory_mb(0),
                        local_gb=stat.f_blocks * stat.f_frsize // GIB,
                        reserved_host_memory_mb=reserved_host_memory_mb,
                        cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=ram_ratio,
                        disk_allocation_ratio=disk_ratio)
