# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/stop.yml, start.yml, reboot.yml and console_log.yml on the session's two-host lab:
a server found by name is stopped cleanly (ACPI) and started, rebooted soft and hard (QEMU
starts again: a new pid), its console log shows the guest's lines; re-runs change nothing, an
unknown name fails before anything changes, and --check changes nothing. With a fleet store
(SQLite) only the server's host is gathered, a busy server is refused and the lease goes back."""
from __future__ import annotations

import os
import time

import pytest

from tests.integration.boot_fleet import CONSOLE_META, guest_fleet
from ansible_collections.virtops.compute.plugins.plugin_utils._store import db as store_db
from ansible_collections.virtops.compute.plugins.plugin_utils._store.fleet_store import FleetStore

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

KERNEL_BANNER = "Linux version "
SERVER = {"name": "pw1", "flavor": "m1.nano", "image": "guest",
          "networks": [{"network": "private"}], "config_drive": True}


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return guest_fleet(lab, tmp_path_factory.mktemp("power"))


@pytest.fixture(scope="module")
def server(fleet):  # pylint: disable=redefined-outer-name
    """pw1, booted and waited for until the guest read its config drive; deleted at the end."""
    booted = fleet.boot(SERVER, server_boot_wait_for_console=CONSOLE_META)
    assert booted.rc == 0, booted.failures()
    (result,) = booted.boot["servers"]
    try:
        yield result
    finally:
        deleted = fleet.delete({"name": SERVER["name"]})
        assert deleted.rc == 0, deleted.failures()


def power(fleet, playbook, *args, **extra):  # pylint: disable=redefined-outer-name
    return fleet.playbook(playbook, dict(extra, server=SERVER["name"]), *args)


def domain_state(fleet, server):  # pylint: disable=redefined-outer-name
    return fleet.lab.virsh(server["host"], "domstate", SERVER["name"]).stdout.strip()


def qemu_pid(fleet, server):  # pylint: disable=redefined-outer-name
    return fleet.lab.run(server["host"], ["cat", "/run/libvirt/qemu/%s.pid" % SERVER["name"]]
                         ).stdout.strip()


def newest_boot(console: str) -> str:
    """The console log from the newest boot's kernel banner on."""
    return console[console.rfind(KERNEL_BANNER):] if KERNEL_BANNER in console else ""


def listed(fleet):  # pylint: disable=redefined-outer-name
    (row,) = [s for s in fleet.servers() if s["name"] == SERVER["name"]]
    return row["vm_state"], row["task_state"], row["power_state"]


def result_of(run):
    return run.fact("Summarise the power action", "server_power_result")


def test_stop_powers_the_guest_off_cleanly_and_a_second_stop_changes_nothing(fleet, server):
    checked = power(fleet, "stop.yml", "--check")
    assert checked.rc == 0, checked.failures()
    assert result_of(checked)["servers"]["pw1"]["result"] == "would stop"
    assert domain_state(fleet, server) == "running"
    assert fleet.record(server["host"], server["uuid"])["vm_state"] == "active"

    run = power(fleet, "stop.yml", shutdown_timeout=30)
    assert run.rc == 0, run.failures()
    line = result_of(run)["lines"][0]
    assert line.startswith("pw1 on %s: stopped" % server["host"]), line
    assert "ACPI" in line               # the guest shut down itself: no destroy
    assert domain_state(fleet, server) == "shut off"
    record = fleet.record(server["host"], server["uuid"])
    assert (record["vm_state"], record["task_state"]) == ("stopped", None)
    assert [h["task_state"] for h in record["history"][-2:]] == ["powering-off", None]
    assert listed(fleet) == ("stopped", None, "shutdown")

    again = power(fleet, "stop.yml")
    assert again.rc == 0, again.failures()
    assert again.changed == {}, again.changed_tasks()
    assert "already stopped" in result_of(again)["lines"][0]


def test_start_runs_the_guest_again_and_a_second_start_changes_nothing(fleet, server):
    run = power(fleet, "start.yml")
    assert run.rc == 0, run.failures()
    assert result_of(run)["servers"]["pw1"]["result"] == "started"
    assert domain_state(fleet, server) == "running"
    assert listed(fleet) == ("active", None, "running")

    again = power(fleet, "start.yml")
    assert again.rc == 0, again.failures()
    assert again.changed == {}, again.changed_tasks()
    assert "already running" in result_of(again)["lines"][0]


