# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host filters (Nova's FilterScheduler filters) and the flavor extra-spec operators.

Each filter is a small class with ``name`` and ``host_passes(host, spec) -> bool``. The
scheduler makes fresh filter objects for every request and calls, around that:

- ``prepare(hosts, spec) -> bool``: read the request once (compile extra specs, find the
  group's hosts); False means the request does not use this filter, so every host passes
  it and the scheduler skips it (same result, less work).
- ``on_selected(host, spec) -> bool``: a host was chosen for one instance; True means the
  answer may have changed for every host, not only the chosen one.
- ``update_limits(host, limits)``: the ceilings the host's claim checks again.
"""
from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping
from typing import Any, Callable, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import (
    HostState,
    canonical_arch,
    match_string,
)

# --------------------------------------------------------------------------- operators
_NUMERIC_OPS: dict = {
    "=": operator.ge,  # "= 4" means "at least 4"
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
}
_STRING_OPS: dict = {
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}
OPERATORS = tuple(_NUMERIC_OPS) + tuple(_STRING_OPS) + ("<in>", "<all-in>", "<or>")


class Requirement:
    """One extra spec value compiled once: ``matches(value)`` tells whether a host value
    (a string) satisfies it, with Nova's extra_specs_ops semantics:

    - the first word is the operator; an unknown first word means the whole text must
      equal the value exactly;
    - ``=``, ``==``, ``!=``, ``>=``, ``<=`` compare as numbers (``=`` is ``>=``);
    - ``s==`` ``s!=`` ``s<`` ``s<=`` ``s>`` ``s>=`` compare as strings;
    - ``<in> x``: x is a substring of the value; ``<all-in> x y``: each is;
    - ``<or> a <or> b``: the value equals one of a, b;
    - an operator without an operand matches nothing.
    """

    __slots__ = ("text", "op", "_test")

    def __init__(self, text: str, what: str = "extra spec"):
        self.text = text
        words = text.split()
        self.op = words[0] if words and (words[0] in OPERATORS) else None
        self._test: Callable[[str], bool] = self._compile(text, words, what)

    def _compile(self, text: str, words: list, what: str) -> Callable[[str], bool]:
        op = self.op
        if op is None:
            return lambda value: value == text
        operands = words[1:]
        if op == "<or>":
            # Nova reads value, keyword, value, keyword ...: the words at odd places.
            choices = frozenset(operands[0::2])
            return lambda value: value in choices
        if not operands:
            return lambda value: False
        if op == "<all-in>":
            needles = tuple(operands)
            return lambda value: all(n in value for n in needles)
        operand = operands[0]
        if op == "<in>":
            return lambda value: operand in value
        if op in _STRING_OPS:
            method = _STRING_OPS[op]
            return lambda value: method(value, operand)
        method = _NUMERIC_OPS[op]
        try:
            wanted = float(operand)
        except ValueError:
            raise VirtopsError("%s %r: operator '%s' compares numbers, %r is not one" % (what, text, op, operand)) \
                from None

        def numeric(value: str) -> bool:
            try:
                return method(float(value), wanted)
            except ValueError:
                return False
        return numeric

    def matches(self, value: Any) -> bool:
        if value is None:
            return False
        return self._test(value if isinstance(value, str) else match_string(value))

    def __repr__(self) -> str:
        return "Requirement(%r)" % self.text


def match(value: Any, req: str) -> bool:
    """One-shot form of :class:`Requirement` (Nova's extra_specs_ops.match)."""
    return Requirement(req).matches(value)


# ------------------------------------------------------------ image property names
# Nova's field enums (nova/objects/fields.py) and their canonical spellings.
ARCHITECTURES = frozenset((
    "alpha", "armv6", "armv7l", "armv7b", "aarch64", "cris", "i686", "ia64", "lm32", "m68k",
    "microblaze", "microblazeel", "mips", "mipsel", "mips64", "mips64el", "openrisc", "parisc",
    "parisc64", "ppc", "ppcle", "ppc64", "ppc64le", "ppcemb", "riscv32", "riscv64", "s390",
    "s390x", "sh4", "sh4eb", "sparc", "sparc64", "unicore32", "x86_64", "xtensa", "xtensaeb",
))
HV_TYPES = frozenset((
    "baremetal", "bhyve", "docker", "fake", "hyperv", "ironic", "kqemu", "kvm", "lxc", "lxd",
    "openvz", "parallels", "phyp", "qemu", "tcg", "uml", "vbox", "virtuozzo", "vmware", "xen", "zvm",
))
VM_MODES = frozenset(("hvm", "xen", "uml", "exe"))
_HV_ALIASES = {"xapi": "xen"}
_VM_MODE_ALIASES = {"pv": "xen", "hv": "hvm", "baremetal": "hvm"}

# (new name, legacy name) of the image properties ImagePropertiesFilter reads.
IMAGE_ARCH_PROPS = ("hw_architecture", "architecture")
IMAGE_HV_TYPE_PROPS = ("img_hv_type", "hypervisor_type")
IMAGE_VM_MODE_PROPS = ("hw_vm_mode", "vm_mode")
IMAGE_HV_VERSION_PROPS = ("img_hv_requested_version", "hypervisor_version_requires")


def _image_prop(props: Mapping, names: tuple) -> Optional[str]:
    for name in names:
        value = props.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def canonicalize_image_props(props: Mapping) -> tuple:
    """(arch, hv_type, vm_mode, version requirement) from image properties, canonical as
    Nova makes them; an unknown value is refused with the property named."""
    arch = _image_prop(props, IMAGE_ARCH_PROPS)
    if arch is not None:
        arch = canonical_arch(arch)
        if arch not in ARCHITECTURES:
            raise VirtopsError("image property hw_architecture: %r is not a known architecture" % arch)
    hv_type = _image_prop(props, IMAGE_HV_TYPE_PROPS)
    if hv_type is not None:
        hv_type = _HV_ALIASES.get(hv_type.lower(), hv_type.lower())
        if hv_type not in HV_TYPES:
            raise VirtopsError("image property img_hv_type: %r is not a known hypervisor type" % hv_type)
    vm_mode = _image_prop(props, IMAGE_VM_MODE_PROPS)
    if vm_mode is not None:
        vm_mode = _VM_MODE_ALIASES.get(vm_mode.lower(), vm_mode.lower())
        if vm_mode not in VM_MODES:
            raise VirtopsError("image property hw_vm_mode: %r is not a known vm mode" % vm_mode)
    version = _image_prop(props, IMAGE_HV_VERSION_PROPS)
    return arch, hv_type, vm_mode, (VersionPredicate(version) if version else None)


def version_int_to_str(version: int) -> str:
    """Nova's convert_version_to_str: 7002000 -> '7.2.0'."""
    parts = []
    while version:
        parts.insert(0, str(version % 1000))
        version //= 1000
    return ".".join(parts)


_PREDICATE = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)*)\s*$")
_COMPARE = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
            ">": operator.gt, ">=": operator.ge}


