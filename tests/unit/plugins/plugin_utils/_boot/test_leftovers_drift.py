# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot's bookkeeping of half-failed builds (a cleanup that failed too leaves a marked
record behind) and of drift (a server whose domain is off or missing while its record says
active), as Nova's _run_pending_deletes and _sync_instance_power_state handle them."""
from __future__ import annotations

import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import plan as bp
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import fleet
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import schedule
from tests.unit.plugins.plugin_utils._boot.test_plan import host, request, uuids

WEB_UUID = str(uuid.UUID(int=7))
NET = [{"id": "p1", "address": "fa:16:3e:00:00:01",
        "network": {"subnets": [{"ips": [{"address": "10.90.0.10"}]}]}}]


def record(**fields):
    base = {"uuid": WEB_UUID, "name": "web", "vm_state": "active", "task_state": None,
            "power_state": "running", "ips": ["10.90.0.10"], "network_info": NET}
    base.update(fields)
    return base


CLEANUP = {"host": "c1", "step": "domain", "task": "Destroy and undefine the domain of web",
           "reason": "Failed to connect socket to '/var/run/libvirt/libvirt-sock'",
           "files": ["console.log", "disk", "disk.config", "instance.json", "libvirt.xml"],
           "record": True, "marked": True}


def test_a_build_whose_cleanup_failed_is_reported_with_its_host_and_what_remains():
    hosts = [host("c1", memory_mb=16384), host("c2", memory_mb=8192)]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts, uuid_factory=uuids()), 1)
    plan = bp.boot_placed(plan, [s.to_dict() for s in schedule(hosts, bp.schedule_requests(plan)[0])], 1)
    plan = bp.boot_ported(plan, [{"name": "web", "network_info": NET, "ips": ["10.90.0.10"]}])
    (web,) = plan["instances"]
    assert web["host"] == "c1"
    plan = bp.boot_collect(plan, {"c1": {web["uuid"]: {
        "attempt": 1, "ok": False, "step": "domain", "reason": "libvirtd is gone",
        "cleanup": CLEANUP}}})
    plan = bp.boot_start_attempt(plan, 2)
    plan = bp.boot_placed(plan, [s.to_dict() for s in schedule(hosts, bp.schedule_requests(plan)[0])], 2)
    plan = bp.boot_collect(plan, {"c2": {web["uuid"]: {"attempt": 2, "ok": True,
                                                       "power_state": "running"}}})
    summary = bp.boot_summary(plan)
    (server,) = summary["servers"]
    assert (server["result"], server["host"]) == ("booted", "c2")
    assert server["attempts"][0]["cleanup"]["step"] == "domain"
    (left,) = summary["leftovers"]
    assert (left["host"], left["uuid"], left["status"]) == ("c1", web["uuid"], "remains")
    assert left["remains"] == [
        "the domain (if it was defined)", "VIFs",
        "files console.log, disk, disk.config, instance.json, libvirt.xml",
        "record instance.json (marked vm_state error, task_state deleting)", "claim"]
    assert summary["failed"] == []
    assert summary["leftovers_msg"].startswith("Failed builds left things behind on c1: web: "
                                               "leftover on c1 (uuid %s)" % web["uuid"])
    assert "cleanup failed at domain: Failed to connect socket" in summary["leftovers_msg"]
    assert summary["lines"][1].startswith("web: leftover on c1")
    # without a cleanup problem, nothing is left and nothing is said
    plain = bp.boot_collect(bp.boot_start_attempt(bp.boot_plan(request(), hosts, uuid_factory=uuids()), 1), {})
    assert bp.boot_summary(plain)["leftovers"] == []


def test_an_old_string_cleanup_problem_still_counts_as_a_leftover():
    problem = bp._cleanup_problem("Release the claim of web: read-only", "c3")
    assert problem["reason"] == "Release the claim of web: read-only" and problem["host"] == "c3"