def test_soft_and_hard_reboots_leave_the_guest_running_in_a_new_qemu(fleet, server):
    before = qemu_pid(fleet, server)
    soft = power(fleet, "reboot.yml")
    assert soft.rc == 0, soft.failures()
    assert result_of(soft)["servers"]["pw1"]["result"] == "rebooted (soft)"
    assert domain_state(fleet, server) == "running"
    after_soft = qemu_pid(fleet, server)
    assert after_soft != before        # Nova's _soft_reboot: a clean shutdown, then a start

    hard = power(fleet, "reboot.yml", reboot_type="hard")
    assert hard.rc == 0, hard.failures()
    assert result_of(hard)["servers"]["pw1"]["result"] == "rebooted (hard)"
    assert domain_state(fleet, server) == "running"
    assert qemu_pid(fleet, server) not in (before, after_soft)
    record = fleet.record(server["host"], server["uuid"])
    assert (record["vm_state"], record["task_state"]) == ("active", None)
    assert "rebooting_hard" in [h["task_state"] for h in record["history"]]


def test_console_log_shows_the_guests_own_lines_and_changes_nothing(fleet, server):
    # After the reboot above, wait until the guest has read its config drive again. The log is
    # appended to across reboots and the boots before printed the marker too: look for it after
    # the newest kernel banner only, else the wait may end on an older boot's line that the
    # newest boot's lines push out of the tail before console_log.yml reads it.
    marker = "VIRTOPS-META uuid=%s" % server["uuid"]
    deadline = time.monotonic() + 120
    while marker not in newest_boot(fleet.console(server["host"], server["uuid"])):
        assert time.monotonic() < deadline, "the guest never printed %s" % marker
        time.sleep(1)
    run = power(fleet, "console_log.yml", console_lines=400)
    assert run.rc == 0, run.failures()
    assert run.changed == {}, run.changed_tasks()
    lines = result_of(run)["console"]["pw1"]
    # The guest's line may share a console line with a kernel message printed at the same time.
    assert any(marker in line for line in lines), lines
    short = power(fleet, "console_log.yml", console_lines=3)
    assert len(result_of(short)["console"]["pw1"]) == 3


def test_an_unknown_name_fails_clearly_and_changes_nothing(fleet, server):
    run = fleet.playbook("stop.yml", {"server": "no-such-server"})
    assert run.rc != 0
    assert "no server no-such-server in the fleet: nothing was done" in run.failures()
    assert run.changed == {}, run.changed_tasks()
    assert domain_state(fleet, server) == "running"


def test_with_a_fleet_store_only_the_servers_host_is_gathered_and_the_lease_goes_back(
        fleet, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "fleet.db")
    store = FleetStore(store_db.connect(url))
    reported = fleet.playbook("report.yml", {"virtops_fleet_store": url})
    assert reported.rc == 0, reported.failures()
    booted = fleet.boot(dict(SERVER, name="pws"), virtops_fleet_store=url)
    assert booted.rc == 0, booted.failures()
    (made,) = booted.boot["servers"]
    try:
        stopped = fleet.playbook("stop.yml", {"server": "pws", "virtops_fleet_store": url,
                                              "shutdown_timeout": 30})
        assert stopped.rc == 0, stopped.failures()
        gathered = [host for play in stopped.plays for task in play["tasks"]
                    if task["task"]["name"].endswith("Gather what this compute host offers and holds")
                    for host in task["hosts"]]
        assert gathered == [made["host"]]
        assert store.lease("pws") is None
        assert made["host"] in store.stale(fleet.hosts, max_age=300)   # it reports again

        store.take(["pws"], "AWX job 7", "reboot", ttl=600)
        busy = fleet.playbook("start.yml", {"server": "pws", "virtops_fleet_store": url})
        assert busy.rc != 0 and "server pws is busy: reboot by AWX job 7" in busy.failures()
        assert busy.changed == {}, busy.changed_tasks()
        store.give_back(["pws"], "AWX job 7")
    finally:
        store.db.close()
        gone = fleet.playbook("delete.yml", {"server": "pws", "virtops_fleet_store": url})
        assert gone.rc == 0, gone.failures()
