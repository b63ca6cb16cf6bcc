# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The power actions' plan and report (plugins/plugin_utils/_power/actions.py): Nova's API
checks for start, stop and reboot, what the host does, and what the report says."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._power.actions import (
    PowerRequest, power_plan, power_report)

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"
PORTS = [{"id": "p1", "address": "fa:16:3e:00:00:01"}]


def record(name="web1", uuid=U1, vm_state="active", task_state=None, power_state="running",
           **more):
    return dict({"uuid": uuid, "name": name, "vm_state": vm_state, "task_state": task_state,
                 "power_state": power_state, "network_info": PORTS}, **more)


def fleet(*records_by_host):
    return [{"hostname": host, "instances": list(records)} for host, records in records_by_host]


def one(plan):
    (target,) = plan["targets"]
    return target


def test_stop_of_an_active_server_powers_it_off_on_its_host_and_records_it_stopped():
    plan = power_plan(fleet(("c1", []), ("c2", [record()])), {"name": "web1"}, "stop")
    target = one(plan)
    found = (target["host"], target["domain_state"], target["task_state_during"],
             target["vm_state_after"], target["work"])
    assert found == ("c2", "stopped", "powering-off", "stopped", True)
    assert target["network_info"] == PORTS
    assert plan["hosts"] == ["c2"]
    assert plan["shutdown_timeout"] == 60       # Nova's shutdown_timeout
    assert plan["lines"] == ["web1 on c2: stop (active, domain running)"]


def test_stop_of_a_stopped_server_and_start_of_a_running_one_are_no_ops():
    stopped = power_plan(fleet(("c1", [record(vm_state="stopped", power_state="shutdown")])),
                         {"name": "web1"}, "stop")
    assert not one(stopped)["work"] and stopped["hosts"] == []
    assert stopped["lines"] == ["web1 on c1: already stopped (stopped, domain shutdown), "
                                "nothing to do"]
    running = power_plan(fleet(("c1", [record()])), {"name": "web1"}, "start")
    assert not one(running)["work"] and running["hosts"] == []


def test_start_of_a_stopped_server_starts_its_domain_and_records_it_active():
    plan = power_plan(fleet(("c1", [record(vm_state="stopped", power_state="shutdown")])),
                      {"name": "web1"}, "start")
    target = one(plan)
    assert (target["domain_state"], target["task_state_during"], target["vm_state_after"]) == (
        "running", "powering-on", "active")


def test_a_drifted_record_is_set_right_without_touching_a_domain_already_there():
    # active in the record, the domain off (Nova's power sync would say stopped): stop records it
    plan = power_plan(fleet(("c1", [record(power_state="shutdown")])), {"name": "web1"}, "stop")
    target = one(plan)
    assert (target["domain_state"], target["vm_state_after"], target["work"]) == (
        None, "stopped", True)
    # stopped in the record, the domain runs: stop powers it off
    plan = power_plan(fleet(("c1", [record(vm_state="stopped")])), {"name": "web1"}, "stop")
    assert (one(plan)["domain_state"], one(plan)["vm_state_after"]) == ("stopped", None)
    # active in the record, the domain off: start starts it
    plan = power_plan(fleet(("c1", [record(power_state="shutdown")])), {"name": "web1"}, "start")
    assert (one(plan)["domain_state"], one(plan)["vm_state_after"]) == ("running", None)


def test_nova_stops_a_server_in_error_but_starts_only_a_stopped_one():
    broken = fleet(("c1", [record(vm_state="error", power_state="absent")]))
    stop = one(power_plan(broken, {"name": "web1"}, "stop"))
    assert (stop["domain_state"], stop["vm_state_after"]) == (None, "stopped")
    with pytest.raises(VirtopsError, match=r"web1 on c1 is in error: Nova starts only a stopped "
                                           r"server\. Stop it first"):
        power_plan(broken, {"name": "web1"}, "start")


