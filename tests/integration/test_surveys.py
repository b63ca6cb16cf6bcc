# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX surveys the collection ships (docs/awx/surveys/*.json), answered as AWX sends them
(every variable of the survey, empty strings for unanswered optional fields) and run under
ansible-runner, AWX's executor, against the session's two-host lab: boot, cold migration and
confirm, resize and revert, stop, start, reboot, console log, delete."""
from __future__ import annotations

import json
import os

import pytest

from tests.integration.boot_fleet import REPO, guest_fleet

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

SURVEYS = REPO / "docs" / "awx" / "surveys"
SECRET = "Survey-Secret-73"


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return guest_fleet(lab, tmp_path_factory.mktemp("surveys"))


def answers(survey: str, **given) -> dict:
    """The extra variables AWX sends for ``survey`` answered with ``given``: every question's
    variable, its default where not answered."""
    spec = json.loads((SURVEYS / ("%s.json" % survey)).read_text())["spec"]
    extra = {}
    for question in spec:
        value = given.pop(question["variable"], question["default"])
        assert value not in ("", None) or not question["required"], question["variable"]
        extra[question["variable"]] = value
    assert not given, "not in the %s survey: %s" % (survey, sorted(given))
    return extra


def run(fleet, survey: str, ident: str, **given):  # pylint: disable=redefined-outer-name
    result = fleet.runner("playbooks/%s.yml" % survey, answers(survey, **given), ident)
    assert result.rc == 0, result.failures()
    return result


def hosts_holding(fleet, name):  # pylint: disable=redefined-outer-name
    return sorted(s["host"] for s in fleet.servers() if s["name"] == name)


def test_every_survey_drives_its_playbook_under_ansible_runner(fleet):
    booted = run(fleet, "boot", "survey-boot", server_name="sv1", flavor="m1.nano", image="guest",
                 network="private", admin_pass=SECRET)
    try:
        assert SECRET not in booted.output + booted.stderr
        (first,) = hosts_holding(fleet, "sv1")
        # What an AWX workflow hands to its next node.
        handed = booted.artifact["virtops_servers"]["sv1"]
        assert (handed["host"], handed["result"], len(handed["ips"])) == (first, "booted", 1)
        (other,) = [h for h in fleet.hosts if h != first]
        run(fleet, "cold_migrate", "survey-migrate", server_name="sv1", target_host=other)
        run(fleet, "confirm_resize", "survey-confirm", server_name="sv1")
        assert hosts_holding(fleet, "sv1") == [other]
        run(fleet, "resize", "survey-resize", server_name="sv1", flavor="m1.tiny")
        run(fleet, "revert_resize", "survey-revert", server_name="sv1")
        (listed,) = [s for s in fleet.servers() if s["name"] == "sv1"]
        assert (listed["host"], listed["flavor"], listed["vm_state"]) == (other, "m1.nano", "active")
    finally:
        run(fleet, "delete", "survey-delete", server_name="sv1")
    assert hosts_holding(fleet, "sv1") == []


def test_the_power_surveys_stop_start_reboot_and_show_the_console_under_ansible_runner(fleet):
    run(fleet, "boot", "survey-boot-power", server_name="sv2", flavor="m1.nano", image="guest",
        network="private")
    try:
        stopped = run(fleet, "stop", "survey-stop", server_name="sv2", shutdown_timeout=30)
        assert stopped.artifact["virtops_servers"]["sv2"]["result"] == "stopped"
        (listed,) = [s for s in fleet.servers() if s["name"] == "sv2"]
        assert (listed["vm_state"], listed["power_state"]) == ("stopped", "shutdown")
        started = run(fleet, "start", "survey-start", server_name="sv2")
        assert started.artifact["virtops_servers"]["sv2"]["result"] == "started"
        rebooted = run(fleet, "reboot", "survey-reboot", server_name="sv2", reboot_type="hard")
        assert rebooted.artifact["virtops_servers"]["sv2"]["result"] == "rebooted (hard)"
        (listed,) = [s for s in fleet.servers() if s["name"] == "sv2"]
        assert (listed["vm_state"], listed["power_state"]) == ("active", "running")
        shown = run(fleet, "console_log", "survey-console", server_name="sv2")
        assert shown.changed == {}
    finally:
        run(fleet, "delete", "survey-delete-power", server_name="sv2")


def test_a_limit_that_leaves_out_the_controller_is_refused_before_anything_runs(fleet):
    run = fleet.boot({"name": "limited", "flavor": "m1.nano", "image": "guest"}, "--limit", fleet.hosts[0])
    assert run.rc != 0
    assert "--limit %s leaves out localhost" % fleet.hosts[0] in run.failures()
    assert [s for s in fleet.servers() if s["name"] == "limited"] == []


def test_an_unreachable_host_is_left_out_and_the_boot_goes_on(fleet):
    gone, alive = fleet.hosts
    fleet.set_host_vars(**{gone: {"ansible_host": "192.0.2.1", "ansible_ssh_common_args": "-o ConnectTimeout=2"}})
    try:
        run = fleet.boot({"name": "reach1", "flavor": "m1.nano", "image": "guest",
                          "networks": [{"network": "private"}]})
        assert run.rc == 0, run.failures()
        assert run.boot["servers"][0]["host"] == alive
        warned = run.task("Warn about compute hosts that gave no facts")["localhost"]["msg"]
        assert gone in warned
    finally:
        fleet.set_host_vars()
        gone_run = fleet.delete({"name": "reach1"})
        assert gone_run.rc == 0, gone_run.failures()