class VersionPredicate:
    """The ``>=2.0, <3.0`` form Nova hands to distutils' VersionPredicate."""

    def __init__(self, text: str):
        self.text = text
        self.conditions = []
        for part in text.strip().strip("()").split(","):
            found = _PREDICATE.match(part)
            if not found:
                raise VirtopsError("image property img_hv_requested_version %r: use e.g. '>=6.0, <8.0'" % text)
            self.conditions.append((_COMPARE[found.group(1)], self._tuple(found.group(2))))

    @staticmethod
    def _tuple(version: str) -> tuple:
        return tuple(int(p) for p in version.split("."))

    def satisfied_by(self, version: str) -> bool:
        have = self._tuple(version)
        for compare, wanted in self.conditions:
            width = max(len(have), len(wanted))
            if not compare(have + (0,) * (width - len(have)), wanted + (0,) * (width - len(wanted))):
                return False
        return True


# ------------------------------------------------------------------------ filters
class BaseFilter:
    name = "BaseFilter"

    def prepare(self, hosts: list, spec) -> bool:
        return True

    def host_passes(self, host: HostState, spec) -> bool:
        raise NotImplementedError

    def filter_indices(self, hosts: list, indices: list, spec) -> list:
        """The indices (into ``hosts``) of the hosts that pass, in order. Same answers as
        host_passes; hot filters override it with an inlined form."""
        passes = self.host_passes
        return [i for i in indices if passes(hosts[i], spec)]

    def on_selected(self, host: HostState, spec) -> bool:
        return False

    def update_limits(self, host: HostState, limits: dict) -> None:
        return None


