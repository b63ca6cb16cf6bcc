# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many build attempts a boot runs (virtops_max_attempts, the one retry count), the one
decision per attempt that playbooks/boot_attempt.yml takes its hosts from, and placement with
the min_count fallback (boot_scheduled), as the server_boot role runs them."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import plan as bp
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import schedule
from tests.unit.plugins.plugin_utils._boot.test_plan import host, request, uuids

ROOT = Path(__file__).resolve().parents[5]
HOSTS = ["c1", "c2", "c3"]
RAM_ONLY = {"disk_weight_multiplier": 0.0, "cpu_weight_multiplier": 0.0}


def fleet():
    return [host(name) for name in HOSTS]


def boot(max_attempts, outcome, hosts=None, server=None):
    """The role's flow on the controller: decide attempt 1, then per attempt place
    (boot_scheduled), build (``outcome(host) -> report``), collect and decide the next, as
    long as an attempt runs and boot.yml has one to run. Returns the plan and the attempts
    that ran."""
    hosts = hosts or fleet()
    decision = bp.first_attempt(max_attempts, HOSTS)
    plan = bp.boot_plan(request(**(server or {})), hosts, uuid_factory=uuids(),
                        max_attempts=decision["max_attempts"])
    ran = []
    for number in range(1, bp.MAX_ATTEMPTS_CEILING + 1):
        if not decision["controller"]:
            break
        assert decision["number"] == number and decision["controller"] == ["localhost"]
        ran.append(number)
        plan = bp.boot_scheduled(bp.boot_start_attempt(plan, number), hosts, {}, number)
        reports = {}
        for instance in [i for i in plan["instances"] if i["status"] == "pending"]:
            reports.setdefault(instance["host"], {})[instance["uuid"]] = dict(
                outcome(instance["host"]), attempt=number)
        plan = bp.boot_collect(plan, reports)
        decision = bp.next_attempt(plan, decision)
    return plan, ran


def always_fails(name):
    return {"ok": False, "step": "claim", "reason": "Read-only file system on " + name}


def test_boot_yml_imports_as_many_attempts_as_the_ceiling_in_order():
    plays = yaml.safe_load((ROOT / "playbooks" / "boot.yml").read_text())
    attempts = [p["vars"]["virtops_boot_attempt"] for p in plays
                if p.get("ansible.builtin.import_playbook") == "boot_attempt.yml"]
    assert attempts == list(range(1, bp.MAX_ATTEMPTS_CEILING + 1))


@pytest.mark.parametrize("value, number", [(1, 1), ("3", 3), (5, 5), (5.0, 5)])
def test_max_attempts_from_one_to_the_ceiling_is_taken(value, number):
    assert bp.check_max_attempts(value) == number
    assert bp.first_attempt(value, ["c2", "c1"]) == {
        "number": 1, "max_attempts": number, "gather": ["c1", "c2"], "controller": ["localhost"]}


def test_max_attempts_above_the_ceiling_is_refused_up_front_saying_what_to_set():
    with pytest.raises(VirtopsError) as caught:
        bp.first_attempt(6, HOSTS)
    assert caught.value.msg == (
        "virtops_max_attempts is 6, but playbooks/boot.yml runs at most 5 build attempts: set "
        "it to 5 or less (Nova's default is 3). Nothing was booted.")
    with pytest.raises(VirtopsError, match="virtops_max_attempts is 6"):
        bp.boot_plan(request(), fleet(), max_attempts=6)


@pytest.mark.parametrize("value", [0, -1, True, "many", 2.5, None])
def test_max_attempts_that_is_not_a_count_is_refused_naming_the_variable(value):
    with pytest.raises(VirtopsError) as caught:
        bp.first_attempt(value, HOSTS)
    assert caught.value.msg.startswith("virtops_max_attempts must be ")
    assert caught.value.msg.endswith(repr(value))


def test_max_attempts_one_builds_once_and_the_failure_fails_the_boot():
    plan, ran = boot(1, always_fails)
    assert ran == [1]
    (web,) = plan["instances"]
    assert web["status"] == "error" and len(web["tried"]) == 1
    assert web["fault"].endswith("gave up after 1 attempt (max_attempts)")
    assert bp.boot_summary(plan)["failed"] == ["web"]