def test_a_soft_reboot_needs_an_active_server_and_a_hard_one_takes_stopped_and_error_too():
    stopped = fleet(("c1", [record(vm_state="stopped", power_state="shutdown")]))
    with pytest.raises(VirtopsError, match="a soft reboot needs an active server.*start it.*"
                                           "reboot_type=hard"):
        power_plan(stopped, {"name": "web1"}, "reboot")
    for vm_state in ("stopped", "error", "active"):
        plan = power_plan(fleet(("c1", [record(vm_state=vm_state)])), {"name": "web1"},
                          "reboot", reboot_type="hard")
        target = one(plan)
        assert (target["domain_state"], target["reboot"], target["task_state_during"],
                target["vm_state_after"]) == ("running", True, "rebooting_hard", "active")


def test_a_reboot_always_has_work_to_do():
    plan = power_plan(fleet(("c1", [record()])), {"name": "web1"}, "reboot")
    assert one(plan)["task_state_during"] == "rebooting" and plan["hosts"] == ["c1"]


def test_a_server_in_the_middle_of_a_resize_is_refused_naming_confirm_and_revert():
    both = fleet(("c1", [record(vm_state="resized", power_state="absent")]),
                 ("c2", [record(vm_state="resized")]))
    for action in ("start", "stop", "reboot"):
        with pytest.raises(VirtopsError, match=r"%s refused, nothing was done: web1 is in the "
                                               r"middle of a resize or migration \(resized on c1, "
                                               r"resized on c2\): confirm it \(playbooks/"
                                               r"confirm_resize.yml\) or revert it" % action):
            power_plan(both, {"name": "web1"}, action)
    finished = fleet(("c2", [record(vm_state="resized", migration={"status": "finished"})]))
    with pytest.raises(VirtopsError, match="confirm it"):
        power_plan(finished, {"name": "web1"}, "stop")


def test_a_task_in_progress_or_a_build_is_refused():
    busy = fleet(("c1", [record(task_state="powering-off")]))
    with pytest.raises(VirtopsError, match=r"web1 on c1 has a task in progress \(task_state "
                                           r"powering-off, vm_state active\): wait"):
        power_plan(busy, {"name": "web1"}, "start")
    building = fleet(("c1", [record(vm_state="building", power_state="absent")]))
    with pytest.raises(VirtopsError, match="still being built"):
        power_plan(building, {"name": "web1"}, "stop")


def test_an_unknown_name_fails_naming_it_and_the_hosts_that_gave_no_facts():
    with pytest.raises(VirtopsError) as raised:
        power_plan(fleet(("c1", [record()])), {"name": "web9"}, "stop", gathered=["c1", "c2"])
    assert raised.value.msg == (
        "no server web9 in the fleet: nothing was done. playbooks/servers.yml lists the fleet's "
        "servers; no facts from c2: it may be there, fix or remove them")
    with pytest.raises(VirtopsError, match="no server web-2 in the fleet"):
        power_plan(fleet(("c1", [record(name="web-1")])), {"name": "web", "max_count": 2},
                   "start")


def test_one_refused_server_stops_the_whole_run():
    hosts = fleet(("c1", [record(name="web-1"), record(name="web-2", uuid=U2,
                                                       vm_state="building")]))
    with pytest.raises(VirtopsError, match="web-2 on c1 is still being built"):
        power_plan(hosts, {"name": "web", "max_count": 2}, "stop")


def test_a_server_is_found_by_uuid_too():
    plan = power_plan(fleet(("c1", [record()])), {"uuid": U1.upper()}, "stop")
    assert one(plan)["name"] == "web1"


def test_the_leftover_of_a_failed_build_is_not_the_server():
    leftover = record(vm_state="error", task_state="deleting", power_state="absent")
    plan = power_plan(fleet(("c1", [leftover]), ("c2", [record(vm_state="stopped",
                                                               power_state="shutdown")])),
                      {"name": "web1"}, "start")
    assert one(plan)["host"] == "c2"
    with pytest.raises(VirtopsError, match="only the leftover of a failed build"):
        power_plan(fleet(("c1", [leftover])), {"name": "web1"}, "start")