class RetryFilter(BaseFilter):
    """Hosts already tried for this request (or excluded by the caller) do not pass."""

    name = "RetryFilter"

    def prepare(self, hosts, spec):
        return bool(spec.ignore_hosts)

    def host_passes(self, host, spec):
        return host.hostname not in spec.ignore_hosts

    def filter_indices(self, hosts, indices, spec):
        ignore = spec.ignore_hosts
        return [i for i in indices if hosts[i].hostname not in ignore]


class AvailabilityZoneFilter(BaseFilter):
    """The host must be in the requested zone. A host's zones come from the
    ``availability_zone`` metadata of its aggregates, else from its own fact; a host with
    neither is in the default zone."""

    name = "AvailabilityZoneFilter"

    def __init__(self, default_zone: str = "nova"):
        self.default_zone = default_zone

    def prepare(self, hosts, spec):
        return bool(spec.availability_zone)

    def host_passes(self, host, spec):
        zones = host.availability_zones
        if zones:
            return spec.availability_zone in zones
        return spec.availability_zone == self.default_zone

    def filter_indices(self, hosts, indices, spec):
        zone = spec.availability_zone
        in_default = zone == self.default_zone
        return [i for i in indices if ((zone in zones) if (zones := hosts[i].availability_zones) else in_default)]


class ComputeFilter(BaseFilter):
    """Disabled hosts do not pass."""

    name = "ComputeFilter"

    def host_passes(self, host, spec):
        return host.enabled

    def filter_indices(self, hosts, indices, spec):
        return [i for i in indices if hosts[i].enabled]


class RamFilter(BaseFilter):
    """memory_mb x ram_allocation_ratio - memory_mb_used must cover the flavor's RAM."""

    name = "RamFilter"

    def host_passes(self, host, spec):
        # limit - used, with used = total - free = memory_mb_used
        return host.memory_mb * host.ram_allocation_ratio - host.memory_mb_used >= spec.flavor.ram_mb

    def filter_indices(self, hosts, indices, spec):
        wanted = spec.flavor.ram_mb
        return [i for i in indices
                if (h := hosts[i]).memory_mb * h.ram_allocation_ratio - h.memory_mb_used >= wanted]

    def update_limits(self, host, limits):
        limits["memory_mb"] = host.memory_mb * host.ram_allocation_ratio


class DiskFilter(BaseFilter):
    """local_gb x disk_allocation_ratio - used must cover (root + ephemeral) GB + swap MB,
    where used = local_gb - free and free is the smaller of the accounted free space and
    what the filesystem has (Nova's disk_available_least)."""

    name = "DiskFilter"

    def host_passes(self, host, spec):
        total_mb = host.local_gb * 1024
        return total_mb * host.disk_allocation_ratio - (total_mb - host.free_disk_mb) >= spec.flavor.disk_mb

    def filter_indices(self, hosts, indices, spec):
        wanted = spec.flavor.disk_mb
        # free_disk_mb inlined: the smaller of accounted free GB and the filesystem's, x 1024
        return [i for i in indices
                if ((total := (h := hosts[i]).local_gb * 1024) * h.disk_allocation_ratio
                    - (total - ((fs if (fs := h.free_disk_gb) < (free := h.local_gb - h.local_gb_used) else free)
                                * 1024)) >= wanted)]

    def update_limits(self, host, limits):
        limits["disk_gb"] = host.local_gb * 1024 * host.disk_allocation_ratio / 1024


class CoreFilter(BaseFilter):
    """vcpus x cpu_allocation_ratio - vcpus_used must cover the flavor's vCPUs, and a
    flavor may not have more vCPUs than the host has (no overcommit against itself).
    A host reporting 0 vCPUs passes (Nova: CPU collection assumed broken)."""

    name = "CoreFilter"

    def host_passes(self, host, spec):
        if not host.vcpus:
            return True
        wanted = spec.flavor.vcpus
        if wanted > host.vcpus:
            return False
        return host.vcpus * host.cpu_allocation_ratio - host.vcpus_used >= wanted

    def filter_indices(self, hosts, indices, spec):
        wanted = spec.flavor.vcpus
        return [i for i in indices
                if not (h := hosts[i]).vcpus
                or (wanted <= h.vcpus and h.vcpus * h.cpu_allocation_ratio - h.vcpus_used >= wanted)]

    def update_limits(self, host, limits):
        if host.vcpus:
            limits["vcpu"] = host.vcpus * host.cpu_allocation_ratio


