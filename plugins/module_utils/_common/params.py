# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a module's parameters reach its driver: one typed parameter object per module.

A module is an argument spec, its documentation and one call; the call takes a frozen
dataclass of the driver (``DomainParams``, ``VmImageParams``, ``VmXmlParams``,
``MigrateParams``, ``HostConfig`` ...) built here from ``module.params`` by option name, so
an option reaches the driver under its documented name or not at all.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterable, Mapping


def without_none(value: Any) -> Any:
    """``value`` with the unset suboptions AnsibleModule fills with None left out (the
    drivers read an absent key as "not given"), in nested dicts and lists."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def params_from_module(cls, params: Mapping[str, Any], sparse: Iterable[str] = (), **given):
    """The dataclass ``cls`` from a module's parameters: each field from the option of the same
    name; the options named in ``sparse`` without their unset suboptions; ``given`` values
    (computed by the module) win. Options the class has no field for stay with the module."""
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in params.items() if k in names}
    for name in sparse:
        values[name] = without_none(values.get(name))
    values.update(given)
    return cls(**values)