def test_the_default_three_attempts_try_three_hosts_then_give_up():
    plan, ran = boot(3, always_fails)
    assert ran == [1, 2, 3]
    (web,) = plan["instances"]
    assert sorted(web["tried"]) == HOSTS
    assert web["fault"].endswith("gave up after 3 attempts (max_attempts)")


def test_max_attempts_above_three_runs_more_attempts_and_ends_in_no_valid_host():
    """Before issue 13, boot.yml ran three attempts whatever virtops_max_attempts said: with 5,
    a server that failed on all three hosts was left unplaced and the run succeeded."""
    plan, ran = boot(5, always_fails)
    assert ran == [1, 2, 3, 4]
    (web,) = plan["instances"]
    assert web["status"] == "error" and sorted(web["tried"]) == HOSTS
    assert web["fault"].endswith("No valid host was found for web: 3 hosts; RetryFilter removed 3")
    summary = bp.boot_summary(plan)
    assert summary["failed"] == ["web"] and summary["servers"][0]["result"] == "failed"


def test_max_attempts_above_three_lets_a_fourth_host_build_it():
    hosts = [host(name) for name in ("c1", "c2", "c3", "c4")]
    plan, ran = boot(4, lambda name: {"ok": name == "c4", "step": "domain", "reason": "no"},
                     hosts=hosts)
    (web,) = plan["instances"]
    assert ran == [1, 2, 3, 4] and (web["status"], web["host"]) == ("active", "c4")


def test_no_attempt_follows_one_that_left_nothing_to_do():
    plan, ran = boot(5, lambda name: {"ok": True})
    assert ran == [1] and plan["instances"][0]["status"] == "active"
    decision = bp.next_attempt(plan, bp.first_attempt(5, HOSTS))
    assert decision == {"number": None, "max_attempts": 5, "gather": [], "controller": []}
    assert bp.build_hosts(plan, decision) == []


def test_an_empty_list_of_servers_runs_no_attempt_and_one_server_or_a_list_runs_one():
    assert bp.first_attempt(3, HOSTS, [])["controller"] == []
    assert bp.first_attempt(3, HOSTS, [])["gather"] == []
    assert bp.first_attempt(3, HOSTS, {"name": "web"})["number"] == 1
    assert bp.first_attempt(3, HOSTS, [{"name": "web"}])["number"] == 1


def test_the_build_play_has_the_hosts_that_build_in_the_attempt_and_none_before_a_plan():
    decision = bp.first_attempt(3, HOSTS)
    assert bp.build_hosts(None, decision) == []
    plan = bp.boot_plan(request(max_count=2, min_count=2), fleet(), uuid_factory=uuids(),
                        max_attempts=3)
    plan = bp.boot_scheduled(bp.boot_start_attempt(plan, 1), fleet(), {}, 1)
    placed = sorted({i["host"] for i in plan["instances"]})
    assert placed and bp.build_hosts(plan, decision) == placed
    assert bp.build_hosts(plan, {"number": None}) == []


def test_an_instance_still_unplaced_when_the_attempts_end_fails_the_boot():
    """The old flow's outcome (three attempts run, max_attempts 5): never a success."""
    plan = bp.boot_plan(request(), fleet(), uuid_factory=uuids(), max_attempts=5)
    for number in (1, 2, 3):
        plan = bp.boot_scheduled(bp.boot_start_attempt(plan, number), fleet(), {}, number)
        (web,) = plan["instances"]
        plan = bp.boot_collect(plan, {web["host"]: {web["uuid"]: dict(
            always_fails(web["host"]), attempt=number)}})
    assert plan["instances"][0]["status"] == "unplaced"
    summary = bp.boot_summary(plan)
    assert summary["failed"] == ["web"]
    (server,) = summary["servers"]
    assert (server["result"], server["vm_state"], server["host"]) == ("failed", "error", None)
    assert server["fault"].endswith(
        "still waiting for a host when the boot ended after attempt 3 of 5 (virtops_max_attempts)")
    assert summary["errors_msg"].startswith("1 of 1 server(s) are in ERROR. web: attempt 1 on ")


# --------------------------------------------------------------------------- boot_scheduled

