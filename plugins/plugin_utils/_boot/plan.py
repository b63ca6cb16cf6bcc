# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bookkeeping of a boot on the controller (Nova's API checks and conductor, small).

The ``server_boot`` role keeps one *plan* (a plain dict, an Ansible fact on the controller)
and moves it through the flow with the filters of ``plugins/filter/boot.py``:

1. :func:`boot_request` checks ``server`` against the catalogs (flavors, images, networks,
   keypairs, server groups) the way Nova's API does, before any host is touched.
2. :func:`boot_plan` names the instances (``web``, or ``web-1`` ... ``web-N`` for a multiple
   create), finds the ones the fleet already has (host facts, by name) and gives the new
   ones a uuid. An instance that exists is left alone; one left ``building`` by an
   interrupted run is finished on its host; one in ``error`` stops the boot.
3. :func:`boot_scheduled` asks the scheduler for hosts (:func:`schedule_requests`,
   :func:`boot_placed`), shrinking a multiple create towards ``min_count`` when all of it
   does not fit. :func:`ports_request` / :func:`boot_ported`: the same for the ports lookup.
4. After each build attempt :func:`boot_collect` reads what every host reported; a failed
   instance remembers the host and the reason and is scheduled again without the hosts it
   failed on, up to ``max_attempts`` (3, Nova's default) in all, then it is in ``error``.
   :func:`first_attempt` and :func:`next_attempt` decide, once per attempt, whether it runs
   and on which hosts (the plays of ``playbooks/boot_attempt.yml`` take their hosts from it).
5. :func:`boot_summary` says what happened, per instance, and what failed cleanups left on
   hosts.

Leftovers and drift: a failed build whose cleanup fails too leaves its record on the host
marked (vm_state ``error``, task_state ``deleting``); the next boot of the server sees it as a
leftover, not as the server (:func:`split_leftovers`), and its host removes it before building
(:func:`host_fixes`, :func:`boot_fixed`), as Nova's ``_run_pending_deletes`` retries the
deletes whose files remain. An existing server whose domain is off or missing while its record
says active is reported and, as ``server_boot_drift`` says, recorded or started
(:func:`power_drift`, Nova's ``_sync_instance_power_state``).

Instance statuses in the plan: ``exists`` (already there, nothing to do), ``unplaced``
(needs a host), ``pending`` (has a host, to be built in the current attempt), ``active``
(built by this run), ``error`` (gave up; ``fault`` says why), ``dropped`` (a multiple
create placed fewer than ``max_count``, no fewer than ``min_count``).
"""
from __future__ import annotations

import re
import uuid as uuid_mod
from typing import Callable, Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.request import (
    instance_names, whole_number)
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import (
    InstanceInfo, parse_hosts)
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import (
    schedule as _schedule)

MAX_ATTEMPTS = 3            # Nova's [scheduler] max_attempts default
# The build attempts playbooks/boot.yml imports: virtops_max_attempts may not be more
# (tests/unit/plugins/plugin_utils/_boot/test_attempts.py counts the imports).
MAX_ATTEMPTS_CEILING = 5
# States in which an instance counts as existing: a boot of the same name changes nothing.
SETTLED_STATES = ("active", "stopped", "paused", "resized")
ALIVE = ("unplaced", "pending")


def _fail(msg: str) -> VirtopsError:
    return VirtopsError(msg)


# --------------------------------------------------------------------------- the plan

def _facts_list(hosts) -> List[Mapping]:
    if hosts is None:
        return []
    if isinstance(hosts, Mapping):
        return [dict(facts, hostname=facts.get("hostname") or name)
                for name, facts in hosts.items() if isinstance(facts, Mapping)]
    return [facts for facts in hosts if isinstance(facts, Mapping)]


def find_instances(hosts, name: str) -> List[dict]:
    """Every record of ``name`` in the fleet's host facts, with the host holding it."""
    found = []
    for facts in _facts_list(hosts):
        for instance in facts.get("instances") or []:
            if instance.get("name") == name:
                found.append(dict(instance, host=facts.get("hostname")))
    return found


def boot_plan(request, hosts, uuid_factory: Callable[[], str] = None,
              max_attempts: int = MAX_ATTEMPTS, drift: str = "sync") -> dict:
    """Name the instances, find the ones that exist, give the others a uuid.

    ``request`` is one checked request (:func:`boot_request`) or a list of them (several
    servers booted together, each with its own flavor, image and networks); every instance
    remembers the index of its request in the plan's ``requests`` (:func:`request_of`).

    Records a failed cleanup left behind (:func:`split_leftovers`) do not count as the
    instance: they go in ``leftovers``, for their hosts to finish removing. An existing
    instance whose domain does not match its record gets a ``drift`` (:func:`power_drift`)."""
    make_uuid = uuid_factory or (lambda: str(uuid_mod.uuid4()))
    if drift not in DRIFT_MODES:
        raise _fail("server_boot_drift must be one of %s, not %r" % (", ".join(DRIFT_MODES), drift))
    requests = [dict(r) for r in (request if isinstance(request, (list, tuple)) else [request])]
    instances = []
    leftovers = []
    for number, one in enumerate(requests):
        for index, name in enumerate(instance_names(one["name"], one["max_count"])):
            entry, left = _plan_entry(hosts, name, index, number, make_uuid, drift)
            instances.append(entry)
            leftovers += left
    return {"requests": requests, "instances": instances, "attempt": 0,
            "max_attempts": check_max_attempts(max_attempts), "leftovers": leftovers,
            "drift_mode": drift}


def _plan_entry(hosts, name: str, index: int, number: int, make_uuid: Callable[[], str],
                drift: str):
    """The plan's entry for the instance ``name`` (launch index ``index`` of request
    ``number``), and the leftovers of failed builds of that name."""
    entry = {"name": name, "launch_index": index, "request": number, "uuid": None,
             "status": "unplaced", "host": None, "limits": {}, "alternates": [], "tried": [],
             "failures": [], "network_info": [], "attempt": 0, "resumed": False, "fault": None,
             "availability_zone": None, "drift": None}
    found, left = split_leftovers(find_instances(hosts, name))
    leftovers = [leftover_entry(record, "an earlier run") for record in left]
    if len(found) > 1 and len({f.get("uuid") for f in found}) > 1:
        raise _fail("%s exists more than once in the fleet (%s); delete the extra ones "
                    "first" % (name, ", ".join("%s on %s" % (f.get("uuid"), f["host"])
                                               for f in found)))
    if found:
        record = found[0]
        entry["uuid"] = record.get("uuid")
        entry["host"] = record["host"]
        entry["vm_state"] = record.get("vm_state")
        entry["task_state"] = record.get("task_state")
        entry["power_state"] = record.get("power_state")
        entry["ips"] = record.get("ips") or []
        entry["availability_zone"] = record.get("availability_zone")
        if len(found) > 1 or record.get("migration") or record.get("vm_state") in SETTLED_STATES:
            entry["status"] = "exists"     # also an instance in a move: leave it alone
            if len(found) == 1:
                entry["drift"] = power_drift(record, drift)
        elif record.get("vm_state") == "building":
            # An interrupted boot: finish it where it was claimed (every step is idempotent).
            entry.update(status="pending", resumed=True)
        else:
            fault = (record.get("fault") or {}).get("message") if isinstance(
                record.get("fault"), Mapping) else record.get("fault")
            raise _fail("%s exists on %s in vm_state %s%s; delete it (playbooks/delete.yml) "
                        "before booting it again" % (name, record["host"],
                                                     record.get("vm_state"),
                                                     " (%s)" % fault if fault else ""))
    else:
        entry["uuid"] = make_uuid()
    return entry, leftovers


def request_of(plan: Mapping, instance: Mapping) -> dict:
    """The checked request ``instance`` was asked for in."""
    return plan["requests"][instance.get("request") or 0]


def _request_base(request: Mapping) -> dict:
    base = {"flavor": request["flavor"], "image": {"properties": request["image"]["properties"]}}
    if request.get("availability_zone"):
        base["availability_zone"] = request["availability_zone"]
    if request.get("scheduler_hints"):
        base["scheduler_hints"] = request["scheduler_hints"]
    if request.get("server_group"):
        base["server_group"] = request["server_group"]
    return base


def schedule_requests(plan: Mapping, count: Optional[int] = None) -> List[dict]:
    """The scheduler requests for the instances that need a host.

    Instances that failed on the same hosts go in one request (each pick consumes capacity
    and counts for the group filters before the next); ``ignore_hosts`` is what they tried
    (Nova's RetryFilter). ``count`` keeps only the first ``count`` new instances (the
    min_count fallback of a multiple create).
    """
    return [request for _number, request in _schedule_groups(plan, count)]


def _schedule_groups(plan: Mapping, count: Optional[int] = None,
                     number: Optional[int] = None) -> List[tuple]:
    """(request number, scheduler request) per group of :func:`schedule_requests`; only those
    of request ``number`` when it is given."""
    groups: Dict[tuple, List[Mapping]] = {}
    for instance in plan["instances"]:
        if instance["status"] == "unplaced" and number in (None, instance.get("request") or 0):
            groups.setdefault((instance.get("request") or 0, tuple(sorted(instance["tried"]))),
                              []).append(instance)
    requests = []
    for (index, tried), members in groups.items():
        if count is not None:
            members = members[:count]
        request = _request_base(plan["requests"][index])
        request["instance_names"] = [m["name"] for m in members]
        request["instance_uuids"] = [m["uuid"] for m in members]
        if tried:
            request["ignore_hosts"] = list(tried)
        requests.append((index, request))
    return requests


def _of_request(plan: Mapping, number: Optional[int]) -> List[Mapping]:
    return [i for i in plan["instances"] if number in (None, i.get("request") or 0)]


def unplaced_count(plan: Mapping, number: Optional[int] = None) -> int:
    return sum(1 for i in _of_request(plan, number) if i["status"] == "unplaced")


def fallback_counts(plan: Mapping, number: int = 0) -> List[int]:
    """Smaller multiple creates to try, largest first, when all of max_count of request
    ``number`` cannot be placed: down to what its min_count still needs (Nova creates between
    min_count and max_count)."""
    new = unplaced_count(plan, number)
    have = sum(1 for i in _of_request(plan, number) if i["status"] in ("exists", "pending"))
    floor = max(1, plan["requests"][number]["min_count"] - have)
    return list(range(new - 1, floor - 1, -1))


def _placed_fewer(plan: Mapping, hosts, config, scheduler, number: int = 0) -> Optional[list]:
    """The largest multiple create that fits, down to what min_count still needs: the
    selections for it, or None when not even that many fit. Nova creates between min_count
    and max_count instances of one request; the rest are not created."""
    for count in fallback_counts(plan, number):
        try:
            return [s.to_dict() for s in scheduler(hosts, _schedule_groups(plan, count, number)[0][1],
                                                   config)]
        except VirtopsError:
            continue
    return None


def boot_scheduled(plan: Mapping, hosts, config=None, attempt: int = 1,
                   scheduler: Callable = None) -> dict:
    """Place every instance that needs a host in ``attempt``, with the scheduler of
    ``plugins/plugin_utils/_scheduler`` over the fleet's host facts ``hosts``.

    One scheduler request per group of instances that failed on the same hosts
    (:func:`schedule_requests`). When a request finds no valid host: in the first attempt a
    multiple create tries fewer instances, largest first, down to what ``min_count`` still
    needs, and the instances left out are ``dropped``; otherwise (or when not even that many
    fit) the request's instances go in ``error`` with the scheduler's explanation. A retry
    never shrinks: what was chosen in attempt 1 is what is built.
    """
    scheduler = scheduler or _schedule
    attempt = whole_number(attempt, "attempt", 1)
    groups = _schedule_groups(plan)
    if len(groups) > 1:
        hosts = parse_hosts(hosts)
    for number, request in groups:
        try:
            selections = [s.to_dict() for s in scheduler(hosts, request, config or {})]
        except VirtopsError as exc:
            fewer = _placed_fewer(plan, hosts, config or {}, scheduler,
                                  number) if attempt == 1 else None
            if fewer:
                plan = boot_placed(plan, fewer, attempt, drop_unplaced=True)
            plan = boot_unschedulable(plan, exc.msg, names=request["instance_names"])
            continue
        plan = boot_placed(plan, selections, attempt)
        if len(groups) > 1:
            hosts = _consumed(hosts, plan, request["instance_names"])
    return _copy(plan)


def _consumed(states: list, plan: Mapping, names: List[str]) -> list:
    """The HostStates after the instances ``names`` were placed on them, so that the next
    group of the same attempt sees them, as the scheduler sees its own picks within one
    request (HostState.consume, Nova's consume_from_request)."""
    states = list(states)
    index = {state.hostname: pos for pos, state in enumerate(states)}
    for instance in plan["instances"]:
        if instance["name"] in names and instance["status"] == "pending" \
                and instance["host"] in index:
            request = request_of(plan, instance)
            flavor = request["flavor"]
            pos = index[instance["host"]]
            states[pos] = states[pos].consume(
                float(flavor.get("vcpus") or 0), float(flavor.get("ram_mb") or 0),
                float(flavor.get("root_gb") or 0) + float(flavor.get("ephemeral_gb") or 0),
                InstanceInfo(uuid=instance["uuid"], name=instance["name"],
                             server_group=_group_name(request), vm_state="building",
                             task_state="scheduling"))
    return states


# --------------------------------------------------------------------------- the attempts

def check_max_attempts(value) -> int:
    """``virtops_max_attempts``: a whole number from 1 (build once, never retry) to
    :data:`MAX_ATTEMPTS_CEILING`, the attempts ``playbooks/boot.yml`` can run."""
    number = whole_number(value, "virtops_max_attempts", 1)
    if number > MAX_ATTEMPTS_CEILING:
        raise _fail("virtops_max_attempts is %d, but playbooks/boot.yml runs at most %d build "
                    "attempts: set it to %d or less (Nova's default is %d). Nothing was booted."
                    % (number, MAX_ATTEMPTS_CEILING, MAX_ATTEMPTS_CEILING, MAX_ATTEMPTS))
    return number


def first_attempt(max_attempts, compute_hosts, server=None) -> dict:
    """Attempt 1 of a boot, decided before any host is touched. The result is what the plays
    of ``playbooks/boot_attempt.yml`` take their hosts from: ``gather`` (the hosts whose facts
    are gathered: every compute host; with a fleet store, those whose report is stale) and
    ``controller`` (localhost); the build play's hosts come from the plan (:func:`build_hosts`).
    An attempt that does not run has none: nor does attempt 1 when ``server`` (the request as
    read by ``server_request``) is an empty list, as ``playbooks/converge.yml`` hands over when
    no server is missing."""
    decided = {"number": 1, "max_attempts": check_max_attempts(max_attempts),
               "gather": sorted(str(h) for h in compute_hosts or []),
               "controller": ["localhost"]}
    if isinstance(server, (list, tuple)) and not server:
        return _no_attempt(decided)
    return decided


def _no_attempt(decided: Mapping) -> dict:
    return dict(decided, number=None, gather=[], controller=[])


def next_attempt(plan: Mapping, current: Mapping) -> dict:
    """After attempt ``plan['attempt']``: the next one runs, gathering the same hosts, when an
    instance still needs a host and ``max_attempts`` allows another build; else it does not,
    and neither does any later one (no hosts)."""
    number = plan["attempt"] + 1
    if needs_work(plan) and number <= plan["max_attempts"]:
        return dict(current, number=number)
    return _no_attempt(current)


def build_hosts(plan: Optional[Mapping], attempt: Mapping) -> List[str]:
    """The hosts of an attempt's build play: those that build an instance placed in it or
    repair something before; none when the attempt does not run (or nothing was planned)."""
    if not plan or attempt.get("number") is None:
        return []
    return sorted(set(attempt_hosts(plan)) | set(fix_hosts(plan)))


def boot_start_attempt(plan: Mapping, attempt: int) -> dict:
    """Begin build attempt ``attempt``: instances with a host and no attempt yet (finished
    after an interrupted run) are built in it."""
    plan = _copy(plan)
    plan["attempt"] = whole_number(attempt, "attempt", 1)
    for instance in plan["instances"]:
        if instance["status"] == "pending" and not instance["attempt"]:
            instance["attempt"] = plan["attempt"]
    return plan


def boot_placed(plan: Mapping, selections, attempt: int, drop_unplaced: bool = False) -> dict:
    """Apply the scheduler's selections; the placed instances are built in ``attempt``."""
    plan = _copy(plan)
    chosen = {s["instance_name"]: s for s in (selections or [])}
    for instance in plan["instances"]:
        selection = chosen.get(instance["name"])
        if selection is not None and instance["status"] == "unplaced":
            instance.update(status="pending", host=selection["host"],
                            limits=dict(selection.get("limits") or {}),
                            availability_zone=selection.get("availability_zone"),
                            alternates=[a["host"] for a in selection.get("alternates") or []],
                            attempt=attempt)
        elif drop_unplaced and instance["status"] == "unplaced":
            instance["status"] = "dropped"
    return plan


def boot_unschedulable(plan: Mapping, reason: str, names=None,
                       statuses=("unplaced",)) -> dict:
    """These instances cannot go on (all in ``statuses`` when ``names`` is None): error, with
    ``reason`` (No valid host ..., or a port that cannot be allocated) as the fault."""
    plan = _copy(plan)
    reason = plugin_failure(reason)
    for instance in plan["instances"]:
        if instance["status"] in statuses and (names is None or instance["name"] in names):
            instance["status"] = "error"
            instance["fault"] = _fault_text(instance, reason)
    return plan


# ansible-core 2.19 wraps a plugin's error in the chain of what was being done ("Task failed:
# Finalization of task args for 'ansible.builtin.set_fact' failed: Error while resolving value
# for 'server_boot_plan': The lookup plugin 'virtops.compute.scheduler' failed: <message>");
# 2.17 and 2.18 give the message alone.
_PLUGIN_FAILED = re.compile(r"^.*\bThe (?:lookup|filter|test) plugin '[\w.]+' failed: ", re.DOTALL)


def plugin_failure(message: str) -> str:
    """The message a lookup or filter plugin failed with, as a ``rescue`` reads it from
    ``ansible_failed_result.msg``, without ansible-core 2.19's wrapping: the fault a user sees
    is the scheduler's "No valid host was found ..." whatever the ansible-core version."""
    return _PLUGIN_FAILED.sub("", str(message), count=1)


def ports_request(plan: Mapping) -> List[dict]:
    """Instances for the ports lookup: the ones to build that have no ports yet."""
    return [{"name": i["name"], "uuid": i["uuid"], "networks": request_of(plan, i)["networks"]}
            for i in plan["instances"]
            if i["status"] == "pending" and not i["network_info"]
            and request_of(plan, i)["networks"]]


def boot_ported(plan: Mapping, allocations) -> dict:
    plan = _copy(plan)
    by_name = {a["name"]: a for a in allocations or []}
    for instance in plan["instances"]:
        if instance["name"] in by_name:
            instance["network_info"] = by_name[instance["name"]]["network_info"]
            instance["ips"] = by_name[instance["name"]]["ips"]
    return plan


# The vm_state a fleet store claim records for a plan status.
CLAIM_STATES = {"pending": "building", "active": "active", "exists": None}


def boot_claims(plan: Mapping, statuses=("pending",)) -> List[dict]:
    """The instances in ``statuses`` as the fleet store's claims: where each is allocated and
    what its host's facts will show of it (``fleet_store`` operation ``claim``; with
    ``error`` and ``dropped``, the uuids it releases)."""
    return [{"uuid": i["uuid"], "name": i["name"], "host": i["host"],
             "flavor": request_of(plan, i)["flavor"],
             "vm_state": CLAIM_STATES.get(i["status"]) or i.get("vm_state") or i["status"],
             "task_state": None, "server_group": _group_name(request_of(plan, i)),
             "availability_zone": i.get("availability_zone"),
             "ips": i.get("ips") or [], "network_info": i.get("network_info") or []}
            for i in plan["instances"] if i["status"] in statuses and i.get("uuid")]


def _group_name(request: Mapping) -> Optional[str]:
    group = request.get("server_group") or {}
    return group.get("name") if isinstance(group, Mapping) else None


def least_flavor(requests) -> dict:
    """The least of each resource the flavors of ``requests`` (one checked request or a list)
    ask for: a host that cannot hold it holds none of them (the fleet store's candidates)."""
    requests = requests if isinstance(requests, (list, tuple)) else [requests]
    flavors = [r["flavor"] for r in requests]
    if not flavors:
        return {}
    return {key: min(float(f.get(key) or 0) for f in flavors)
            for key in ("vcpus", "ram_mb", "root_gb", "ephemeral_gb", "swap_mb")}


def attempt_hosts(plan: Mapping) -> List[str]:
    """The hosts that build something in the current attempt."""
    return sorted({i["host"] for i in plan["instances"]
                   if i["status"] == "pending" and i["attempt"] == plan["attempt"]})


def host_work(plan: Mapping, host: str) -> List[dict]:
    """What ``host`` builds in the current attempt."""
    return [i for i in plan["instances"] if i["status"] == "pending" and i["host"] == host
            and i["attempt"] == plan["attempt"]]


def _fault_text(instance: Mapping, last: Optional[str] = None) -> str:
    parts = ["attempt %d on %s failed at %s: %s" % (f["attempt"], f["host"], f["step"], f["reason"])
             for f in instance["failures"]]
    if last:
        parts.append(last)
    return "; ".join(parts)


def boot_collect(plan: Mapping, reports: Mapping) -> dict:
    """Read the hosts' reports of the current attempt: ``{host: {uuid: report}}`` where a
    report is ``{attempt, ok, step, reason, cleanup}``. A pending instance without a report
    failed too (its host was unreachable or stopped)."""
    plan = _copy(plan)
    attempt = plan["attempt"]
    for instance in plan["instances"]:
        if instance["status"] != "pending" or instance["attempt"] != attempt:
            continue
        report = ((reports or {}).get(instance["host"]) or {}).get(instance["uuid"])
        if not isinstance(report, Mapping) or report.get("attempt") != attempt:
            report = {"ok": False, "step": "unknown",
                      "reason": "the host did not report the build (unreachable, or the play "
                                "stopped there)"}
        if report.get("ok"):
            instance["status"] = "active"
            instance["power_state"] = report.get("power_state")
            instance["console"] = report.get("console")
            instance["checked_only"] = bool(report.get("checked_only"))
            continue
        failure = {"attempt": attempt, "host": instance["host"], "step": report.get("step"),
                   "reason": report.get("reason") or "unknown error"}
        if report.get("cleanup"):
            # The cleanup failed too: what it left stays on that host until a later boot or
            # delete of the server finishes it (Nova's _run_pending_deletes).
            failure["cleanup"] = _cleanup_problem(report["cleanup"], instance["host"])
            plan["leftovers"].append(leftover_entry(
                dict(instance, host=instance["host"], vm_state=None, task_state=None,
                     marked=bool(failure["cleanup"].get("marked"))),
                "this run", status="remains", problem=failure["cleanup"]))
        instance["failures"].append(failure)
        instance["tried"].append(instance["host"])
        instance.update(host=None, limits={}, alternates=[], availability_zone=None)
        if len(instance["tried"]) >= plan["max_attempts"]:
            instance["status"] = "error"
            instance["fault"] = _fault_text(instance, "gave up after %d attempt%s (max_attempts)" % (
                plan["max_attempts"], "" if plan["max_attempts"] == 1 else "s"))
        else:
            instance["status"] = "unplaced"
    return plan


def needs_work(plan: Mapping) -> bool:
    return any(i["status"] in ALIVE for i in plan["instances"])


# --------------------------------------------------------------------------- leftovers and drift

DRIFT_MODES = ("report", "sync", "start")
# Power states of a domain that exists and does not run; "absent" means there is no domain.
OFF_POWER_STATES = ("shutdown", "crashed", "suspended")
# The steps of roles/server_boot/tasks/cleanup_instance.yml, in order (server_boot_cleanup_step).
CLEANUP_STEPS = ("domain", "vif", "disks", "record")


def cleanup_pending(record: Mapping) -> bool:
    """A record whose removal started and did not finish: task_state ``deleting``. A failed
    build whose cleanup fails too is marked so (vm_state ``error``), the way Nova leaves an
    instance whose delete failed; the next boot or delete of the server finishes it."""
    return record.get("task_state") == "deleting"


def split_leftovers(records: List[Mapping]):
    """The records of one name, as ``(live, leftovers)``.

    Leftovers are the records marked by a failed cleanup (:func:`cleanup_pending`) and, when
    the mark could not be written (a read-only or full filesystem), a ``building`` or ``error``
    record of a uuid that is settled on another host with no migration in flight: the ghost of
    a build that was rescheduled. Neither counts as the server."""
    leftovers = [dict(r, marked=True) for r in records if cleanup_pending(r)]
    live = [r for r in records if not cleanup_pending(r)]
    if len(live) > 1 and not any(r.get("migration") for r in live):
        settled = {r.get("uuid") for r in live if r.get("vm_state") in SETTLED_STATES}
        ghosts = [r for r in live if r.get("uuid") in settled
                  and r.get("vm_state") in ("building", "error")]
        leftovers += [dict(r, marked=False) for r in ghosts]
        live = [r for r in live if not any(r is g for g in ghosts)]
    return live, leftovers


def _fault_message(fault) -> Optional[str]:
    return fault.get("message") if isinstance(fault, Mapping) else fault


def leftover_entry(record: Mapping, origin: str, status: str = "found",
                   problem: Optional[Mapping] = None) -> dict:
    """A leftover in the plan: ``found`` (to clean in this run), ``cleaned``, ``remains``."""
    return {"name": record.get("name"), "uuid": record.get("uuid"), "host": record.get("host"),
            "network_info": list(record.get("network_info") or []),
            "vm_state": record.get("vm_state"), "task_state": record.get("task_state"),
            "marked": bool(record.get("marked")), "fault": _fault_message(record.get("fault")),
            "origin": origin, "status": status, "problem": dict(problem) if problem else None}


def _cleanup_problem(value, host: Optional[str]) -> dict:
    """The ``cleanup`` of a host's build report: what failed and what is left."""
    if not isinstance(value, Mapping):
        return {"host": host, "step": None, "task": None, "reason": str(value), "files": [],
                "record": None, "marked": False}
    problem = {"host": value.get("host") or host, "step": value.get("step"),
               "task": value.get("task"), "reason": str(value.get("reason") or "failed"),
               "files": sorted(str(f) for f in value.get("files") or []),
               "record": value.get("record"), "marked": bool(value.get("marked"))}
    return problem


def leftover_remains(leftover: Mapping) -> List[str]:
    """What a leftover still holds on its host, in words: the domain and VIFs when the
    cleanup stopped before them, the files of its directory, the record and its claim."""
    problem = leftover.get("problem") or {}
    step = problem.get("step")
    remains = []
    if step == "domain":
        remains.append("the domain (if it was defined)")
    if step in ("domain", "vif") and leftover.get("network_info"):
        remains.append("VIFs")
    if problem.get("files"):
        remains.append("files " + ", ".join(problem["files"]))
    if problem.get("record") or (not problem and leftover.get("status") != "cleaned"):
        marked = problem.get("marked", leftover.get("marked"))
        remains.append("record instance.json (%s)" % (
            "marked vm_state error, task_state deleting" if marked
            else "not marked: it could not be written"))
        remains.append("claim")
    return remains


def power_drift(record: Mapping, mode: str = "sync") -> Optional[dict]:
    """Whether an existing instance's domain matches its record, and what to do about it.

    Nova's ``_sync_instance_power_state``: an instance whose vm_state is active and whose
    domain is shut off (or crashed, suspended) is stopped (vm_state ``stopped``); here a
    missing domain puts it in ``error`` with a fault. Nova never starts an instance by itself;
    ``mode`` ``start`` does, when asked - also a ``stopped`` one whose domain is off or
    missing (defined again from libvirt.xml). ``report`` changes nothing. A record with a task
    in progress or a migration in flight is left alone. None when there is no drift.
    """
    if record.get("task_state") or record.get("migration"):
        return None
    vm_state, power = record.get("vm_state"), record.get("power_state")
    off, missing = power in OFF_POWER_STATES, power == "absent"
    what = "the domain is missing" if missing else "the domain is %s" % power
    if vm_state == "active" and (off or missing):
        reason = "%s while the record says active" % what
        if mode == "start":
            action, target = "start", "active"
        elif mode == "sync":
            action, target = "sync", "stopped" if off else "error"
        else:
            action, target = "report", None
    elif vm_state == "stopped" and (off or missing) and mode == "start":
        reason, action, target = "stopped (%s)" % what, "start", "active"
    elif vm_state == "stopped" and power == "running":
        # Nova powers such a domain off; a boot never does.
        reason, action, target = "the domain runs while the record says stopped", "report", None
    else:
        return None
    return {"host": record.get("host"), "vm_state": vm_state, "power_state": power,
            "reason": reason, "action": action, "target": target,
            "status": "reported" if action == "report" else "found", "problem": None,
            "network_info": list(record.get("network_info") or [])}


def host_fixes(plan: Mapping, host: str) -> List[dict]:
    """What ``host`` repairs before it builds, in attempt 1: the leftovers it holds (the steps
    of a failed build's cleanup, again) and the drifted instances it runs (sync or start)."""
    if plan.get("attempt") != 1:
        return []
    work = [{"kind": "leftover", "uuid": left["uuid"], "name": left["name"],
             "network_info": left["network_info"]}
            for left in plan.get("leftovers") or []
            if left["host"] == host and left["status"] == "found"]
    for instance in plan["instances"]:
        drift = instance.get("drift")
        if drift and drift["host"] == host and drift["status"] == "found":
            work.append({"kind": "drift", "uuid": instance["uuid"], "name": instance["name"],
                         "network_info": drift["network_info"], "action": drift["action"],
                         "target": drift["target"], "reason": drift["reason"],
                         "power_state": drift["power_state"]})
    return work


def fix_hosts(plan: Mapping) -> List[str]:
    """The hosts that have something to repair in this attempt."""
    hosts = {left["host"] for left in plan.get("leftovers") or [] if left["status"] == "found"}
    hosts |= {i["drift"]["host"] for i in plan["instances"]
              if i.get("drift") and i["drift"]["status"] == "found"}
    return sorted(h for h in hosts if host_fixes(plan, h))


def boot_fixed(plan: Mapping, reports: Mapping) -> dict:
    """Read what the hosts repaired: ``{host: {uuid: report}}``, a report being
    ``{kind, ok, cleanup}`` for a leftover and ``{kind, ok, vm_state, power_state, problem}``
    for a drift. A repair without a report did not happen (the host failed or stopped)."""
    plan = _copy(plan)
    silent = "the host did not report it (unreachable, or the play stopped there)"
    for left in plan["leftovers"]:
        if left["status"] != "found":
            continue
        report = ((reports or {}).get(left["host"]) or {}).get(left["uuid"])
        if isinstance(report, Mapping) and report.get("ok"):
            left.update(status="cleaned", problem=None)
        else:
            cleanup = report.get("cleanup") if isinstance(report, Mapping) else None
            left.update(status="remains",
                        problem=_cleanup_problem(cleanup or silent, left["host"]))
    for instance in plan["instances"]:
        drift = instance.get("drift")
        if not drift or drift["status"] != "found":
            continue
        report = ((reports or {}).get(drift["host"]) or {}).get(instance["uuid"])
        if not isinstance(report, Mapping):
            drift.update(status="failed", problem=silent)
            continue
        drift["status"] = "done" if report.get("ok") else "failed"
        drift["problem"] = None if report.get("ok") else str(report.get("problem") or "failed")
        drift["vm_state_after"] = report.get("vm_state") or drift["vm_state"]
        drift["power_state_after"] = report.get("power_state") or drift["power_state"]
        instance["vm_state"] = drift["vm_state_after"]
        instance["power_state"] = drift["power_state_after"]
    return plan


def _drift_text(drift: Mapping) -> str:
    text = "drift on %s: %s" % (drift["host"], drift["reason"])
    if drift["status"] == "reported":
        hint = "" if drift["action"] != "report" or drift["vm_state"] != "active" else (
            "; server_boot_drift=sync records it, server_boot_drift=start starts it")
        return text + "; reported only" + hint
    if drift["status"] == "found":
        return text + "; would %s (check mode)" % (
            "start it" if drift["action"] == "start" else "record vm_state %s" % drift["target"])
    if drift["status"] == "failed":
        return text + "; could not %s: %s; vm_state %s" % (
            "start it" if drift["action"] == "start" else "sync the record",
            drift["problem"], drift.get("vm_state_after"))
    if drift["action"] == "start":
        return text + "; started it (server_boot_drift=start): %s" % drift.get("power_state_after")
    if drift["target"] == "error":
        return text + "; record synced to error: delete the server and boot it again, or " \
                      "boot it with server_boot_drift=start to define and start it again"
    return text + "; record synced to %s (boot with server_boot_drift=start to start it)" \
        % drift["target"]


def _leftover_public(left: Mapping) -> dict:
    problem = left.get("problem") or {}
    return {"name": left["name"], "uuid": left["uuid"], "host": left["host"],
            "status": left["status"], "origin": left["origin"],
            "step": problem.get("step"), "reason": problem.get("reason") or left.get("fault"),
            "remains": leftover_remains(left) if left["status"] != "cleaned" else []}


def _leftover_text(left: Mapping) -> str:
    where = "%s: leftover on %s (uuid %s) of a failed build" % (left["name"], left["host"],
                                                                left["uuid"])
    if left["status"] == "cleaned":
        return "%s: finished its cleanup (domain, VIFs, files, record and claim removed)" % where
    if left["status"] == "found":
        return "%s: would finish its cleanup (check mode)" % where
    reason = " at %s" % left["step"] if left.get("step") else ""
    return ("%s: cleanup failed%s: %s; remains: %s; boot %s again or delete it "
            "(playbooks/delete.yml) once %s works to finish the cleanup"
            % (where, reason, left["reason"], ", ".join(left["remains"]) or "unknown",
               left["name"], left["host"]))


def _ended_alive(plan: Mapping, instance: Mapping) -> dict:
    """An instance still waiting for a host or a build when the boot ended: it was not built,
    so the run fails for it rather than report it as if nothing were wrong."""
    waiting = "a host" if instance["status"] == "unplaced" else "its build on %s" % instance["host"]
    return dict(instance, status="error", host=None, fault=_fault_text(
        instance, "still waiting for %s when the boot ended after attempt %d of %d "
                  "(virtops_max_attempts)" % (waiting, plan.get("attempt") or 0,
                                              plan.get("max_attempts") or MAX_ATTEMPTS)))


def boot_summary(plan: Mapping) -> dict:
    """Per instance what happened, for the report and for callers (AWX, tests).

    Besides the servers: ``leftovers`` (what failed cleanups left on hosts and this run could
    not remove, each with its host and what remains), ``cleaned`` (leftovers removed by this
    run), ``drifted`` (servers whose domain did not match their record) and ``changed``.
    An instance still ``unplaced`` or ``pending`` (the attempts ended before it was built) is
    ``failed``: a boot never ends in success with a server that was not built."""
    servers = []
    leftovers = [_leftover_public(left) for left in plan.get("leftovers") or []]
    for instance in plan["instances"]:
        if instance["status"] in ALIVE:
            instance = _ended_alive(plan, instance)
        state = {"exists": instance.get("vm_state"), "active": "active", "error": "error",
                 "dropped": None}.get(instance["status"], instance["status"])
        drift = instance.get("drift") if instance["status"] == "exists" else None
        results = {"exists": "drifted" if drift else "unchanged", "active": "booted",
                   "error": "failed", "dropped": "not created"}
        result = "placed (check mode)" if instance.get("checked_only") else results.get(
            instance["status"], instance["status"])
        servers.append({
            "name": instance["name"], "uuid": instance["uuid"], "host": instance["host"],
            "result": result, "vm_state": state, "ips": instance.get("ips") or [],
            "attempts": [dict({"host": f["host"], "step": f["step"], "reason": f["reason"]},
                              **({"cleanup": f["cleanup"]} if f.get("cleanup") else {}))
                         for f in instance["failures"]],
            "fault": instance.get("fault"), "console": instance.get("console"),
            "power_state": instance.get("power_state"),
            "drift": {k: v for k, v in drift.items() if k != "network_info"} if drift else None,
            "leftovers": [left for left in leftovers if left["name"] == instance["name"]],
        })
    failed = [s for s in servers if s["result"] == "failed"
              or (s["result"] == "drifted" and s["vm_state"] == "error")]
    made = [s for s in servers if s["result"] == "booted"]
    lines = []
    for server in servers:
        where = " on %s" % server["host"] if server["host"] else ""
        ips = " (%s)" % ", ".join(server["ips"]) if server["ips"] else ""
        retried = " after %d failed attempt(s)" % len(server["attempts"]) \
            if server["attempts"] and server["result"] == "booted" else ""
        text = "%s: %s%s%s%s" % (server["name"], server["result"], where, ips, retried)
        if server["fault"]:
            text += ": " + server["fault"]
        if server["drift"]:
            text += "; " + _drift_text(server["drift"])
        if server["console"]:
            text += "; console: " + server["console"]
        lines.append(text)
        lines += [_leftover_text(left) for left in server["leftovers"]]
    remaining = [left for left in leftovers if left["status"] == "remains"]
    errors = "; ".join("%s: %s" % (s["name"], s["fault"] or _drift_text(s["drift"] or {}))
                       for s in failed)
    errors_msg = "%d of %d server(s) are in ERROR. %s" % (len(failed), len(servers), errors)
    # What an AWX workflow's next node reads (set_stats): each server by name.
    stats = {s["name"]: {key: s[key] for key in ("uuid", "host", "ips", "vm_state", "result")}
             for s in servers}
    return {"servers": servers, "failed": [s["name"] for s in failed], "stats": stats,
            "booted": [s["name"] for s in made], "lines": lines,
            "msg": "%s: %s" % (", ".join(r["name"] for r in plan["requests"]) or "nothing asked",
                               "; ".join(lines) or "nothing to boot"),
            "errors_msg": errors_msg if failed else "",
            "leftovers": remaining,
            "leftovers_msg": "Failed builds left things behind on %s: %s" % (
                ", ".join(sorted({left["host"] for left in remaining})),
                " | ".join(_leftover_text(left) for left in remaining)) if remaining else "",
            "cleaned": ["%s on %s" % (left["name"], left["host"]) for left in leftovers
                        if left["status"] == "cleaned"],
            "drifted": [s["name"] for s in servers if s["drift"]],
            "changed": bool(made) or any(left["status"] == "cleaned" for left in leftovers)
            or any(s["drift"] and s["drift"]["status"] == "done" for s in servers)}


def _copy(plan: Mapping) -> dict:
    """A deep enough copy: the plan's instances are changed, the request is not."""
    copy = dict(plan)
    copy["instances"] = [dict(i, tried=list(i["tried"]), failures=list(i["failures"]),
                              drift=dict(i["drift"]) if i.get("drift") else None)
                         for i in plan["instances"]]
    copy["leftovers"] = [dict(left) for left in plan.get("leftovers") or []]
    return copy
