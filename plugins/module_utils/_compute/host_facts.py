# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a compute host reports to the scheduler (schema: docs/host_facts.md).

Each instance's entry carries the live state of its domain: Nova's power state name and the
domain's graphical consoles (type, listen address, port, read from the live XML as Nova's
``get_vnc_console`` reads them), and, only for the servers named in ``HostConfig.history``,
the record's history of state transitions (``openstack server event list``), so the facts of
a host with many servers stay small.
"""
from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DEFAULT_INSTANCES_PATH)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import domains as _domains
from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import usage
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    RecordStore, scan_instances)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    DEFAULT_URI, connect)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import HAS_LXML, parse_xml
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.virt_probe import detect_virt_type
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB
from ansible_collections.virtops.compute.plugins.module_utils._model.console import Graphics
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import HostStorage
from ansible_collections.virtops.compute.plugins.module_utils._storage.rbd import RbdCli


@dataclass
class HostConfig:
    hostname: str
    libvirt_uri: str = DEFAULT_URI
    instances_path: str = DEFAULT_INSTANCES_PATH
    enabled: bool = True
    availability_zone: str = "nova"
    aggregates: List[dict] = field(default_factory=list)
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    reserved_host_disk_mb: int = 0
    virt_type: Optional[str] = None
    capabilities: dict = field(default_factory=dict)
    # Names or uuids of the instances whose history the facts carry (none by default).
    history: List[str] = field(default_factory=list)
    # Nova's images_type and, for rbd, its settings: where instance disks live.
    backend: str = "qcow2"
    rbd: Optional[dict] = None


def disk_room(config: HostConfig, runner=None) -> Tuple[int, int, dict]:
    """(local_gb, free_disk_gb, storage facts): Nova's ``_get_local_gb_info``. Local backends:
    the instances path's filesystem. rbd: the pool's room (``RBDDriver.get_pool_info``), total
    and free in whole GiB, as the resource tracker and the scheduler count disk."""
    storage = HostStorage.from_values(config.backend, config.rbd)
    if storage.rbd is None:
        fs_path = config.instances_path if os.path.isdir(config.instances_path) else "/"
        stat = os.statvfs(fs_path)
        return (stat.f_blocks * stat.f_frsize // GIB, stat.f_bavail * stat.f_frsize // GIB,
                {"images_type": storage.images_type, "shared": False})
    cli = RbdCli(storage.rbd, **({"runner": runner} if runner else {}))
    room = cli.pool_capacity()
    return (room.total_bytes // GIB, room.free_bytes // GIB,
            {"images_type": "rbd", "shared": True, "pool": storage.rbd.pool, **room.to_dict()})


@dataclass(frozen=True)
class LiveDomain:
    """What libvirt says of one domain: Nova's power state name and its graphical consoles
    (read only while the domain runs: a stopped one has no port)."""
    power_state: str
    graphics: Tuple[Graphics, ...] = ()


def read_instance_records(instances_path: str) -> Tuple[List[dict], List[dict]]:
    """instance.json of every instance directory (``<uuid>`` and ``<uuid>_resize``), and the
    entries of the instances path that are not one (``{path, reason}``), which are skipped."""
    scan = scan_instances(instances_path)
    return [item.document for item in scan.found], [entry.to_dict() for entry in scan.ignored]


def cpu_info(capabilities_xml: str) -> dict:
    """Nova's cpu_info from libvirt's host capabilities: arch, model, vendor, topology, features."""
    if not HAS_LXML:
        return {}
    root = parse_xml(capabilities_xml, "libvirt capabilities XML")
    cpu = root.find("host/cpu")
    if cpu is None:
        return {}
    topology = cpu.find("topology")
    return {
        "arch": cpu.findtext("arch"),
        "model": cpu.findtext("model"),
        "vendor": cpu.findtext("vendor"),
        "topology": {k: int(v) for k, v in (topology.attrib.items() if topology is not None else [])
                     if v.isdigit()},
        "features": sorted(f.get("name") for f in cpu.findall("feature") if f.get("name")),
    }


def total_memory_mb(libvirt_mb: int) -> int:
    """MemTotal from /proc/meminfo; libvirt sums NUMA nodes, which misses hot-added memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return libvirt_mb


