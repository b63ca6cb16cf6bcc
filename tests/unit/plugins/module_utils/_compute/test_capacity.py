# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host capacity: what claims and a migration's prep phase measure the host with."""
from __future__ import annotations

import os

from ansible_collections.virtops.compute.plugins.module_utils._compute.capacity import (
    host_capacity)


def test_capacity_reads_the_host_and_keeps_the_operator_s_ratios(tmp_path):
    capacity = host_capacity(str(tmp_path), 256, 2.0, 1.5, 1.0)
    stat = os.statvfs(str(tmp_path))
    assert capacity.vcpus == (os.cpu_count() or 1)
    assert capacity.memory_mb > 0
    assert capacity.local_gb == stat.f_blocks * stat.f_frsize // 1024 ** 3
    assert (capacity.reserved_host_memory_mb, capacity.cpu_allocation_ratio,
            capacity.ram_allocation_ratio, capacity.disk_allocation_ratio) == (256, 2.0, 1.5, 1.0)
    assert capacity.default_limits().vcpu == capacity.vcpus * 2.0


def test_capacity_of_an_instances_path_not_made_yet_is_the_root_file_system(tmp_path):
    stat = os.statvfs("/")
    capacity = host_capacity(str(tmp_path / "not-yet"), 512, 4.0, 1.0, 1.0)
    assert capacity.local_gb == stat.f_blocks * stat.f_frsize // 1024 ** 3