def test_a_marked_leftover_is_not_the_server_and_its_host_finishes_the_cleanup():
    ghost = record(vm_state="error", task_state="deleting",
                   fault={"message": "the cleanup of a failed build on c1 failed at domain"},
                   power_state="absent")
    hosts = [host("c1", instances=[ghost]), host("c2", instances=[record()])]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts), 1)
    (web,) = plan["instances"]
    # the real host, not the first record found
    assert (web["status"], web["host"], web["drift"]) == ("exists", "c2", None)
    (left,) = plan["leftovers"]
    assert (left["host"], left["status"], left["marked"]) == ("c1", "found", True)
    assert bp.fix_hosts(plan) == ["c1"]
    assert bp.host_fixes(plan, "c1") == [{"kind": "leftover", "uuid": WEB_UUID, "name": "web",
                                          "network_info": NET}]
    assert bp.host_fixes(plan, "c2") == [] and bp.host_work(plan, "c1") == []
    assert bp.host_fixes(bp.boot_start_attempt(plan, 2), "c1") == []     # attempt 1 only

    cleaned = bp.boot_summary(bp.boot_fixed(plan, {"c1": {WEB_UUID: {"kind": "leftover", "ok": True}}}))
    assert cleaned["servers"][0]["result"] == "unchanged"
    assert cleaned["cleaned"] == ["web on c1"] and cleaned["leftovers"] == [] and cleaned["changed"]
    assert cleaned["lines"] == [
        "web: unchanged on c2 (10.90.0.10)",
        "web: leftover on c1 (uuid %s) of a failed build: finished its cleanup (domain, VIFs, "
        "files, record and claim removed)" % WEB_UUID]

    again = bp.boot_summary(bp.boot_fixed(plan, {"c1": {WEB_UUID: {
        "kind": "leftover", "ok": False, "cleanup": dict(CLEANUP, step="disks", files=["disk"])}}}))
    (left,) = again["leftovers"]
    assert left["remains"] == ["files disk", "record instance.json (marked vm_state error, "
                                             "task_state deleting)", "claim"]
    assert not again["changed"]
    silent = bp.boot_summary(bp.boot_fixed(plan, {}))
    assert "did not report" in silent["leftovers"][0]["reason"]


def test_an_unmarked_ghost_of_a_rescheduled_build_is_a_leftover_too():
    ghost = record(vm_state="building", task_state="spawning", power_state="absent")
    live, left = bp.split_leftovers([dict(ghost, host="c1"), dict(record(), host="c2")])
    assert [r["host"] for r in live] == ["c2"]
    assert [(r["host"], r["marked"]) for r in left] == [("c1", False)]
    # a resize in flight has two records on purpose: both are the server
    moving = [dict(record(vm_state="resized", migration={"id": 1}), host="c1"),
              dict(record(task_state="resize_migrated", migration={"id": 1}), host="c2")]
    assert bp.split_leftovers(moving) == (moving, [])
    # the only record of a name, left building by an interrupted run, is finished, not a ghost
    assert bp.split_leftovers([dict(ghost, host="c1")])[1] == []


@pytest.mark.parametrize("fields, mode, expected", [
    ({"power_state": "shutdown"}, "sync", ("sync", "stopped")),
    ({"power_state": "crashed"}, "sync", ("sync", "stopped")),
    ({"power_state": "absent"}, "sync", ("sync", "error")),
    ({"power_state": "shutdown"}, "report", ("report", None)),
    ({"power_state": "absent"}, "start", ("start", "active")),
    ({"vm_state": "stopped", "power_state": "shutdown"}, "start", ("start", "active")),
    ({"vm_state": "stopped", "power_state": "running"}, "start", ("report", None)),
])
def test_power_drift_follows_nova_power_state_sync(fields, mode, expected):
    drift = bp.power_drift(dict(record(**fields), host="c2"), mode)
    assert (drift["action"], drift["target"]) == expected
    assert drift["status"] == ("reported" if expected[0] == "report" else "found")


@pytest.mark.parametrize("fields, mode", [
    ({}, "start"),                                                   # running: fine
    ({"vm_state": "stopped", "power_state": "shutdown"}, "sync"),    # stopped as recorded
    ({"power_state": "shutdown", "task_state": "powering-off"}, "sync"),
    ({"power_state": "absent", "migration": {"id": 3}}, "sync"),
])
def test_no_drift_for_what_matches_or_is_in_progress(fields, mode):
    assert bp.power_drift(dict(record(**fields), host="c2"), mode) is None