def test_the_console_is_read_where_the_domain_runs_whatever_the_state():
    hosts = fleet(("c1", [record(vm_state="resized", power_state="absent")]),
                  ("c2", [record(vm_state="resized", power_state="running")]))
    plan = power_plan(hosts, {"name": "web1"}, "console_log", console_lines="20")
    target = one(plan)
    assert (target["host"], target["work"], plan["hosts"], plan["console_lines"]) == (
        "c2", False, ["c2"], 20)


def test_survey_answers_left_empty_take_the_defaults_and_bad_ones_are_refused():
    assert PowerRequest.from_values("reboot", "", "", "") == PowerRequest("reboot", "soft", 60, 50)
    assert PowerRequest.from_values("reboot", "HARD", "30", 5).reboot_type == "hard"
    with pytest.raises(VirtopsError, match="reboot_type must be soft or hard"):
        PowerRequest.from_values("reboot", "cold")
    with pytest.raises(VirtopsError, match="shutdown_timeout cannot be negative"):
        PowerRequest.from_values("stop", shutdown_timeout=-1)
    with pytest.raises(VirtopsError, match="console_lines must be at least 1"):
        PowerRequest.from_values("console_log", console_lines=0)
    with pytest.raises(VirtopsError, match="action must be one of"):
        PowerRequest.from_values("pause")


def test_the_report_says_per_server_what_was_done_and_how_the_guest_went_off():
    hosts = fleet(("c1", [record(), record(name="db1", uuid=U2, vm_state="stopped",
                                           power_state="shutdown")]))
    plan = power_plan(hosts, {"name": "web1"}, "stop")
    reports = {U1: {"changed": True, "power_state": "shutdown", "vm_state": "stopped",
                    "power_off": {"method": "acpi", "seconds": 3.2, "reason": "x"}}}
    report = power_report(plan, reports)
    assert report["lines"] == ["web1 on c1: stopped, the guest shut down on the ACPI power "
                               "button in 3.2s"]
    assert report["servers"]["web1"] == {"uuid": U1, "host": "c1", "action": "stop",
                                         "result": "stopped", "vm_state": "stopped",
                                         "power_state": "shutdown"}
    assert report["changed"] and report["failed"] == []
    checked = power_report(plan, {U1: {"changed": True, "power_state": "running"}},
                           check_mode=True)
    assert checked["servers"]["web1"]["result"] == "would stop"
    assert checked["servers"]["web1"]["vm_state"] == "active"    # nothing changed


def test_the_report_names_failures_and_hosts_that_said_nothing():
    plan = power_plan(fleet(("c1", [record()])), {"name": "web1"}, "reboot",
                      reboot_type="hard")
    failed = power_report(plan, {U1: {"problem": "web1 on c1: libvirt is down"}})
    assert failed["failed"] == ["web1"]
    assert failed["lines"] == ["web1 on c1: reboot failed: web1 on c1: libvirt is down"]
    silent = power_report(plan, {})
    assert silent["lines"] == ["web1 on c1: reboot failed: no report from c1 (unreachable, or "
                               "the play stopped there)"]
    done = power_report(plan, {U1: {"changed": True, "power_state": "running",
                                    "power_off": {"method": "destroy", "reason": "hard reboot"}}})
    assert done["lines"] == ["web1 on c1: rebooted (hard), destroyed (hard reboot)"]


def test_the_report_of_a_no_op_and_of_a_console_read():
    plan = power_plan(fleet(("c1", [record()])), {"name": "web1"}, "start")
    report = power_report(plan, {})
    assert (report["servers"]["web1"]["result"], report["changed"]) == ("unchanged", False)
    plan = power_plan(fleet(("c1", [record()])), {"name": "web1"}, "console_log")
    report = power_report(plan, {U1: {"console": ["a", "b"], "path": "/x/console.log"}})
    assert report["console"] == {"web1": ["a", "b"]}
    assert report["lines"] == ["web1 on c1: 2 lines of /x/console.log"]
    assert not report["changed"]


def test_an_empty_list_of_servers_plans_nothing_and_touches_no_host():
    plan = power_plan([], [], "stop")
    assert (plan["targets"], plan["hosts"], plan["lines"]) == ([], [], [])
