# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Power actions by server name: start, stop, reboot and the console log (playbooks/start.yml,
stop.yml, reboot.yml, console_log.yml).

Nova's API checks an instance's vm_state and task_state before it casts a power action to the
compute host (``nova/compute/api.py``, ``check_instance_state``); its compute manager then moves
the record through a task state and settles it (``start_instance``, ``stop_instance``,
``reboot_instance``). :func:`power_plan` is the API's half, on the controller, from the host
facts: which host holds each server, whether the action is allowed, and what the host has to do
(the domain, the record, or nothing). :func:`power_report` reads the hosts' reports back.

Nova's rules, and where we differ:

- **start** is allowed from ``stopped`` (Nova: ``vm_state=[STOPPED]``), and ends ``active``. Nova
  refuses ``start`` of an ``error`` server; so do we, naming ``stop`` (which Nova allows from
  ``error``) or a hard reboot. Nova answers 409 to a start of an active server; here it is a
  no-op (``changed: false``), so a playbook can be run again. An ``active`` record whose
  domain is off (drift) is started.
- **stop** is allowed from ``active`` and ``error`` (Nova: ``vm_state=[ACTIVE, RESCUED,
  ERROR]``) and ends ``stopped``: the clean shutdown of Nova's ``_clean_shutdown`` (ACPI, again
  every ``retry_interval``, destroy after ``shutdown_timeout``, Nova's 60 s). A stopped server
  is a no-op, unless its domain runs (drift): then it is powered off.