def gather(config: HostConfig) -> dict:
    probe = detect_virt_type(config.virt_type)
    # Read-only: the facts only read (host info, capabilities, domain states).
    with connect(config.libvirt_uri, read_only=True) as conn:
        model, memory_mb, cpus = conn.getInfo()[:3]
        hypervisor_type = conn.getType()
        hypervisor_version = conn.getVersion()
        libvirt_version = conn.getLibVersion()
        host_cpu = cpu_info(conn.getCapabilities())
        live = live_domains(conn)
    local_gb, free_disk_gb, storage = disk_room(config)
    records, ignored_entries = read_instance_records(config.instances_path)
    # The same count the claims make under their lock (both flavors of an open resize, not
    # deleted records), so the scheduler and the claim agree on what is used.
    used = usage(RecordStore(config.instances_path), config.reserved_host_memory_mb)
    vcpus_used = used.vcpus
    ram_used = used.memory_mb
    disk_used = config.reserved_host_disk_mb // 1024 + used.disk_gb
    return {
        "hostname": config.hostname,
        "host_fqdn": socket.getfqdn(),
        "enabled": config.enabled,
        "availability_zone": config.availability_zone,
        "aggregates": config.aggregates,
        "hypervisor_type": hypervisor_type,
        "hypervisor_version": hypervisor_version,
        "libvirt_version": libvirt_version,
        "arch": model,
        "virt_type": probe.virt_type,
        "virt_probe": asdict(probe),
        "vcpus": cpus,
        "vcpus_used": vcpus_used,
        "memory_mb": total_memory_mb(memory_mb),
        "memory_mb_libvirt": memory_mb,
        "memory_mb_used": ram_used,
        "local_gb": local_gb,
        "local_gb_used": disk_used,
        "free_disk_gb": free_disk_gb,
        "storage": storage,
        "cpu_allocation_ratio": config.cpu_allocation_ratio,
        "ram_allocation_ratio": config.ram_allocation_ratio,
        "disk_allocation_ratio": config.disk_allocation_ratio,
        "libvirt_uri": config.libvirt_uri,
        "instances_path": config.instances_path,
        # Operator-declared capabilities first: the measured ones cannot be overridden.
        "capabilities": dict(config.capabilities or {}, hypervisor_type=hypervisor_type,
                             arch=model, virt_type=probe.virt_type, cpu_info=host_cpu),
        "instances": [summarise(r, config.hostname, live, wants_history(r, config.history))
                      for r in records],
        "ignored_entries": ignored_entries,
    }


def live_domains(conn) -> Dict[str, LiveDomain]:
    """Every domain libvirt knows, by domain uuid: its power state and, when it is not shut
    off, the graphical consoles of its live XML."""
    found = {}
    for dom in conn.listAllDomains(0):
        state = _domains.power_state(dom)
        # A domain that vanished between the listing and the look has no state.
        if state == _domains.ABSENT:
            continue
        graphics: Tuple[Graphics, ...] = ()
        if state != "shutdown":
            try:
                graphics = tuple(_domains.live_graphics(dom))
            except VirtopsError:
                # A console that cannot be read is not reported; it never fails the host, whose
                # facts the scheduler and the delete need.
                graphics = ()
        found[dom.UUIDString()] = LiveDomain(state, graphics)
    return found


SUMMARY_KEYS = ("uuid", "name", "vm_state", "task_state", "flavor", "image", "ips",
                "server_group", "migration", "availability_zone", "network_info", "fault",
                "created_at", "launched_at")


def wants_history(record: Mapping, names) -> bool:
    """Whether the record's history was asked for: its name or its uuid is in ``names``."""
    wanted = {str(name) for name in names or ()}
    return bool(wanted) and (record.get("name") in wanted or record.get("uuid") in wanted)


def summarise(record: dict, host: Optional[str] = None,
              live: Optional[Mapping[str, LiveDomain]] = None, history: bool = False) -> dict:
    """What the fleet needs to know of one record. ``power_state`` is the live state of its
    domain (``absent`` when libvirt has none), else what the record says; ``graphics`` the
    consoles of its running domain (``[]`` when it has none or does not run). ``history``
    adds the record's history, oldest first."""
    summary = {key: record.get(key) for key in SUMMARY_KEYS}
    summary["host"] = host
    if live is not None:
        domain = live.get(record.get("uuid"))
        summary["power_state"] = domain.power_state if domain is not None else _domains.ABSENT
        summary["graphics"] = [g.to_dict() for g in domain.graphics] if domain is not None else []
    else:
        summary["power_state"] = record.get("power_state")
        summary["graphics"] = []
    if history:
        summary["history"] = list(record.get("history") or [])
    return summary
