# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Servers as desired state (playbooks/converge.yml): the plan that makes the fleet match the
list, and the refusals of a malformed list."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.converge import (
    converge_plan, desired_servers)

WEB = {"name": "web1", "flavor": "m1.small", "image": "debian12",
       "networks": [{"network": "private"}]}


def row(name="web1", host="c1", vm_state="active", power_state="running", flavor="m1.small",
        image="debian12", networks=("private",), task_state=None):
    return {"name": name, "host": host, "vm_state": vm_state, "task_state": task_state,
            "power_state": power_state, "flavor": flavor, "image": image,
            "networks": list(networks), "ips": []}


def test_a_missing_server_is_booted_with_its_request():
    plan = converge_plan([WEB], [])
    assert plan["boot"] == [WEB]
    assert plan["lines"] == ["web1: boot (m1.small, debian12)"]
    assert plan["changed"] is True
    assert plan["servers"][0]["before"] is None
    assert plan["servers"][0]["after"]["vm_state"] == "active"


def test_a_server_that_runs_as_listed_is_unchanged_and_a_second_run_does_nothing():
    plan = converge_plan([WEB], [row()])
    assert (plan["boot"], plan["delete"], plan["start"], plan["stop"], plan["resize"]) == \
        ([], [], [], [], [])
    assert plan["lines"] == ["web1: unchanged"] and plan["changed"] is False


def test_absent_deletes_the_server_wherever_it_is_and_is_quiet_when_it_is_gone():
    plan = converge_plan([{"name": "web1", "state": "absent"}],
                         [row(host="c1"), row(host="c2", task_state="resize_migrated")])
    assert plan["delete"] == ["web1"] and plan["lines"] == ["web1: delete (on c1, c2)"]
    assert converge_plan([{"name": "web1", "state": "absent"}], [])["changed"] is False


def test_stopped_stops_a_running_server_and_running_starts_a_stopped_one():
    stop = converge_plan([dict(WEB, state="stopped")], [row()])
    assert stop["stop"] == ["web1"] and stop["start"] == []
    start = converge_plan([dict(WEB, state="running")],
                          [row(vm_state="stopped", power_state="shutdown")])
    assert start["start"] == [dict(WEB)] and start["stop"] == []
    assert converge_plan([dict(WEB, state="stopped")],
                         [row(vm_state="stopped", power_state="shutdown")])["changed"] is False


def test_a_missing_server_that_should_be_stopped_is_booted_then_stopped():
    plan = converge_plan([dict(WEB, state="stopped")], [])
    assert [s["name"] for s in plan["boot"]] == ["web1"] and plan["stop"] == []
    assert plan["stop_after_boot"] == ["web1"]          # not in check mode: nothing was booted
    assert plan["servers"][0]["actions"] == ["boot", "stop"]


def test_flavor_drift_is_reported_and_resized_only_when_asked():
    drifted = converge_plan([dict(WEB, flavor="m1.large")], [row()])
    assert drifted["resize"] == [] and drifted["changed"] is False
    assert drifted["drifted"] == ["web1"]
    assert drifted["lines"] == ["web1: unchanged; DRIFT: flavor m1.small, wanted m1.large "
                                "(resize: true resizes it)"]
    resized = converge_plan([dict(WEB, flavor="m1.large", resize=True)], [row()])
    assert resized["resize"] == [{"name": "web1", "flavor": "m1.large"}]
    assert resized["lines"] == ["web1: resize (m1.small -> m1.large)"]
    assert resized["servers"][0]["after"]["flavor"] == "m1.large"


def test_image_and_network_drift_are_reported_never_changed():
    plan = converge_plan([dict(WEB, image="debian13", networks=[{"network": "public"}])],
                         [row()])
    assert plan["changed"] is False
    assert plan["servers"][0]["drift"] == [
        "image debian12, wanted debian13 (not changed: delete and boot it again)",
        "networks private, wanted public (not changed: delete and boot it again)"]


def test_networks_left_to_the_default_do_not_drift():
    plan = converge_plan([{"name": "web1", "flavor": "m1.small", "image": "debian12"}], [row()])
    assert plan["drifted"] == []


def test_a_server_in_a_move_or_in_error_is_left_alone_and_reported():
    moving = converge_plan([dict(WEB, state="stopped")],
                           [row(host="c1", vm_state="resized"), row(host="c2", vm_state="resized")])
    assert moving["stop"] == [] and moving["changed"] is False
    assert "in a move (records on c1, c2)" in moving["problems"][0]
    broken = converge_plan([WEB], [row(vm_state="error", power_state="absent")])
    assert broken["boot"] == [] and "in vm_state error" in broken["problems"][0]


def test_servers_the_list_does_not_name_are_left_alone():
    plan = converge_plan([WEB], [row(), row(name="other")])
    assert plan["delete"] == [] and [s["name"] for s in plan["servers"]] == ["web1"]


@pytest.mark.parametrize("servers, message", [
    ({"web1": WEB}, "servers must be a list"),
    (["web1"], r"servers\[0\] must be a mapping"),
    ([{"flavor": "m1.small"}], r"servers\[0\] has no name"),
    ([WEB, WEB], "web1 is listed twice"),
    ([dict(WEB, state="gone")], "state must be one of present, running, stopped, absent"),
    ([dict(WEB, flavour="x")], "unknown key"),
    ([dict(WEB, max_count=3)], "an entry of servers is one server"),
    ([{"name": "web1"}], "flavor and image are required for a server that should exist"),
    ([dict(WEB, resize="yes")], "resize must be true or false"),
])
def test_a_malformed_list_is_refused_before_anything_is_done(servers, message):
    with pytest.raises(VirtopsError, match=message):
        desired_servers(servers)


def test_an_empty_or_missing_list_plans_nothing():
    assert converge_plan([], [row()])["changed"] is False
    assert converge_plan(None, [])["lines"] == []