def test_a_drifted_server_is_synced_on_its_host_and_reported():
    hosts = [host("c1"), host("c2", instances=[record(power_state="shutdown")])]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts), 1)
    (fix,) = bp.host_fixes(plan, "c2")
    assert (fix["kind"], fix["action"], fix["target"]) == ("drift", "sync", "stopped")
    plan = bp.boot_fixed(plan, {"c2": {WEB_UUID: {"kind": "drift", "ok": True,
                                                  "vm_state": "stopped",
                                                  "power_state": "shutdown"}}})
    summary = bp.boot_summary(plan)
    (server,) = summary["servers"]
    assert (server["result"], server["vm_state"], server["host"]) == ("drifted", "stopped", "c2")
    assert server["drift"]["reason"] == "the domain is shutdown while the record says active"
    assert summary["drifted"] == ["web"] and summary["changed"] and summary["failed"] == []
    assert summary["lines"] == [
        "web: drifted on c2 (10.90.0.10); drift on c2: the domain is shutdown while the record "
        "says active; record synced to stopped (boot with server_boot_drift=start to start it)"]


def test_a_missing_domain_puts_the_server_in_error_and_fails_the_boot():
    hosts = [host("c2", instances=[record(power_state="absent")])]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts), 1)
    plan = bp.boot_fixed(plan, {"c2": {WEB_UUID: {"kind": "drift", "ok": True,
                                                  "vm_state": "error", "power_state": "absent"}}})
    summary = bp.boot_summary(plan)
    assert summary["failed"] == ["web"]
    assert summary["errors_msg"].startswith("1 of 1 server(s) are in ERROR. web: drift on c2: "
                                            "the domain is missing while the record says active")


def test_report_mode_changes_nothing_and_a_bad_mode_is_refused():
    hosts = [host("c2", instances=[record(power_state="shutdown")])]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts, drift="report"), 1)
    assert bp.host_fixes(plan, "c2") == [] and bp.fix_hosts(plan) == []
    summary = bp.boot_summary(plan)
    assert summary["servers"][0]["result"] == "drifted" and not summary["changed"]
    assert "reported only; server_boot_drift=sync records it" in summary["lines"][0]
    with pytest.raises(VirtopsError, match="server_boot_drift must be one of report, sync, start"):
        bp.boot_plan(request(), hosts, drift="restart")


def test_a_failed_start_is_reported_with_the_state_left():
    hosts = [host("c2", instances=[record(power_state="shutdown")])]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts, drift="start"), 1)
    plan = bp.boot_fixed(plan, {"c2": {WEB_UUID: {"kind": "drift", "ok": False,
                                                  "vm_state": "stopped",
                                                  "power_state": "shutdown",
                                                  "problem": "no bridge br-private"}}})
    summary = bp.boot_summary(plan)
    (server,) = summary["servers"]
    assert (server["vm_state"], server["drift"]["problem"]) == ("stopped", "no bridge br-private")
    assert "could not start it: no bridge br-private; vm_state stopped" in summary["lines"][0]
    assert not summary["changed"] and summary["failed"] == []


def test_fleet_notes_mark_leftovers_and_drift_for_servers_yml():
    ghost = record(vm_state="error", task_state="deleting", power_state="absent",
                   fault={"message": "cleanup failed at domain"})
    notes = fleet.fleet_notes([host("c1", instances=[ghost]),
                               host("c2", instances=[record(power_state="shutdown")])])
    assert notes == [
        "web on c1 (%s): LEFTOVER of a failed build, cleanup pending (cleanup failed at "
        "domain); a boot or delete of web finishes it" % WEB_UUID,
        "web on c2: DRIFT: the domain is shutdown while the record says active; boot.yml of "
        "web syncs it (server_boot_drift)"]
    assert fleet.fleet_notes([host("c2", instances=[record()])]) == []
