# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Servers as desired state: what ``playbooks/converge.yml`` does to make the fleet match the
list ``servers`` of an infrastructure-as-code repository.

Each entry is a server as ``boot.yml`` takes it (one server: no ``min_count``/``max_count``)
plus ``state`` and ``resize``:

- ``state: present`` (or ``running``, the same) - the server exists and runs: booted when
  missing, started when stopped (Nova's ``os-start``);
- ``state: stopped`` - it exists and is shut off (booted, then stopped, when missing; Nova's
  ``os-stop``, a clean shutdown);
- ``state: absent`` - it does not exist: deleted wherever it is.

A server that runs with another flavor than its entry says *drifts*: the plan reports it and,
with ``resize: true``, resizes it (and confirms the resize, as Nova's
``resize_confirm_window`` does). Another image or other networks are reported only: Nova
changes those by rebuild and interface attach, which this collection does not do; delete and
boot the server again. Servers the list does not name are left alone (``openstack.cloud``'s
``server`` module also manages only what it is told about).

:func:`converge_plan` compares the list with the fleet's servers (``fleet_servers`` rows) and
says, per server, what to do; the playbook hands the lists of its result to ``boot.yml``,
``delete.yml``, ``stop.yml`` and the resize role. A second run finds nothing to do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.fleet import _name_of
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.request import SERVER_KEYS

STATES = ("present", "running", "stopped", "absent")
DESIRED_KEYS = ("state", "resize")
# One entry is one server: a multiple create has no desired state of its own.
NOT_DESIRED = ("min_count", "max_count")
# Record states in which a server is stopped by a converge (an active one) or started (a
# stopped one); anything else (error, resized, a task in progress) is reported, not touched.
STOPPED = "stopped"
ACTIVE = "active"


def _fail(msg: str) -> VirtopsError:
    return VirtopsError(msg)


@dataclass(frozen=True)
class Desired:
    """One entry of ``servers``."""
    name: str
    state: str
    resize: bool
    server: Dict[str, object] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return self.state != "absent"

    @property
    def power(self) -> Optional[str]:
        """``running`` or ``stopped`` for a server that should exist."""
        return None if self.state == "absent" else (
            "stopped" if self.state == "stopped" else "running")

    @property
    def networks(self) -> Optional[List[str]]:
        """The network names the entry asks for, or None when it leaves them to the default."""
        value = self.server.get("networks")
        if value is None or value == "auto":
            return None
        if value == "none":
            return []
        return [str(n.get("network")) if isinstance(n, Mapping) else str(n) for n in value]


def desired_servers(servers) -> List[Desired]:
    """``servers`` checked: a list of mappings, each with a unique ``name``, a known ``state``
    and only the keys of a boot request (for a server that should exist, ``flavor`` and
    ``image`` too). The boot request itself is checked against the catalogs by ``boot.yml``."""
    if servers is None:
        servers = []
    if isinstance(servers, Mapping) or isinstance(servers, str) or not hasattr(servers, "__iter__"):
        raise _fail("servers must be a list of servers (each a mapping with at least name), "
                    "not %s" % type(servers).__name__)
    result: List[Desired] = []
    seen = set()
    for position, entry in enumerate(servers):
        where = "servers[%d]" % position
        if not isinstance(entry, Mapping):
            raise _fail("%s must be a mapping with at least name, not %s"
                        % (where, type(entry).__name__))
        if not entry.get("name"):
            raise _fail("%s has no name" % where)
        name = str(entry["name"])
        where = "servers[%d] (%s)" % (position, name)
        unknown = sorted(str(k) for k in entry if k not in SERVER_KEYS + DESIRED_KEYS)
        if unknown:
            raise _fail("%s: unknown key(s) %s (known: %s)" % (
                where, ", ".join(unknown), ", ".join(SERVER_KEYS + DESIRED_KEYS)))
        extra = sorted(k for k in NOT_DESIRED if entry.get(k) not in (None, 1))
        if extra:
            raise _fail("%s: %s - an entry of servers is one server; list each server of a "
                        "multiple create by its name" % (where, ", ".join(extra)))
        state = str(entry.get("state") or "present")
        if state not in STATES:
            raise _fail("%s: state must be one of %s, not %r" % (where, ", ".join(STATES), state))
        resize = entry.get("resize", False)
        if not isinstance(resize, bool):
            raise _fail("%s: resize must be true or false, not %r" % (where, resize))
        if state != "absent":
            missing = [k for k in ("flavor", "image") if not entry.get(k)]
            if missing:
                raise _fail("%s: %s required for a server that should exist (state %s)"
                            % (where, " and ".join(missing) + (" is" if len(missing) == 1
                                                               else " are"), state))
        if name in seen:
            raise _fail("%s is listed twice in servers: give each server once" % name)
        seen.add(name)
        server = {k: v for k, v in entry.items() if k in SERVER_KEYS}
        result.append(Desired(name=name, state=state, resize=resize, server=server))
    return result


def _line(name: str, action: str, detail: str = "") -> str:
    return "%s: %s%s" % (name, action, " (%s)" % detail if detail else "")


def _view(row: Optional[Mapping]) -> Optional[dict]:
    """What the plan shows of a server as it is (the diff's before)."""
    if not row:
        return None
    return {"host": row.get("host"), "vm_state": row.get("vm_state"),
            "power_state": row.get("power_state"), "flavor": row.get("flavor"),
            "image": row.get("image"), "networks": list(row.get("networks") or [])}


def _wanted(desired: Desired, row: Optional[Mapping]) -> Optional[dict]:
    """What the server should be after the run (the diff's after)."""
    if not desired.present:
        return None
    after = dict(_view(row) or {"host": None, "networks": desired.networks or []})
    after.update(vm_state=STOPPED if desired.power == "stopped" else ACTIVE,
                 power_state="shutdown" if desired.power == "stopped" else "running",
                 image=str(desired.server["image"]) if not row else row.get("image"))
    after["flavor"] = str(desired.server["flavor"]) if (not row or desired.resize) \
        else row.get("flavor")
    return after


def _drift(desired: Desired, row: Mapping) -> List[str]:
    """What differs between the entry and the server as it runs, besides its power."""
    drift = []
    flavor, image = str(desired.server["flavor"]), str(desired.server["image"])
    if _name_of(row.get("flavor")) != flavor:
        drift.append("flavor %s, wanted %s" % (row.get("flavor"), flavor))
    if _name_of(row.get("image")) != image:
        drift.append("image %s, wanted %s (not changed: delete and boot it again)"
                     % (row.get("image"), image))
    networks = desired.networks
    if networks is not None and list(row.get("networks") or []) != networks:
        drift.append("networks %s, wanted %s (not changed: delete and boot it again)"
                     % (", ".join(row.get("networks") or []) or "none",
                        ", ".join(networks) or "none"))
    return drift


def converge_plan(servers, rows) -> dict:
    """What to do to every server of ``servers`` (the desired state) given ``rows``
    (``fleet_servers``: the servers as the hosts hold them).

    Returns ``boot`` (servers for boot.yml's ``server`` list: the missing ones), ``delete``
    (names for delete.yml), ``start`` (servers for boot.yml with ``server_boot_drift=start``:
    the stopped ones that should run), ``stop`` (names for stop.yml: the running ones that
    should be stopped), ``stop_after_boot`` (the missing ones that should exist stopped: stopped
    after their boot, so not in check mode, where nothing is booted),
    ``resize`` (``{name, flavor}``: drifted flavors with ``resize: true``), ``servers`` (per
    server: ``name``, ``actions``, ``drift``, ``before``, ``after``), ``lines`` (one per
    server) and ``changed``. A server in the middle of a move, or in error, is reported and
    left alone: confirm/revert or delete it first."""
    desired = desired_servers(servers)
    by_name: Dict[str, List[Mapping]] = {}
    for row in rows or []:
        by_name.setdefault(str(row.get("name")), []).append(row)
    plan = {"boot": [], "delete": [], "start": [], "stop": [], "stop_after_boot": [],
            "resize": [], "servers": [], "lines": [], "problems": []}
    for entry in desired:
        found = by_name.get(entry.name, [])
        row = found[0] if len(found) == 1 else None
        actions: List[str] = []
        drift: List[str] = []
        detail = ""
        if not entry.present:
            if found:
                actions.append("delete")
                plan["delete"].append(entry.name)
                detail = "on %s" % ", ".join(sorted({str(r.get("host")) for r in found}))
        elif not found:
            actions.append("boot")
            plan["boot"].append(dict(entry.server))
            detail = "%s, %s" % (entry.server["flavor"], entry.server["image"])
            if entry.power == "stopped":
                actions.append("stop")
                plan["stop_after_boot"].append(entry.name)
        elif row is None or row.get("task_state") or row.get("vm_state") not in (ACTIVE, STOPPED):
            state = "in a move (records on %s)" % ", ".join(str(r.get("host")) for r in found) \
                if row is None else "in vm_state %s%s" % (
                    row.get("vm_state"),
                    ", task %s" % row["task_state"] if row.get("task_state") else "")
            problem = "%s is %s: left alone; confirm or revert a resize, or delete a server " \
                      "in error, then run again" % (entry.name, state)
            plan["problems"].append(problem)
            actions.append("left alone")
            detail = state
        else:
            drift = _drift(entry, row)
            if entry.power == "running" and row.get("vm_state") == STOPPED:
                actions.append("start")
                plan["start"].append(dict(entry.server))
            elif entry.power == "stopped" and row.get("vm_state") == ACTIVE:
                actions.append("stop")
                plan["stop"].append(entry.name)
            if entry.resize and _name_of(row.get("flavor")) != str(entry.server["flavor"]):
                actions.append("resize")
                plan["resize"].append({"name": entry.name, "flavor": str(entry.server["flavor"])})
                drift = [d for d in drift if not d.startswith("flavor ")]
                detail = "%s -> %s" % (row.get("flavor"), entry.server["flavor"])
        text = _line(entry.name, ", ".join(actions) or "unchanged", detail)
        if drift:
            text += "; DRIFT: " + "; ".join(drift) + (
                "" if entry.resize or not any(d.startswith("flavor ") for d in drift)
                else " (resize: true resizes it)")
        plan["lines"].append(text)
        plan["servers"].append({"name": entry.name, "state": entry.state, "actions": actions,
                                "drift": drift, "before": _view(row or (found[0] if found else None)),
                                "after": _wanted(entry, row)})
    plan["changed"] = any(s["actions"] and s["actions"] != ["left alone"]
                          for s in plan["servers"])
    plan["drifted"] = [s["name"] for s in plan["servers"] if s["drift"]]
    return plan
