# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flavor: the size of an instance (vCPUs, memory, disks) and its extra specs.

One type for every caller: the disk builder, claims, instance records, migrations and the
domain designer. ``from_dict`` is strict, since a flavor read wrong sizes a guest wrong:
integers must be integers (``2`` or ``"2"``, never ``True`` or ``"1.5"``), and every refusal
names the flavor and the field. A flavor may have no name (records and claims carry what
they were given); it is then ``""``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Dict, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_text

FLAVOR_NEEDS = ("a flavor needs vcpus and ram_mb (integers >= 1) and may give root_gb, "
                "ephemeral_gb, swap_mb (integers >= 0), name and extra_specs")
# What each size means, for the messages that ask for a fix.
_HINTS = {
    "vcpus": "the number of virtual CPUs, such as 2",
    "ram_mb": "the memory in MiB, such as 2048",
    "root_gb": "the root disk in GiB, such as 20 (0 sizes it to the image)",
    "ephemeral_gb": "the ephemeral disk in GiB, such as 10 (0 for none)",
    "swap_mb": "the swap disk in MiB, such as 512 (0 for none)",
}
_TOPOLOGY_PARTS = ("sockets", "cores", "threads")


def _label(name: str) -> str:
    return "flavor %r" % name if name else "flavor (no name)"


def _integer(value, label: str, key: str, minimum: int, kind: str = "") -> int:
    """A strict integer: an int (not a bool) or the exact text of one; at least ``minimum``.

    ``kind`` goes before the key in messages ("extra spec ").
    """
    hint = _HINTS.get(key, "a whole number, such as 2")
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is not None and str(number) != text:
            number = None          # "+2", "02", "2_0": not how an integer is written
    if number is None:
        raise VirtopsError("%s: %s%r must be an integer, got %r; give %s"
                           % (label, kind, key, value, hint))
    if number < minimum:
        if minimum == 0:
            raise VirtopsError("%s: %s%s cannot be negative, got %d; give %s"
                               % (label, kind, key, number, hint))
        raise VirtopsError("%s: %s%s must be at least %d, got %d; give %s"
                           % (label, kind, key, minimum, number, hint))
    return number


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
    def from_dict(cls, data) -> "Flavor":
        if not isinstance(data, Mapping):
            raise VirtopsError("flavor must be a dict, got %s %r; %s"
                               % (type(data).__name__, data, FLAVOR_NEEDS))
        name = data.get("name")
        name = validate_text(name, "flavor name") if name not in (None, "") else ""
        label = _label(name)
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
        return cls(name=name, extra_specs={str(k): str(v) for k, v in extra.items()}, **sizes)

    def to_dict(self) -> dict:
        return {"name": self.name, "vcpus": self.vcpus, "ram_mb": self.ram_mb,
                "root_gb": self.root_gb, "ephemeral_gb": self.ephemeral_gb,
                "swap_mb": self.swap_mb, "extra_specs": dict(self.extra_specs)}

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
