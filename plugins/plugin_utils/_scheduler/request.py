# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduling request (Nova's RequestSpec) and the scheduler's configuration."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import (
    DEFAULT_AVAILABILITY_ZONE,
)

# Nova's multi_instance_display_name_template default.
MULTI_INSTANCE_NAME_TEMPLATE = "%(name)s-%(count)d"
GROUP_POLICIES = ("affinity", "anti-affinity")


def _int(value: Any, what: str, minimum: int = 0) -> int:
    """A whole number as the lookup's callers write it: an int, a float such as ``2.0`` or
    the text of one (``"02"``); never a bool."""
    return strict_int(value, what, minimum=minimum, text="loose", floats=True)


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise VirtopsError("%s must be a number, got %r" % (what, value))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise VirtopsError("%s must be a number, got %r" % (what, value)) from None


def _mapping(value: Any, what: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise VirtopsError("%s must be a mapping, got %s" % (what, type(value).__name__))
    return value


def _str_list(value: Any, what: str) -> tuple:
    """A list of strings; a single string counts as a one-item list (as Nova's hints do)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, Sequence):
        raise VirtopsError("%s must be a list of strings, got %s" % (what, type(value).__name__))
    result = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise VirtopsError("%s must be a list of non-empty strings, got %r" % (what, item))
        result.append(str(item))
    return tuple(result)


def _check_keys(data: Mapping, allowed: tuple, what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise VirtopsError("%s: unknown key(s) %s; allowed: %s" % (what, ", ".join(unknown), ", ".join(allowed)))


def _flavor(data: Any) -> Flavor:
    """The request's flavor: the model's Flavor (as Nova's RequestSpec holds objects.Flavor),
    with root_gb required, since the disk filters weigh it."""
    data = _mapping(data, "request.flavor")
    for key in ("vcpus", "ram_mb", "root_gb"):
        if data.get(key) is None:
            raise VirtopsError("request.flavor: missing key '%s'" % key)
    return Flavor.from_dict(data, where="request.flavor")


@dataclass(frozen=True)
class ServerGroup:
    name: str
    policy: str
    members: frozenset = frozenset()
    max_server_per_host: int = 1

    @classmethod
    def from_dict(cls, data: Any) -> "ServerGroup":
        data = _mapping(data, "request.server_group")
        if not data.get("name"):
            raise VirtopsError("request.server_group: missing key 'name'")
        policy = data.get("policy")
        if policy is None and data.get("policies"):
            policies = _str_list(data["policies"], "request.server_group.policies")
            policy = policies[0] if len(policies) == 1 else None
        if policy not in GROUP_POLICIES:
            raise VirtopsError("request.server_group %s: policy must be one of %s, got %r"
                               % (data["name"], ", ".join(GROUP_POLICIES), policy))
        rules = _mapping(data.get("rules"), "request.server_group.rules")
        max_per_host = 1
        if rules.get("max_server_per_host") is not None:
            if policy != "anti-affinity":
                raise VirtopsError("request.server_group %s: rule max_server_per_host needs policy anti-affinity"
                                   % data["name"])
            max_per_host = _int(rules["max_server_per_host"], "request.server_group.rules.max_server_per_host", 1)
        return cls(name=str(data["name"]), policy=policy,
                   members=frozenset(_str_list(data.get("members"), "request.server_group.members")),
                   max_server_per_host=max_per_host)

    def has_member(self, instance) -> bool:
        """An instance (InstanceInfo) is a member when the group lists its uuid or name, or
        when its record names the group."""
        if instance.server_group == self.name:
            return True
        return (instance.uuid in self.members) or (instance.name in self.members)


@dataclass(frozen=True)
class RequestSpec:
    """Nova's RequestSpec, reduced to what the filters and weighers read."""

    flavor: Flavor
    instance_names: tuple
    instance_uuids: tuple = ()
    image_properties: Mapping = field(default_factory=dict)
    availability_zone: Optional[str] = None
    force_host: Optional[str] = None
    force_node: Optional[str] = None
    same_host: tuple = ()
    different_host: tuple = ()
    server_group: Optional[ServerGroup] = None
    ignore_hosts: frozenset = frozenset()

    KEYS = ("flavor", "image", "num_instances", "name", "instance_names", "instance_uuids",
            "availability_zone", "scheduler_hints", "server_group", "ignore_hosts")

    @property
    def num_instances(self) -> int:
        return len(self.instance_names)

    @classmethod
    def from_dict(cls, data: Any) -> "RequestSpec":
        data = _mapping(data, "request")
        _check_keys(data, cls.KEYS, "request")
        if "flavor" not in data:
            raise VirtopsError("request: missing key 'flavor'")
        flavor = _flavor(data["flavor"])

        names = _str_list(data.get("instance_names"), "request.instance_names")
        count = data.get("num_instances")
        if names:
            if count is not None and _int(count, "request.num_instances", 1) != len(names):
                raise VirtopsError("request: num_instances is %s but %d instance_names are given"
                                   % (count, len(names)))
        else:
            count = 1 if count is None else _int(count, "request.num_instances", 1)
            base = data.get("name")
            if not base or not isinstance(base, str):
                raise VirtopsError("request: give 'instance_names' (or 'name' with 'num_instances')")
            names = (base,) if count == 1 else tuple(
                MULTI_INSTANCE_NAME_TEMPLATE % {"name": base, "count": n} for n in range(1, count + 1))
        if len(set(names)) != len(names):
            raise VirtopsError("request.instance_names: names must be unique, got %s" % ", ".join(names))
        uuids = _str_list(data.get("instance_uuids"), "request.instance_uuids")
        if uuids and len(uuids) != len(names):
            raise VirtopsError("request: %d instance_uuids for %d instances" % (len(uuids), len(names)))

        image = data.get("image")
        properties: Mapping = {}
        if isinstance(image, Mapping):
            properties = _mapping(image.get("properties"), "request.image.properties")
        elif image is not None:
            raise VirtopsError("request.image must be the image's definition (a mapping with 'properties'), got %r"
                               % (image,))

        zone, force_host, force_node = cls._parse_zone(data.get("availability_zone"))

        hints = _mapping(data.get("scheduler_hints"), "request.scheduler_hints")
        group = None
        if data.get("server_group"):
            group = ServerGroup.from_dict(data["server_group"])
        hint_group = hints.get("group")
        if hint_group:
            if group is None:
                raise VirtopsError("request: scheduler hint group=%s needs the group's definition in "
                                   "request.server_group (name, policy, members)" % hint_group)
            if hint_group != group.name:
                raise VirtopsError("request: scheduler hint group=%s but server_group is %s"
                                   % (hint_group, group.name))
        return cls(
            flavor=flavor,
            instance_names=names,
            instance_uuids=uuids,
            image_properties={str(k): v for k, v in properties.items()},
            availability_zone=zone,
            force_host=force_host,
            force_node=force_node,
            same_host=_str_list(hints.get("same_host"), "request.scheduler_hints.same_host"),
            different_host=_str_list(hints.get("different_host"), "request.scheduler_hints.different_host"),
            server_group=group,
            ignore_hosts=frozenset(_str_list(data.get("ignore_hosts"), "request.ignore_hosts")),
        )

    @staticmethod
    def _parse_zone(value: Any) -> tuple:
        """Nova's ``az``, ``az:host``, ``az:host:node``, ``:host``, ``az::node`` forms."""
        if value is None or value == "":
            return None, None, None
        if not isinstance(value, str):
            raise VirtopsError("request.availability_zone must be a string, got %r" % (value,))
        parts = value.split(":")
        if len(parts) > 3:
            raise VirtopsError("request.availability_zone %r: use az, az:host or az:host:node" % value)
        zone = parts[0] or None
        host = parts[1] if len(parts) > 1 and parts[1] else None
        node = parts[2] if len(parts) > 2 and parts[2] else None
        return zone, host, node

    def own_identities(self) -> frozenset:
        """Names and uuids of the instances being placed (a move finds them on a host)."""
        return frozenset(self.instance_names) | frozenset(self.instance_uuids)


DEFAULT_FILTERS = (
    "RetryFilter",
    "AvailabilityZoneFilter",
    "ComputeFilter",
    "RamFilter",
    "DiskFilter",
    "CoreFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
    "SameHostFilter",
    "DifferentHostFilter",
)


@dataclass(frozen=True)
class SchedulerConfig:
    """Nova's [filter_scheduler] / [scheduler] options we honour, with Nova's defaults."""

    enabled_filters: tuple = DEFAULT_FILTERS
    ram_weight_multiplier: float = 1.0
    disk_weight_multiplier: float = 1.0
    cpu_weight_multiplier: float = 1.0
    host_subset_size: int = 1
    max_attempts: int = 3
    default_availability_zone: str = DEFAULT_AVAILABILITY_ZONE
    random_seed: Optional[int] = None

    KEYS = ("enabled_filters", "ram_weight_multiplier", "disk_weight_multiplier", "cpu_weight_multiplier",
            "host_subset_size", "max_attempts", "default_availability_zone", "random_seed")

    @classmethod
    def from_dict(cls, data: Any) -> "SchedulerConfig":
        data = _mapping(data, "config")
        _check_keys(data, cls.KEYS, "config")
        kwargs: dict = {}
        if data.get("enabled_filters") is not None:
            kwargs["enabled_filters"] = _str_list(data["enabled_filters"], "config.enabled_filters")
        for key in ("ram_weight_multiplier", "disk_weight_multiplier", "cpu_weight_multiplier"):
            if data.get(key) is not None:
                kwargs[key] = _float(data[key], "config." + key)
        if data.get("host_subset_size") is not None:
            kwargs["host_subset_size"] = _int(data["host_subset_size"], "config.host_subset_size", 1)
        if data.get("max_attempts") is not None:
            kwargs["max_attempts"] = _int(data["max_attempts"], "config.max_attempts", 1)
        if data.get("default_availability_zone"):
            kwargs["default_availability_zone"] = str(data["default_availability_zone"])
        if data.get("random_seed") is not None:
            kwargs["random_seed"] = _int(data["random_seed"], "config.random_seed", minimum=-(2 ** 63))
        return cls(**kwargs)