def test_boot_scheduled_places_every_instance_that_needs_a_host():
    plan = bp.boot_start_attempt(bp.boot_plan(request(max_count=2), fleet(),
                                              uuid_factory=uuids()), 1)
    plan = bp.boot_scheduled(plan, fleet(), dict(RAM_ONLY, ram_weight_multiplier=-1.0), 1)
    assert [(i["status"], i["attempt"]) for i in plan["instances"]] == [("pending", 1)] * 2
    assert len({i["host"] for i in plan["instances"]}) == 1        # stacked


def test_min_count_fallback_keeps_the_largest_multiple_create_that_fits():
    hosts = [host("c1", memory_mb=1000)]         # 488 MB free: three of 128 MB, not four
    plan = bp.boot_start_attempt(bp.boot_plan(request(min_count=2, max_count=4), hosts,
                                              uuid_factory=uuids()), 1)
    plan = bp.boot_scheduled(plan, hosts, {}, 1)
    assert [(i["name"], i["status"], i["host"]) for i in plan["instances"]] == [
        ("web-1", "pending", "c1"), ("web-2", "pending", "c1"), ("web-3", "pending", "c1"),
        ("web-4", "dropped", None)]
    assert [s["result"] for s in bp.boot_summary(plan)["servers"]][-1] == "not created"


def test_min_count_fallback_tries_each_count_down_to_min_count_largest_first():
    asked = []

    def scheduler(hosts, spec, config):
        asked.append(len(spec["instance_names"]))
        if len(spec["instance_names"]) > 2:
            raise VirtopsError("No valid host was found for web-%d: 1 hosts; RamFilter removed 1"
                               % len(spec["instance_names"]))
        return schedule(hosts, spec, config)

    plan = bp.boot_start_attempt(bp.boot_plan(request(min_count=2, max_count=5), fleet(),
                                              uuid_factory=uuids()), 1)
    plan = bp.boot_scheduled(plan, fleet(), {}, 1, scheduler=scheduler)
    assert asked == [5, 4, 3, 2]
    assert [i["status"] for i in plan["instances"]] == ["pending"] * 2 + ["dropped"] * 3


def test_fewer_than_min_count_puts_every_instance_in_error_with_the_first_explanation():
    hosts = [host("c1", memory_mb=800)]          # 288 MB free: two of 128 MB
    plan = bp.boot_start_attempt(bp.boot_plan(request(min_count=3, max_count=4), hosts,
                                              uuid_factory=uuids()), 1)
    plan = bp.boot_scheduled(plan, hosts, {}, 1)
    assert [i["status"] for i in plan["instances"]] == ["error"] * 4
    assert plan["instances"][0]["fault"].startswith(
        "No valid host was found for web-3: 1 host; RamFilter removed 1")
    assert len({i["fault"] for i in plan["instances"]}) == 1


def test_a_retry_never_shrinks_a_multiple_create():
    hosts = [host("c1", memory_mb=1000), host("c2", memory_mb=700)]
    plan = bp.boot_plan(request(min_count=1, max_count=2), hosts, uuid_factory=uuids())
    plan = bp.boot_scheduled(bp.boot_start_attempt(plan, 1), hosts, RAM_ONLY, 1)
    assert [i["host"] for i in plan["instances"]] == ["c1", "c1"]
    reports = {"c1": {i["uuid"]: dict(always_fails("c1"), attempt=1) for i in plan["instances"]}}
    plan = bp.boot_collect(plan, reports)
    plan = bp.boot_scheduled(bp.boot_start_attempt(plan, 2), hosts, RAM_ONLY, 2)
    # c2 has room for one of the two (188 MB free): in attempt 1 the other would be dropped;
    # a retry places the instances that failed or none of them
    assert [i["status"] for i in plan["instances"]] == ["error", "error"]
    assert plan["instances"][1]["fault"].startswith("attempt 1 on c1 failed at claim: ")


def test_boot_scheduled_leaves_the_plan_it_was_given_unchanged():
    plan = bp.boot_start_attempt(bp.boot_plan(request(), fleet(), uuid_factory=uuids()), 1)
    before = repr(plan)
    placed = bp.boot_scheduled(plan, fleet(), None, 1)
    assert repr(plan) == before and placed["instances"][0]["status"] == "pending"
