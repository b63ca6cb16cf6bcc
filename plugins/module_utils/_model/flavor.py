# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flavor: the size of an instance (vCPUs, memory, disks) and its extra specs.

One type for the controller and the hosts, as Nova's ``objects.Flavor`` is shared by the
scheduler's RequestSpec and the compute manager: the boot request checks a catalog entry with
it, the scheduler sizes its filters with it, and the disk builder, claims, instance records,
migrations and the domain designer read it on the host. ``from_dict`` is strict, since a
flavor read wrong sizes a guest wrong: integers must be integers (``2`` or ``"2"``, never
``True``, ``2.0`` or ``"1.5"``), and every refusal names the flavor and the field. A flavor
may have no name (records and claims carry what they were given); it is then ``""``.

Extra spec values are strings, as Nova stores them; a YAML boolean reads as YAML writes it,
``true`` or ``false`` (:func:`extra_spec_value`), on the controller and on the host alike, so
that the scheduler's operators (``aggregate_instance_extra_specs:ssd: true``) and the host's
records see one spelling.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB, MIB
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import (
    catalog_entry, strict_int)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_text

FLAVOR_NEEDS = ("a flavor needs vcpus and ram_mb (integers >= 1) and may give root_gb, "
                "ephemeral_gb, swap_mb (integers >= 0), name and extra_specs")
# The keys of a flavor, in the order modules document them.
FLAVOR_KEYS = ("name", "vcpus", "ram_mb", "root_gb", "ephemeral_gb", "swap_mb", "extra_specs")
# Nova flavor fields a catalog entry may carry and the collection does not use.
FLAVOR_IGNORED = ("id", "description", "is_public")
# What each size means, for the messages that ask for a fix.
_HINTS = {
    "vcpus": "the number of virtual CPUs, such as 2",
    "ram_mb": "the memory in MiB, such as 2048",
    "root_gb": "the root disk in GiB, such as 20 (0 sizes it to the image)",
    "ephemeral_gb": "the ephemeral disk in GiB, such as 10 (0 for none)",
    "swap_mb": "the swap disk in MiB, such as 512 (0 for none)",
}
_TOPOLOGY_PARTS = ("sockets", "cores", "threads")

# The argument spec of a module option that takes a flavor (doc fragment ``flavor``). Every
# size is a plain int for AnsibleModule; from_dict is what checks them. A copy per module, as
# AnsibleModule fills the dicts it is given.
FLAVOR_OPTIONS = dict(
    name=dict(type="str"),
    vcpus=dict(type="int", required=True),
    ram_mb=dict(type="int", required=True),
    root_gb=dict(type="int", default=0),
    ephemeral_gb=dict(type="int", default=0),
    swap_mb=dict(type="int", default=0),
    extra_specs=dict(type="dict", default={}),
)


def flavor_spec(required: bool = False) -> dict:
    """The argument spec of a ``flavor`` option (a fresh copy each call)."""
    options = {key: dict(spec) for key, spec in FLAVOR_OPTIONS.items()}
    if required:
        return dict(type="dict", required=True, options=options)
    return dict(type="dict", options=options)