- **reboot** ``soft`` needs ``active`` (Nova's ``ALLOW_SOFT_REBOOT``); ``hard`` is allowed from
  ``active``, ``stopped``, ``paused``, ``suspended`` and ``error`` (``ALLOW_HARD_REBOOT``), and
  both end ``active``. A reboot always does something (Nova reboots whatever the domain is).
  As Nova's libvirt driver (``_soft_reboot``: shutdown and create), a soft reboot powers the
  guest off cleanly and starts it again; a hard one destroys it first (``_hard_reboot``).
- **every action** is refused while a task is in progress (``task_state`` set; Nova's
  ``task_state=[None]``) and while a resize or migration is open (vm_state ``resized``, a
  migration in the record, or records on two hosts): confirm it or revert it first.
- **console_log** (Nova's ``get_console_output``) reads the log of the serial console of the
  host that runs the server; it changes nothing and is allowed in every state.
- An unknown name fails the whole run before any host is touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.fleet import (
    server_locations, server_names)
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.plan import split_leftovers

ACTIONS = ("start", "stop", "reboot", "console_log")
REBOOT_TYPES = ("soft", "hard")
# Nova's vm_states.ALLOW_SOFT_REBOOT and ALLOW_HARD_REBOOT.
ALLOW_SOFT_REBOOT = ("active",)
ALLOW_HARD_REBOOT = ALLOW_SOFT_REBOOT + ("stopped", "paused", "suspended", "error")
# The vm_states each action may start from (Nova's check_instance_state), plus the state it
# leads to, where starting from it is a no-op.
ALLOWED_FROM = {"start": ("stopped", "active"), "stop": ("active", "error", "stopped")}
VM_STATE_AFTER = {"start": "active", "stop": "stopped", "reboot": "active"}
# The task_state the record shows while the host works (Nova's task_states).
TASK_STATE = {"start": "powering-on", "stop": "powering-off", "reboot": "rebooting",
              "reboot_hard": "rebooting_hard"}
# The live power states (host facts) in which a domain is off, or not there at all.
OFF = ("shutdown", "absent")
SERVERS_YML = "playbooks/servers.yml lists the fleet's servers"


@dataclass(frozen=True)
class PowerRequest:
    """What a power playbook was asked: the action and its options."""
    action: str
    reboot_type: str = "soft"
    shutdown_timeout: int = 60
    console_lines: int = 50

    @classmethod
    def from_values(cls, action, reboot_type=None, shutdown_timeout=None, console_lines=None):
        """Survey answers come as text, and unanswered ones as empty strings: those take the
        defaults."""
        if action not in ACTIONS:
            raise VirtopsError("action must be one of %s, not %r" % (", ".join(ACTIONS), action))
        reboot_type = str(reboot_type or "soft").strip().lower()
        if reboot_type not in REBOOT_TYPES:
            raise VirtopsError("reboot_type must be soft or hard (Nova's SOFT and HARD), not %r"
                               % reboot_type)
        return cls(action, reboot_type,
                   _number(shutdown_timeout, 60, "shutdown_timeout", 0),
                   _number(console_lines, 50, "console_lines", 1))


def _number(value, default: int, what: str, minimum: int) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return strict_int(value, what, minimum=minimum, text="loose", floats=True)


@dataclass
class PowerTarget:
    """One server and what its host does for the action.

    ``domain_state`` is the vm_domain state to reach (None: leave the domain alone), ``reboot``
    whether vm_domain reboots it, ``vm_state_after`` the record's vm_state at the end (None:
    leave the record alone), ``task_state`` the record's task while the domain changes."""
    name: str
    uuid: str
    host: str
    vm_state: Optional[str]
    task_state: Optional[str]
    power_state: Optional[str]
    network_info: List[dict] = field(default_factory=list)
    domain_state: Optional[str] = None
    reboot: bool = False
    vm_state_after: Optional[str] = None
    task_state_during: Optional[str] = None
    says: str = ""

    @property
    def work(self) -> bool:
        return self.domain_state is not None or self.vm_state_after is not None

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: it rebuilds containers by their type, which Ansible's lazy
        # containers (the facts the records come from) refuse.
        data = {key: getattr(self, key) for key in self.__dataclass_fields__}
        data["network_info"] = [_plain(port) for port in self.network_info]
        data["work"] = self.work
        return data


def _plain(value):
    """``value`` with every mapping and list made a plain dict and list."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _migration_open(name: str, records: List[Mapping]) -> Optional[str]:
    """Why a resize or migration in flight stops the action (records on two hosts, vm_state
    ``resized``, a migration record or a resize task), or None."""
    if len(records) > 1 or any(r.get("migration") or r.get("vm_state") == "resized"
                               or str(r.get("task_state") or "").startswith("resize")
                               for r in records):
        states = ", ".join("%s on %s" % (r.get("vm_state"), r.get("host")) for r in records)
        return ("%s is in the middle of a resize or migration (%s): confirm it "
                "(playbooks/confirm_resize.yml) or revert it (playbooks/revert_resize.yml) "
                "first, then run this again" % (name, states))
    return None


def refusal(request: PowerRequest, name: str, record: Mapping) -> Optional[str]:
    """Why Nova would refuse ``request`` for this record, with what to do; None if allowed."""
    action, vm_state, task = request.action, record.get("vm_state"), record.get("task_state")
    where = "%s on %s" % (name, record.get("host"))
    if action == "console_log":
        return None
    if task:
        return ("%s has a task in progress (task_state %s, vm_state %s): wait until it ends "
                "and run this again; %s" % (where, task, vm_state, SERVERS_YML))
    if vm_state == "building":
        return "%s is still being built (vm_state building): wait for its boot to end" % where
    if action == "reboot":
        allowed = ALLOW_SOFT_REBOOT if request.reboot_type == "soft" else ALLOW_HARD_REBOOT
        if vm_state in allowed:
            return None
        if request.reboot_type == "soft" and vm_state in ALLOW_HARD_REBOOT:
            return ("%s is %s: a soft reboot needs an active server (Nova's "
                    "ALLOW_SOFT_REBOOT); %s, or reboot it with reboot_type=hard"
                    % (where, vm_state, "start it (playbooks/start.yml)"
                       if vm_state == "stopped" else "see its fault in servers.yml"))
        return "%s is %s: it cannot be rebooted (Nova's ALLOW_HARD_REBOOT)" % (where, vm_state)
    if vm_state in ALLOWED_FROM[action]:
        return None
    if action == "start" and vm_state == "error":
        return ("%s is in error: Nova starts only a stopped server. Stop it first "
                "(playbooks/stop.yml, which Nova allows from error), or reboot it with "
                "reboot_type=hard" % where)
    return ("%s is %s: it cannot be %s from there (Nova's %s allows %s); reboot it with "
            "reboot_type=hard, which Nova allows from %s"
            % (where, vm_state, "started" if action == "start" else "stopped", action,
               " and ".join(ALLOWED_FROM[action]), ", ".join(ALLOW_HARD_REBOOT)))


def plan_target(request: PowerRequest, name: str, record: Mapping) -> PowerTarget:
    """What the host does for one allowed server (see the module docstring)."""
    target = PowerTarget(name=name, uuid=str(record.get("uuid")), host=str(record.get("host")),
                         vm_state=record.get("vm_state"), task_state=record.get("task_state"),
                         power_state=record.get("power_state"),
                         network_info=list(record.get("network_info") or []))
    action, power = request.action, target.power_state
    state = "%s, domain %s" % (target.vm_state, power)
    on = "%s on %s" % (name, target.host)
    if action == "console_log":
        target.says = "%s: the last %d lines of its console log" % (on, request.console_lines)
        return target
    if action == "reboot":
        kind = request.reboot_type
        target.domain_state, target.reboot = "running", True
        target.task_state_during = TASK_STATE["reboot_hard" if kind == "hard" else "reboot"]
        target.vm_state_after = "active"
        target.says = "%s: %s reboot (%s)" % (on, kind, state)
        return target
    if action == "start":
        if power != "running":
            target.domain_state, target.task_state_during = "running", TASK_STATE["start"]
    elif power not in OFF:
        target.domain_state, target.task_state_during = "stopped", TASK_STATE["stop"]
    if target.vm_state != VM_STATE_AFTER[action]:
        target.vm_state_after = VM_STATE_AFTER[action]
    if not target.work:
        target.says = "%s: already %s (%s), nothing to do" % (
            on, "running" if action == "start" else "stopped", state)
    elif target.domain_state is None:
        target.says = "%s: the domain is already %s; record vm_state %s (%s)" % (
            on, "off" if action == "stop" else power, target.vm_state_after, state)
    else:
        target.says = "%s: %s (%s)" % (on, action, state)
    return target


def _choose_console(records: List[Mapping]) -> Mapping:
    """The record whose domain shows the console: the running one, else one with a domain."""
    for wanted in (("running",), ("paused", "shutdown", "crashed", "suspended", "pending")):
        for record in records:
            if record.get("power_state") in wanted:
                return record
    return records[0]


def _without_facts(gathered, hosts) -> List[str]:
    answered = {str(f.get("hostname")) for f in hosts or [] if isinstance(f, Mapping)}
    return sorted(str(h) for h in gathered or [] if str(h) not in answered)


def power_plan(hosts, server, action: str, reboot_type=None, shutdown_timeout=None,
               console_lines=None, gathered=None) -> dict:
    """The plan of a power action on ``server`` (the request: ``name``, ``max_count`` or
    ``uuid``, or a list of those; an empty list plans nothing) from the fleet's host facts ``hosts``; ``gathered`` are the hosts asked for facts
    (those that gave none are named when a server is not found).

    Raises VirtopsError, before any host is touched, when a server is not in the fleet or the
    action is not allowed in its state. Returns ``{action, reboot_type, shutdown_timeout,
    console_lines, targets, hosts, lines}``: ``hosts`` are the hosts with something to do."""
    request = PowerRequest.from_values(action, reboot_type, shutdown_timeout, console_lines)
    if isinstance(server, (list, tuple)) and not server:
        # An empty list (playbooks/converge.yml with nothing to stop): nothing to do.
        return {"action": request.action, "reboot_type": request.reboot_type,
                "shutdown_timeout": request.shutdown_timeout,
                "console_lines": request.console_lines, "targets": [], "hosts": [], "lines": []}
    found = server_locations(hosts, server)
    wanted = server_names(server) or sorted({str(f["name"]) for f in found})
    missing = [n for n in wanted if n not in {f["name"] for f in found}]
    if not wanted or missing:
        silent = _without_facts(gathered, hosts)
        raise VirtopsError(
            "no server %s in the fleet: nothing was done. %s%s" % (
                ", ".join(missing) or (server.get("uuid") if isinstance(server, Mapping)
                                       else "") or "", SERVERS_YML,
                "; no facts from %s: it may be there, fix or remove them" % ", ".join(silent)
                if silent else ""))
    targets: List[PowerTarget] = []
    problems = []
    for name in wanted:
        live, _leftovers = split_leftovers([r for r in found if r["name"] == name])
        if not live:
            problems.append("%s has only the leftover of a failed build (vm_state error, "
                            "task_state deleting): delete it, or boot it again" % name)
            continue
        if request.action == "console_log":
            targets.append(plan_target(request, name, _choose_console(live)))
            continue
        problem = _migration_open(name, live) or refusal(request, name, live[0])
        if problem:
            problems.append(problem)
        else:
            targets.append(plan_target(request, name, live[0]))
    if problems:
        raise VirtopsError("%s refused, nothing was done: %s"
                           % (request.action, "; ".join(problems)))
    return {"action": request.action, "reboot_type": request.reboot_type,
            "shutdown_timeout": request.shutdown_timeout,
            "console_lines": request.console_lines,
            "targets": [t.to_dict() for t in targets],
            "hosts": sorted({t.host for t in targets if t.work or request.action == "console_log"}),
            "lines": [t.says for t in targets]}


# The words of the report per action (done, and in check mode).
DONE = {"start": ("started", "would start"), "stop": ("stopped", "would stop"),
        "reboot": ("rebooted", "would reboot")}


def _power_off_text(power_off: Optional[Mapping]) -> str:
    if not isinstance(power_off, Mapping) or power_off.get("method") in (None, "none"):
        return ""
    if power_off["method"] == "acpi":
        return ", the guest shut down on the ACPI power button in %ss" % power_off.get("seconds")
    return ", destroyed (%s)" % power_off.get("reason")


def power_report(plan: Mapping, reports: Mapping, check_mode: bool = False) -> dict:
    """The hosts' reports (``{uuid: {changed, power_state, vm_state, power_off, console, path,
    problem}}``, merged from every host) against the plan: one entry and one line per server.

    ``servers`` maps each name to ``{uuid, host, action, result, vm_state, power_state}``
    (``result``: ``started``, ``stopped``, ``rebooted``, ``unchanged``, ``would ...`` in check
    mode, ``console``, ``failed``); ``console`` maps names to their console lines; ``failed``
    lists the names whose action failed; ``changed`` whether anything changed."""
    action = plan.get("action")
    reports = reports or {}
    servers: Dict[str, dict] = {}
    lines, console, failed = [], {}, []
    changed = False
    for target in plan.get("targets") or []:
        name, host, uuid = target["name"], target["host"], target["uuid"]
        report = reports.get(uuid)
        entry = {"uuid": uuid, "host": host, "action": action,
                 "vm_state": target["vm_state"], "power_state": target["power_state"]}
        on = "%s on %s" % (name, host)
        if action == "console_log":
            if not isinstance(report, Mapping) or report.get("problem"):
                entry["result"] = "failed"
                failed.append(name)
                lines.append("%s: no console log: %s" % (on, _problem(report, host)))
            else:
                entry["result"] = "console"
                console[name] = list(report.get("console") or [])
                lines.append("%s: %d lines of %s" % (on, len(console[name]), report.get("path")))
        elif not target.get("work"):
            entry["result"] = "unchanged"
            lines.append(target["says"])
        elif not isinstance(report, Mapping) or report.get("problem"):
            entry["result"] = "failed"
            failed.append(name)
            lines.append("%s: %s failed: %s" % (on, action, _problem(report, host)))
        else:
            done, would = DONE[action]
            kind = " (%s)" % plan.get("reboot_type") if action == "reboot" else ""
            entry["result"] = (would if check_mode else done) + kind
            if not check_mode:
                entry["vm_state"] = target.get("vm_state_after") or target["vm_state"]
                entry["power_state"] = report.get("power_state") or entry["power_state"]
            changed = changed or bool(report.get("changed"))
            lines.append("%s: %s%s%s" % (on, entry["result"], " (check mode)" if check_mode
                                         else "", _power_off_text(report.get("power_off"))))
        servers[name] = entry
    return {"servers": servers, "lines": lines, "console": console, "failed": failed,
            "changed": changed}


def _problem(report, host: str) -> str:
    if not isinstance(report, Mapping):
        return "no report from %s (unreachable, or the play stopped there)" % host
    return str(report.get("problem"))