def _descend(cap: Any, path: tuple) -> Any:
    """Walk the rest of a ``cpu_info:arch``-style path; JSON strings are decoded on the way
    (Nova keeps cpu_info as JSON). None when the path does not exist."""
    for part in path:
        if cap is None:
            return None
        if isinstance(cap, str):
            try:
                cap = json.loads(cap)
            except ValueError:
                return None
        if not isinstance(cap, Mapping):
            return None
        cap = cap.get(part)
    return cap


class ComputeCapabilitiesFilter(BaseFilter):
    """Flavor extra specs against host capabilities. ``capabilities:<path>`` keys are
    checked; an unscoped key is checked only when the host has that capability; keys in
    any other namespace (``hw:``, ``quota:``, ``aggregate_instance_extra_specs:`` ...) are
    left to others. A scoped capability the host lacks fails the host."""

    name = "ComputeCapabilitiesFilter"

    def __init__(self):
        self.specs: list = []

    def prepare(self, hosts, spec):
        self.specs = []
        for key, value in spec.flavor.extra_specs.items():
            scope = key.split(":")
            if len(scope) == 1:
                unscoped = True
            elif scope[0] == "capabilities":
                unscoped = False
                scope = scope[1:]
            else:
                continue
            requirement = Requirement(value, "flavor extra spec %s:" % key)
            # answers by host value: fleets repeat the same few values
            memo: dict = {}
            self.specs.append((scope[0], tuple(scope[1:]), requirement, unscoped, memo))
        return bool(self.specs)

    def host_passes(self, host, spec):
        capabilities = host.capabilities
        for first, rest, requirement, unscoped, memo in self.specs:
            cap = capabilities.get(first)
            if cap is None:
                if unscoped and not host.has_capability(first):
                    continue
                cap = host.capability(first)
            if rest:
                if len(rest) == 1 and isinstance(cap, dict):
                    cap = cap.get(rest[0])
                else:
                    cap = _descend(cap, rest)
            if cap is None:
                return False
            text = cap if isinstance(cap, str) else match_string(cap)
            answer = memo.get(text)
            if answer is None:
                answer = memo[text] = requirement.matches(text)
            if not answer:
                return False
        return True


class ImagePropertiesFilter(BaseFilter):
    """The image's architecture, hypervisor type and vm mode must be among what the host
    supports (``supported_instances``), and the host's hypervisor version must satisfy
    ``img_hv_requested_version`` when both are known. Images without these properties
    pass everywhere."""

    name = "ImagePropertiesFilter"

    def __init__(self):
        self.wanted: tuple = ()
        self.version = None

    def prepare(self, hosts, spec):
        arch, hv_type, vm_mode, self.version = canonicalize_image_props(spec.image_properties)
        self.wanted = (arch, hv_type, vm_mode)
        return any(self.wanted)

    def host_passes(self, host, spec):
        if not host.supported_instances:
            return False
        arch, hv_type, vm_mode = self.wanted
        for s_arch, s_hv, s_mode in host.supported_instances:
            if (arch and arch != s_arch) or (hv_type and hv_type != s_hv) or (vm_mode and vm_mode != s_mode):
                continue
            if self.version is None or not host.hypervisor_version:
                return True
            if self.version.satisfied_by(version_int_to_str(host.hypervisor_version)):
                return True
        return False


class AggregateInstanceExtraSpecsFilter(BaseFilter):
    """Flavor extra specs ``aggregate_instance_extra_specs:<key>`` (and, as in Nova,
    unscoped ``<key>``) against the metadata of the host's aggregates: some aggregate
    must carry the key with a value that satisfies the spec."""

    name = "AggregateInstanceExtraSpecsFilter"
    SCOPE = "aggregate_instance_extra_specs"

    def __init__(self):
        self.specs: list = []

    def prepare(self, hosts, spec):
        self.specs = []
        for key, value in spec.flavor.extra_specs.items():
            scope = key.split(":", 1)
            if len(scope) > 1:
                if scope[0] != self.SCOPE:
                    continue
                name = scope[1]
            else:
                name = scope[0]
            self.specs.append((name, Requirement(value, "flavor extra spec %s:" % key)))
        return bool(self.specs)

    def host_passes(self, host, spec):
        metadata = host.aggregate_metadata
        for name, requirement in self.specs:
            values = metadata.get(name)
            if not values or not any(requirement.matches(v) for v in values):
                return False
        return True


