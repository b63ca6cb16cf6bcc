# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the scheduler knows about one compute host, parsed from its host facts.

The facts schema is documented in ``docs/host_facts.md``. A :class:`HostState` is
immutable: the scheduler consumes capacity on a chosen host by making a new state with
:meth:`HostState.consume`, so states shared with the caller never change and only the
chosen host is copied per pick.

Derived values keep Nova's names and meaning (``free_ram_mb``, ``free_disk_mb``,
``vcpus_total`` ...) because flavor extra specs such as ``capabilities:free_ram_mb``
address them by those names.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

DEFAULT_AVAILABILITY_ZONE = "nova"
# Nova's initial_*_allocation_ratio defaults (master). Liberty used 16.0 / 1.5 / 1.0.
DEFAULT_CPU_ALLOCATION_RATIO = 4.0
DEFAULT_RAM_ALLOCATION_RATIO = 1.0
DEFAULT_DISK_ALLOCATION_RATIO = 1.0

_REQUIRED_NUMBERS = ("vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "local_gb", "local_gb_used")

# Host attributes that flavor extra specs may address (``capabilities:<name>`` or an
# unscoped ``<name>``), besides the keys of the ``capabilities`` fact.
CAPABILITY_ATTRIBUTES = frozenset((
    "host", "hostname", "hypervisor_hostname", "nodename", "hypervisor_type", "hypervisor_version",
    "arch", "virt_type", "enabled", "availability_zone",
    "vcpus", "vcpus_used", "vcpus_total", "memory_mb", "memory_mb_used", "free_ram_mb",
    "total_usable_ram_mb", "local_gb", "local_gb_used", "free_disk_gb", "free_disk_mb",
    "total_usable_disk_gb", "disk_mb_used", "cpu_allocation_ratio", "ram_allocation_ratio",
    "disk_allocation_ratio", "num_instances",
))

_ARCH_ALIASES = {"i386": "i686", "i486": "i686", "i586": "i686", "x86_32": "i686", "amd64": "x86_64"}


def match_string(value: Any) -> str:
    """The string a host value is compared as: Python's ``str()`` as in Nova, except that
    booleans read as YAML writes them (``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Aggregate:
    """A host aggregate the host belongs to; metadata values are strings as in Nova."""

    name: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class InstanceInfo:
    """The part of an instance record the scheduler reads."""

    uuid: Optional[str]
    name: Optional[str]
    server_group: Optional[str] = None
    vm_state: Optional[str] = None
    task_state: Optional[str] = None

    @property
    def identities(self) -> tuple:
        return tuple(i for i in (self.uuid, self.name) if i)


def _where(hostname: Optional[str], index: Optional[int]) -> str:
    if hostname:
        return "host facts for %s" % hostname
    if index is not None:
        return "host facts #%d" % index
    return "host facts"


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict) or isinstance(value, Mapping)


def _is_list(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return True
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _number(facts: Mapping, key: str, where: str, default: Any = None, required: bool = False,
            minimum: Optional[float] = 0) -> Any:
    value = facts.get(key)
    if value is None:
        if required:
            raise VirtopsError("%s: missing key '%s'" % (where, key), key=key)
        return default
    kind = type(value)
    if (kind is int or kind is float) and (minimum is None or value >= minimum):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                value = None
        else:
            value = None
        if value is None:
            raise VirtopsError("%s: '%s' must be a number, got %r" % (where, key, facts[key]), key=key)
    if minimum is not None and value < minimum:
        raise VirtopsError("%s: '%s' must be >= %s, got %r" % (where, key, minimum, value), key=key)
    return value


def _ratio(facts: Mapping, key: str, where: str, default: float) -> float:
    value = _number(facts, key, where, default=None)
    # Nova treats an unset or 0.0 ratio as "use the default".
    if not value:
        return default
    return float(value)


def _string(facts: Mapping, key: str, where: str, default: Optional[str] = None) -> Optional[str]:
    value = facts.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise VirtopsError("%s: '%s' must be a string, got %r" % (where, key, value), key=key)
    return str(value)


def _parse_aggregates(raw: Any, where: str) -> tuple:
    if raw is None:
        return ()
    if not _is_list(raw):
        raise VirtopsError("%s: 'aggregates' must be a list of {name, metadata}" % where, key="aggregates")
    result = []
    for pos, agg in enumerate(raw):
        if isinstance(agg, str):
            result.append(Aggregate(name=agg, metadata={}))
            continue
        if not _is_mapping(agg) or not agg.get("name"):
            raise VirtopsError("%s: aggregates[%d] must be a mapping with a 'name'" % (where, pos), key="aggregates")
        metadata = agg.get("metadata") or {}
        if not _is_mapping(metadata):
            raise VirtopsError("%s: aggregates[%d].metadata must be a mapping" % (where, pos), key="aggregates")
        result.append(Aggregate(name=str(agg["name"]),
                                metadata={str(k): match_string(v) for k, v in metadata.items()}))
    return tuple(result)


def _parse_instance(raw: Any, where: str, pos: int) -> InstanceInfo:
    if not _is_mapping(raw):
        raise VirtopsError("%s: instances[%d] must be a mapping" % (where, pos), key="instances")
    uuid = raw.get("uuid") or None
    name = raw.get("name") or None
    if not uuid and not name:
        raise VirtopsError("%s: instances[%d] has neither 'uuid' nor 'name'" % (where, pos), key="instances")
    group = raw.get("server_group")
    if group is not None and _is_mapping(group):
        group = group.get("name")
    return InstanceInfo(uuid=str(uuid) if uuid else None, name=str(name) if name else None,
                        server_group=str(group) if group else None,
                        vm_state=raw.get("vm_state"), task_state=raw.get("task_state"))


def canonical_arch(name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    lowered = str(name).lower()
    return _ARCH_ALIASES.get(lowered, lowered)


def _parse_supported_instances(raw: Any, arch: Optional[str], virt_type: Optional[str], where: str) -> tuple:
    if raw is not None:
        if not _is_list(raw):
            raise VirtopsError("%s: 'supported_instances' must be a list of [arch, hv_type, vm_mode]" % where,
                               key="supported_instances")
        triples = []
        for item in raw:
            if not _is_list(item) or len(item) != 3:
                raise VirtopsError("%s: 'supported_instances' entries must be [arch, hv_type, vm_mode], got %r"
                                   % (where, item), key="supported_instances")
            triples.append((canonical_arch(item[0]), str(item[1]).lower(), str(item[2]).lower()))
        return tuple(triples)
    if not arch:
        return ()
    # What Nova's libvirt driver advertises for a host whose guests are hvm on its own arch:
    # every domain type libvirt offers; 'qemu' (TCG) is always there, 'kvm' only when usable.
    arch = canonical_arch(arch)
    if (virt_type or "").lower() == "kvm":
        return ((arch, "kvm", "hvm"), (arch, "qemu", "hvm"))
    return ((arch, "qemu", "hvm"),)


@dataclass(frozen=True)
class HostState:
    """One compute host as the scheduler sees it (see ``docs/host_facts.md``)."""

    hostname: str
    vcpus: float
    vcpus_used: float
    memory_mb: float
    memory_mb_used: float
    local_gb: float
    local_gb_used: float
    free_disk_gb: Optional[float] = None
    enabled: bool = True
    availability_zone: Optional[str] = None
    aggregates: tuple = ()
    hypervisor_type: Optional[str] = None
    hypervisor_version: Optional[int] = None
    arch: Optional[str] = None
    virt_type: Optional[str] = None
    cpu_allocation_ratio: float = DEFAULT_CPU_ALLOCATION_RATIO
    ram_allocation_ratio: float = DEFAULT_RAM_ALLOCATION_RATIO
    disk_allocation_ratio: float = DEFAULT_DISK_ALLOCATION_RATIO
    capabilities: Mapping = field(default_factory=dict)
    instances: tuple = ()
    supported_instances: tuple = ()

    def __post_init__(self):
        # Without a filesystem figure, the accounted free space is all we know.
        if self.free_disk_gb is None:
            object.__setattr__(self, "free_disk_gb", self.local_gb - self.local_gb_used)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_facts(cls, facts: Mapping, index: Optional[int] = None, hostname: Optional[str] = None) -> "HostState":
        """Parse one host's facts. ``hostname`` fills a missing ``hostname`` key (dict input
        keyed by inventory name); errors name the host and the key."""
        if not _is_mapping(facts):
            raise VirtopsError("%s: must be a mapping, got %s" % (_where(hostname, index), type(facts).__name__))
        name = facts.get("hostname") or hostname
        if not name:
            raise VirtopsError("%s: missing key 'hostname'" % _where(None, index), key="hostname")
        name = str(name)
        if hostname and str(hostname) != name:
            raise VirtopsError("host facts for %s: 'hostname' says %s" % (hostname, name), key="hostname")
        where = _where(name, index)
        numbers = {key: _number(facts, key, where, required=True) for key in _REQUIRED_NUMBERS}
        free_disk_gb = _number(facts, "free_disk_gb", where, default=None, minimum=None)

        enabled = facts.get("enabled", True)
        if enabled is None:
            enabled = True
        if not isinstance(enabled, bool):
            if isinstance(enabled, str) and enabled.lower() in ("true", "yes", "1", "false", "no", "0"):
                enabled = enabled.lower() in ("true", "yes", "1")
            else:
                raise VirtopsError("%s: 'enabled' must be a boolean, got %r" % (where, enabled), key="enabled")

        capabilities = facts.get("capabilities") or {}
        if isinstance(capabilities, str):
            try:
                capabilities = json.loads(capabilities)
            except ValueError:
                capabilities = None
        if not _is_mapping(capabilities):
            raise VirtopsError("%s: 'capabilities' must be a mapping" % where, key="capabilities")

        raw_instances = facts.get("instances") or ()
        if not _is_list(raw_instances):
            raise VirtopsError("%s: 'instances' must be a list" % where, key="instances")
        arch = _string(facts, "arch", where)
        virt_type = _string(facts, "virt_type", where)
        version = _number(facts, "hypervisor_version", where, default=None)
        return cls(
            hostname=name,
            enabled=enabled,
            availability_zone=_string(facts, "availability_zone", where),
            aggregates=_parse_aggregates(facts.get("aggregates"), where),
            hypervisor_type=_string(facts, "hypervisor_type", where),
            hypervisor_version=int(version) if version is not None else None,
            arch=arch,
            virt_type=virt_type,
            free_disk_gb=free_disk_gb,
            cpu_allocation_ratio=_ratio(facts, "cpu_allocation_ratio", where, DEFAULT_CPU_ALLOCATION_RATIO),
            ram_allocation_ratio=_ratio(facts, "ram_allocation_ratio", where, DEFAULT_RAM_ALLOCATION_RATIO),
            disk_allocation_ratio=_ratio(facts, "disk_allocation_ratio", where, DEFAULT_DISK_ALLOCATION_RATIO),
            capabilities=dict(capabilities),
            instances=tuple(_parse_instance(inst, where, pos) for pos, inst in enumerate(raw_instances)),
            supported_instances=_parse_supported_instances(facts.get("supported_instances"), arch, virt_type, where),
            **numbers,
        )

    # ------------------------------------------------------------- Nova's values
    @property
    def vcpus_total(self) -> float:
        return self.vcpus

    @property
    def total_usable_ram_mb(self) -> float:
        return self.memory_mb

    @property
    def free_ram_mb(self) -> float:
        return self.memory_mb - self.memory_mb_used

    @property
    def total_usable_disk_gb(self) -> float:
        return self.local_gb

    @property
    def disk_mb_used(self) -> float:
        return self.local_gb_used * 1024

    @property
    def free_disk_mb(self) -> float:
        """Nova: free_disk_gb (= local_gb - local_gb_used), lowered to what the filesystem
        really has free (disk_available_least), in MB."""
        free_gb = self.local_gb - self.local_gb_used
        if self.free_disk_gb < free_gb:
            free_gb = self.free_disk_gb
        return free_gb * 1024

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio - self.vcpus_used

    @property
    def num_instances(self) -> int:
        return len(self.instances)

    # ------------------------------------------------------ request-time lookups
    @cached_property
    def availability_zones(self) -> frozenset:
        """The ``availability_zone`` metadata of the host's aggregates (Nova's source of
        truth); the host's own fact when no aggregate names a zone; empty when neither is
        set (the host is then in the default zone)."""
        zones = frozenset(agg.metadata["availability_zone"] for agg in self.aggregates
                          if agg.metadata.get("availability_zone"))
        if not zones and self.availability_zone:
            return frozenset((self.availability_zone,))
        return zones

    @cached_property
    def aggregate_metadata(self) -> Mapping:
        """Nova's aggregate_metadata_get_by_host: key -> set of values over all aggregates."""
        result: dict = {}
        for agg in self.aggregates:
            for key, value in agg.metadata.items():
                result.setdefault(key, set()).add(value)
        return {key: frozenset(values) for key, values in result.items()}

    @cached_property
    def weight_multiplier_keys(self) -> frozenset:
        """Which weigher multipliers the host's aggregates set (usually none)."""
        if not self.aggregates:
            return frozenset()
        return frozenset(k for k in ("ram_weight_multiplier", "disk_weight_multiplier", "cpu_weight_multiplier")
                         if k in self.aggregate_metadata)

    @cached_property
    def server_group_counts(self) -> Mapping:
        """How many instances on the host name each server group in their record."""
        counts: dict = {}
        for inst in self.instances:
            if inst.server_group:
                counts[inst.server_group] = counts.get(inst.server_group, 0) + 1
        return counts

    @cached_property
    def instance_ids(self) -> frozenset:
        """Every uuid and name of the instances on the host."""
        return frozenset(i for inst in self.instances for i in inst.identities)

    def capability(self, name: str) -> Any:
        """The host value a flavor extra spec names: the ``capabilities`` fact first, then
        the host's own attributes under Nova's names; None when the host has no such value."""
        value = self.capabilities.get(name)
        if value is not None:
            return value
        if name in CAPABILITY_ATTRIBUTES:
            if name in ("host", "nodename", "hypervisor_hostname"):
                return self.hostname
            return getattr(self, name)
        return None

    def has_capability(self, name: str) -> bool:
        return name in self.capabilities or name in CAPABILITY_ATTRIBUTES

    # --------------------------------------------------------------- consuming
    def consume(self, vcpus: float, ram_mb: float, disk_gb: float, instance: InstanceInfo) -> "HostState":
        """The state after placing one more instance here (Nova's consume_from_request:
        vcpus, RAM and root+ephemeral disk; swap is not counted as local disk)."""
        return replace(
            self,
            vcpus_used=self.vcpus_used + vcpus,
            memory_mb_used=self.memory_mb_used + ram_mb,
            local_gb_used=self.local_gb_used + disk_gb,
            free_disk_gb=self.free_disk_gb - disk_gb,
            instances=self.instances + (instance,),
        )


def parse_hosts(hosts: Any) -> list:
    """Host facts as a list of mappings, or a mapping inventory name -> facts, to HostStates.
    Host order is kept (it breaks ties between equal weights)."""
    if isinstance(hosts, HostState):
        hosts = [hosts]
    if _is_mapping(hosts):
        result = [facts if isinstance(facts, HostState) else HostState.from_facts(facts, index=pos, hostname=str(name))
                  for pos, (name, facts) in enumerate(hosts.items())]
    elif _is_list(hosts):
        result = [facts if isinstance(facts, HostState) else HostState.from_facts(facts, index=pos)
                  for pos, facts in enumerate(hosts)]
    else:
        raise VirtopsError("hosts must be a list of host facts or a mapping hostname -> host facts, got %s"
                           % type(hosts).__name__)
    names = [host.hostname for host in result]
    if len(set(names)) != len(names):
        seen: set = set()
        for name in names:
            if name in seen:
                raise VirtopsError("host facts for %s: given twice" % name, key="hostname")
            seen.add(name)
    return result
