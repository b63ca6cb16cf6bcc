# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's servers as the host facts show them: the list of servers and where one is.

There is no database: every compute host reports the instances it holds
(``vm_host_facts``), so listing servers and finding the one to delete read those facts.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.plan import (
    _facts_list, _fault_message, power_drift, split_leftovers)
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.request import (
    MULTI_INSTANCE_NAME_TEMPLATE, whole_number)

COLUMNS = (("name", "NAME"), ("host", "HOST"), ("vm_state", "STATE"), ("task_state", "TASK"),
           ("power_state", "POWER"), ("flavor", "FLAVOR"), ("image", "IMAGE"), ("ips", "IPS"))


def _name_of(value) -> Optional[str]:
    if isinstance(value, Mapping):
        return value.get("name") or value.get("id")
    return value


def fleet_servers(hosts) -> List[dict]:
    """One row per instance record, sorted by name then host. An instance in the middle of a
    resize has a record on both hosts and shows twice (``task_state`` tells which is which)."""
    rows = []
    for facts in _facts_list(hosts):
        for instance in facts.get("instances") or []:
            rows.append({
                "name": instance.get("name"), "uuid": instance.get("uuid"),
                "host": facts.get("hostname"), "vm_state": instance.get("vm_state"),
                "task_state": instance.get("task_state"),
                "power_state": instance.get("power_state"),
                "flavor": _name_of(instance.get("flavor")),
                "image": _name_of(instance.get("image")),
                "ips": list(instance.get("ips") or []),
                "networks": network_labels(instance.get("network_info")),
                "server_group": instance.get("server_group"),
                "fault": instance.get("fault"),
            })
    return sorted(rows, key=lambda r: (str(r["name"]), str(r["host"])))


def network_labels(network_info) -> List[str]:
    """The names of the networks of an instance's ports, in port order (Nova's network_info:
    each VIF's ``network.label``)."""
    return [str((vif.get("network") or {}).get("label") or (vif.get("network") or {}).get("id"))
            for vif in network_info or [] if isinstance(vif, Mapping)
            and isinstance(vif.get("network"), Mapping)]


def _cell(row: Mapping, key: str) -> str:
    value = row.get(key)
    if key == "ips":
        return ", ".join(value) if value else "-"
    return "-" if value in (None, "") else str(value)


def server_table(rows) -> List[str]:
    """``fleet_servers`` rows as text lines with aligned columns, a header first."""
    cells = [[title for _key, title in COLUMNS]]
    cells += [[_cell(row, key) for key, _title in COLUMNS] for row in rows or []]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in cells]


def server_names(server) -> List[str]:
    """The names a boot of ``server`` gives (``name``, or ``name-1`` ... with max_count); of each
    server in turn when ``server`` is a list (``virtops_request`` for several servers)."""
    if isinstance(server, (list, tuple)):
        return [name for one in server for name in server_names(one)]
    if not isinstance(server, Mapping) or not (server.get("name") or server.get("uuid")):
        raise VirtopsError("server needs a name (or a uuid) to say which server")
    if not server.get("name"):
        return []
    count = whole_number(server.get("max_count") or 1, "server.max_count", 1)
    if count == 1:
        return [str(server["name"])]
    return [MULTI_INSTANCE_NAME_TEMPLATE % {"name": server["name"], "count": n}
            for n in range(1, count + 1)]


def server_locations(hosts, server) -> List[dict]:
    """Where the records of ``server`` are: ``[{host, uuid, name, vm_state, task_state,
    power_state, migration, network_info}]`` (``power_state``: the domain's, live).

    ``server`` is the boot request (``name``, ``max_count``) or ``{uuid: ...}``, or a list of
    those. Every record counts, so an instance in the middle of a resize is found on both of its
    hosts."""
    names = set(server_names(server))
    servers = server if isinstance(server, (list, tuple)) else [server]
    uuids = {str(one["uuid"]).lower() for one in servers if one.get("uuid")}
    found = []
    for facts in _facts_list(hosts):
        for instance in facts.get("instances") or []:
            if instance.get("name") in names or instance.get("uuid") in uuids:
                found.append({"host": facts.get("hostname"), "uuid": instance.get("uuid"),
                              "name": instance.get("name"),
                              "vm_state": instance.get("vm_state"),
                              "task_state": instance.get("task_state"),
                              "power_state": instance.get("power_state"),
                              "migration": instance.get("migration"),
                              "network_info": instance.get("network_info") or []})
    return sorted(found, key=lambda f: (str(f["name"]), str(f["host"])))


def fleet_notes(hosts) -> List[str]:
    """What needs attention in the fleet, one line per record: leftovers of failed builds and
    instances whose domain does not match their record (for servers.yml)."""
    by_name: Dict[str, List[dict]] = {}
    for facts in _facts_list(hosts):
        for instance in facts.get("instances") or []:
            by_name.setdefault(str(instance.get("name")), []).append(
                dict(instance, host=facts.get("hostname")))
    notes = []
    for name in sorted(by_name):
        live, left = split_leftovers(by_name[name])
        for record in left:
            fault = _fault_message(record.get("fault"))
            notes.append("%s on %s (%s): LEFTOVER of a failed build, cleanup pending%s%s; a boot "
                         "or delete of %s finishes it" % (
                             name, record["host"], record.get("uuid"),
                             "" if record["marked"] else " (record not marked)",
                             " (%s)" % fault if fault else "", name))
        for record in live if len(live) == 1 else []:
            drift = power_drift(record, "report")
            if drift:
                notes.append("%s on %s: DRIFT: %s; boot.yml of %s syncs it (server_boot_drift)"
                             % (name, record["host"], drift["reason"], name))
    return notes
