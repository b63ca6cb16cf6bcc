# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host facts and requests for the scheduler tests."""
from __future__ import annotations

from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import HostState
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.request import RequestSpec


def facts(hostname="c1", **overrides):
    """A roomy host: 8 vCPUs, 16 GB RAM, 100 GB disk, nothing used."""
    result = {
        "hostname": hostname,
        "enabled": True,
        "availability_zone": None,
        "aggregates": [],
        "hypervisor_type": "QEMU",
        "hypervisor_version": 7002000,
        "arch": "x86_64",
        "virt_type": "qemu",
        "vcpus": 8,
        "vcpus_used": 0,
        "memory_mb": 16384,
        "memory_mb_used": 0,
        "local_gb": 100,
        "local_gb_used": 0,
        "free_disk_gb": 100,
        "cpu_allocation_ratio": 1.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
        "capabilities": {"cpu_info": {"arch": "x86_64", "model": "Nehalem", "vendor": "Intel",
                                      "features": ["sse4.2", "avx", "avx2"]},
                         "hypervisor_type": "QEMU"},
        "instances": [],
    }
    result.update(overrides)
    return result


def host(hostname="c1", **overrides):
    return HostState.from_facts(facts(hostname, **overrides))


def request(**overrides):
    """web1 on m1.small (1 vCPU, 2048 MB, 20 GB); ``name=`` replaces the instance names."""
    data = {"flavor": {"name": "m1.small", "vcpus": 1, "ram_mb": 2048, "root_gb": 20}}
    if "name" not in overrides:
        data["instance_names"] = ["web1"]
    data.update(overrides)
    return data


def spec(**overrides):
    return RequestSpec.from_dict(request(**overrides))


def flavor(**overrides):
    data = {"name": "m1.small", "vcpus": 1, "ram_mb": 2048, "root_gb": 20}
    data.update(overrides)
    return data