class _GroupFilter(BaseFilter):
    """Counts the group's members per host once per request; after each pick only the
    chosen host's count is taken again."""

    policy = ""

    def __init__(self):
        self.group = None
        self.moving: frozenset = frozenset()
        self.counts: dict = {}

    def prepare(self, hosts, spec):
        self.group = group = spec.server_group
        if group is None or group.policy != self.policy:
            return False
        # An instance being moved sits on its source host already: it is not its own
        # neighbour there (Nova's filters skip the instance itself for moves).
        own = spec.own_identities()
        members = group.members
        moving = set()
        counts = {}
        for host in hosts:
            if not host.instances:
                continue
            ids = host.instance_ids
            if not own.isdisjoint(ids):
                moving.update(id(inst) for inst in host.instances if inst.uuid in own or inst.name in own)
                self.moving = frozenset(moving)
                count = self.members_on(host)
            elif members and not members.isdisjoint(ids):
                count = self.members_on(host)
            else:
                # the common case: members are the instances whose record names the group
                count = host.server_group_counts.get(group.name, 0)
            if count:
                counts[host.hostname] = count
        self.moving = frozenset(moving)
        self.counts = counts
        return True

    def members_on(self, host: HostState) -> int:
        group, moving = self.group, self.moving
        return sum(1 for inst in host.instances if group.has_member(inst) and id(inst) not in moving)

    def on_selected(self, host, spec):
        self.counts[host.hostname] = self.members_on(host)
        return False


class ServerGroupAntiAffinityFilter(_GroupFilter):
    """Policy anti-affinity: a host may hold fewer than ``max_server_per_host`` (default 1)
    members of the group, counting members placed earlier in the same request."""

    name = "ServerGroupAntiAffinityFilter"
    policy = "anti-affinity"

    def host_passes(self, host, spec):
        return self.counts.get(host.hostname, 0) < self.group.max_server_per_host


class ServerGroupAffinityFilter(_GroupFilter):
    """Policy affinity: once any member of the group runs somewhere (or was placed
    earlier in this request), only the hosts with members pass."""

    name = "ServerGroupAffinityFilter"
    policy = "affinity"

    def host_passes(self, host, spec):
        return not self.counts or host.hostname in self.counts

    def on_selected(self, host, spec):
        first = not self.counts
        super().on_selected(host, spec)
        return first


class SameHostFilter(BaseFilter):
    """Hint same_host: the host must run one of the named instances (names or uuids)."""

    name = "SameHostFilter"

    def __init__(self):
        self.wanted: frozenset = frozenset()

    def prepare(self, hosts, spec):
        self.wanted = frozenset(spec.same_host)
        return bool(self.wanted)

    def host_passes(self, host, spec):
        return not self.wanted.isdisjoint(host.instance_ids)


class DifferentHostFilter(BaseFilter):
    """Hint different_host: the host must run none of the named instances."""

    name = "DifferentHostFilter"

    def __init__(self):
        self.unwanted: frozenset = frozenset()

    def prepare(self, hosts, spec):
        self.unwanted = frozenset(spec.different_host)
        return bool(self.unwanted)

    def host_passes(self, host, spec):
        return self.unwanted.isdisjoint(host.instance_ids)


FILTER_CLASSES = {cls.name: cls for cls in (
    RetryFilter, AvailabilityZoneFilter, ComputeFilter, RamFilter, DiskFilter, CoreFilter,
    ComputeCapabilitiesFilter, ImagePropertiesFilter, AggregateInstanceExtraSpecsFilter,
    ServerGroupAntiAffinityFilter, ServerGroupAffinityFilter, SameHostFilter, DifferentHostFilter,
)}


def make_filters(names, default_zone: str = "nova") -> list:
    """Fresh filter objects for one request, in the configured order."""
    result = []
    for name in names:
        cls = FILTER_CLASSES.get(name)
        if cls is None:
            raise VirtopsError("config.enabled_filters: unknown filter %r; known: %s"
                               % (name, ", ".join(FILTER_CLASSES)))
        result.append(cls(default_zone) if cls is AvailabilityZoneFilter else cls())
    if len({f.name for f in result}) != len(result):
        raise VirtopsError("config.enabled_filters: a filter is listed twice: %s" % ", ".join(names))
    return result