def extra_spec_value(value: Any) -> str:
    """An extra spec value as the string Nova stores: ``str()``, except that a boolean reads
    as YAML writes it (``true``/``false``), whichever side reads the flavor."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _label(name: str, where: str = "") -> str:
    if where:
        return where
    return "flavor %r" % name if name else "flavor (no name)"


def _integer(value, label: str, key: str, minimum: int, kind: str = "") -> int:
    """A strict integer: an int (not a bool) or the exact text of one; at least ``minimum``.

    ``kind`` goes before the key in messages ("extra spec ").
    """
    return strict_int(value, "%s: %s%s" % (label, kind, key), minimum=minimum,
                      hint=_HINTS.get(key, "a whole number, such as 2"))


@dataclass(frozen=True)
class CpuTopologySpec:
    sockets: int
    cores: int
    threads: int


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    root_gb: int = 0
    ephemeral_gb: int = 0
    swap_mb: int = 0
    # Left out of the hash (a dict has none) but compared: two flavors differ by their specs.
    extra_specs: Dict[str, str] = field(default_factory=dict, hash=False, compare=True)

    @classmethod
    def from_catalog(cls, name: str, data) -> "Flavor":
        """The catalog entry ``flavors.<name>`` as the boot request checks it on the
        controller: known keys only, then what every reader of a flavor checks."""
        where = "flavors.%s" % name
        catalog_entry(data, where, FLAVOR_KEYS, FLAVOR_IGNORED, "vcpus, ram_mb, root_gb ...")
        return cls.from_dict(dict(data, name=str(name)), where=where)

    @classmethod
    def from_dict(cls, data, where: str = "") -> "Flavor":
        """The flavor ``data`` describes; ``where`` names it in messages (``request.flavor``,
        ``flavors.m1.small``) instead of its name."""
        if not isinstance(data, Mapping):
            raise VirtopsError("%s must be a dict, got %s %r; %s"
                               % (where or "flavor", type(data).__name__, data, FLAVOR_NEEDS))
        name = data.get("name")
        name = validate_text(name, "flavor name") if name not in (None, "") else ""
        label = _label(name, where)
        extra = data.get("extra_specs")
        if extra is None:
            extra = {}
        if not isinstance(extra, Mapping):
            raise VirtopsError("%s: extra_specs must be a dict of key: value strings, got %s %r"
                               % (label, type(extra).__name__, extra))
        missing = [key for key in ("vcpus", "ram_mb") if data.get(key) is None]
        if missing:
            raise VirtopsError("%s is missing %s; %s" % (label, " and ".join(missing), FLAVOR_NEEDS))
        sizes = {key: _integer(data[key], label, key, 1) for key in ("vcpus", "ram_mb")}
        for key in ("root_gb", "ephemeral_gb", "swap_mb"):
            value = data.get(key)
            sizes[key] = 0 if value is None else _integer(value, label, key, 0)
        return cls(name=name, extra_specs={str(k): extra_spec_value(v) for k, v in extra.items()},
                   **sizes)

    def to_dict(self) -> dict:
        return {"name": self.name, "vcpus": self.vcpus, "ram_mb": self.ram_mb,
                "root_gb": self.root_gb, "ephemeral_gb": self.ephemeral_gb,
                "swap_mb": self.swap_mb, "extra_specs": dict(self.extra_specs)}

    @property
    def disk_mb(self) -> int:
        """What Nova's DiskFilter asks for: (root + ephemeral) GiB in MiB, plus swap MiB."""
        return (self.root_gb + self.ephemeral_gb) * (GIB // MIB) + self.swap_mb

    def extra(self, key: str) -> Optional[str]:
        return self.extra_specs.get(key)

    def cpu_topology(self) -> Optional[CpuTopologySpec]:
        """``hw:cpu_sockets/cores/threads``; missing parts are derived, the product must fit."""
        given = {}
        for part in _TOPOLOGY_PARTS:
            value = self.extra("hw:cpu_" + part)
            if value is not None:
                given[part] = _integer(value, _label(self.name), "hw:cpu_" + part, 1,
                                       kind="extra spec ")
        if not given:
            return None
        threads = given.get("threads", 1)
        if "sockets" in given and "cores" in given:
            sockets, cores = given["sockets"], given["cores"]
        elif "sockets" in given:
            sockets = given["sockets"]
            cores = self.vcpus // (sockets * threads) or 1
        elif "cores" in given:
            cores = given["cores"]
            sockets = self.vcpus // (cores * threads) or 1
        else:
            sockets, cores = self.vcpus // threads or 1, 1
        if sockets * cores * threads != self.vcpus:
            raise VirtopsError("%s: CPU topology %d sockets x %d cores x %d threads does not give "
                               "its %d vCPUs; set hw:cpu_sockets, hw:cpu_cores and hw:cpu_threads "
                               "so that their product is %d"
                               % (_label(self.name), sockets, cores, threads, self.vcpus,
                                  self.vcpus))
        return CpuTopologySpec(sockets, cores, threads)
