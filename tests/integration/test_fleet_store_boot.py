# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks with a fleet store, on the session's two-host lab, against both engines (an
SQLite file and a real PostgreSQL, tests/fixtures/postgres.py): controllers booting at once get
unique addresses and MACs; a busy server refuses a second operation naming the first; a killed
job's lease expires and reconcile cleans up; a fresh store gathers no host and builds only on
the chosen one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.boot_fleet import CALLBACKS, REPO, guest_fleet
from tests.integration.ansible_venv import VENV_BIN
from ansible_collections.virtops.compute.plugins.plugin_utils._store import db as store_db
from ansible_collections.virtops.compute.plugins.plugin_utils._store.fleet_store import FleetStore

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

NANO = {"flavor": "m1.nano", "image": "guest", "networks": [{"network": "private"}]}


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return guest_fleet(lab, tmp_path_factory.mktemp("fleet-store"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "fleet.db")
    return request.getfixturevalue("fresh_postgres_dsn")


@pytest.fixture
def store(store_url):  # pylint: disable=redefined-outer-name
    database = store_db.connect(store_url)
    yield FleetStore(database)
    database.close()


def delete(fleet, name, url, max_count=1):  # pylint: disable=redefined-outer-name
    return fleet.playbook("delete.yml", {"server": {"name": name, "max_count": max_count},
                                         "virtops_fleet_store": url})


def held_on_hosts(fleet):  # pylint: disable=redefined-outer-name
    """uuid -> host of every instance directory on the lab hosts."""
    return {uuid: host for host in fleet.hosts for uuid in fleet.instance_dirs(host)}


def test_controllers_booting_at_once_never_share_an_address_or_a_mac(fleet, store_url, store):
    names = ["cc%d" % n for n in range(3)]

    def boot(name):
        return fleet.boot(dict(NANO, name=name, max_count=2), virtops_fleet_store=store_url)

    try:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            runs = list(pool.map(boot, names))
        for run in runs:
            assert run.rc == 0, run.failures()
        servers = [s for run in runs for s in run.boot["servers"]]
        assert [s["result"] for s in servers] == ["booted"] * 6
        ips = [ip for s in servers for ip in s["ips"]]
        macs = [fleet.record(s["host"], s["uuid"])["network_info"][0]["address"] for s in servers]
        assert len(set(ips)) == 6, ips
        assert len(set(macs)) == 6, macs
        # The store holds what the hosts hold, and every lease was given back.
        rows = store.servers([s["name"] for s in servers])
        assert {name: row["host"] for name, row in rows.items()} == {s["name"]: s["host"] for s in servers}
        assert store.live_leases() == {}
        assert sorted(ip for entry in store.reserved(["private"]) for ip in entry["ips"]) == sorted(ips)
    finally:
        for name in names:
            gone = delete(fleet, name, store_url, max_count=2)
            assert gone.rc == 0, gone.failures()
    assert store.all_servers() == [] and store.reserved(["private"]) == []
    assert held_on_hosts(fleet) == {}


def test_an_operation_on_a_busy_server_is_refused_naming_the_first(fleet, store_url, store):
    store.take(["busy1"], "AWX job 4242", "resize", ttl=600)
    booted = fleet.boot(dict(NANO, name="busy1"), virtops_fleet_store=store_url)
    assert booted.rc != 0
    assert "server busy1 is busy: resize by AWX job 4242 since" in booted.failures()
    gone = delete(fleet, "busy1", store_url)
    assert gone.rc != 0 and "server busy1 is busy: resize by AWX job 4242" in gone.failures()
    assert held_on_hosts(fleet) == {} and store.all_servers() == []
    assert store.lease("busy1").holder == "AWX job 4242"        # the first keeps it


def test_a_killed_boot_leaves_a_lease_that_expires_and_reconcile_cleans_up(fleet, store_url, store):
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(fleet.lab.inventory),
            "-i", str(fleet.inventory_dir), str(REPO / "playbooks" / "boot.yml"),
            "-e", json.dumps({"server": dict(NANO, name="killed"), "virtops_fleet_store": store_url,
                              "virtops_fleet_lease_ttl": 4})]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_STDOUT_CALLBACK="json_results", PATH="%s:%s" % (VENV_BIN, os.environ["PATH"]))
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not store.servers(["killed"]) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert store.servers(["killed"]), "the boot never claimed its server in the store"
        os.killpg(proc.pid, signal.SIGKILL)       # kill -9, the whole job
    finally:
        proc.wait(timeout=30)
    assert store.lease("killed") is not None            # left behind by the killed job
    time.sleep(4.5)                                     # its lease expires
    checked = fleet.playbook("reconcile.yml", {"virtops_fleet_store": store_url}, "--check")
    assert checked.rc == 0, checked.failures()
    assert store.lease("killed") is not None            # --check changed nothing
    run = fleet.playbook("reconcile.yml", {"virtops_fleet_store": store_url})
    assert run.rc == 0, run.failures()
    lines = run.task("Say what was fixed")["localhost"]["msg"]
    assert any(line.startswith("removed the expired lease on killed (boot by ansible-playbook pid %d"
                               % proc.pid) for line in lines), lines
    assert store.lease("killed") is None
    # The store now says what the hosts hold: the server where a host has it, else nothing.
    on_hosts = held_on_hosts(fleet)
    assert {uuid: host for uuid, _name, host in store.all_servers()} == on_hosts
    gone = delete(fleet, "killed", store_url)
    assert gone.rc == 0, gone.failures()
    assert store.all_servers() == [] and held_on_hosts(fleet) == {} and store.reserved(["private"]) == []


def test_a_fresh_store_gathers_no_host_and_builds_only_on_the_chosen_one(fleet, store_url, store):
    reported = fleet.playbook("report.yml", {"virtops_fleet_store": store_url})
    assert reported.rc == 0, reported.failures()
    assert store.stale(fleet.hosts, max_age=300) == []
    run = fleet.boot(dict(NANO, name="fresh"), virtops_fleet_store=store_url)
    try:
        assert run.rc == 0, run.failures()
        (server,) = run.boot["servers"]
        gathered = [host for play in run.plays for task in play["tasks"]
                    if task["task"]["name"].endswith("Gather what this compute host offers and holds")
                    for host in task["hosts"]]
        assert gathered == []
        built_on = [host for play in run.plays for task in play["tasks"]
                    if "Find what this host repairs and builds" in task["task"]["name"]
                    for host in task["hosts"]]
        assert built_on == [server["host"]]
        row = store.servers(["fresh"])["fresh"]
        assert (row["uuid"], row["host"], row["summary"]["vm_state"]) == (server["uuid"], server["host"], "active")
        again = fleet.boot(dict(NANO, name="fresh"), virtops_fleet_store=store_url)
        assert again.rc == 0, again.failures()
        assert again.boot["servers"][0]["result"] == "unchanged" and again.changed == {}, again.changed_tasks()
    finally:
        gone = delete(fleet, "fresh", store_url)
        assert gone.rc == 0, gone.failures()
    assert store.all_servers() == [] and held_on_hosts(fleet) == {}


def test_a_checked_boot_with_a_store_places_and_allocates_but_writes_nothing(fleet, store_url, store):
    run = fleet.boot(dict(NANO, name="checked", max_count=2), "--check", virtops_fleet_store=store_url)
    assert run.rc == 0, run.failures()
    assert [s["result"] for s in run.boot["servers"]] == ["placed (check mode)"] * 2, run.boot["servers"]
    assert len({ip for s in run.boot["servers"] for ip in s["ips"]}) == 2
    assert store.host_count() == 0 and store.all_servers() == [] and store.live_leases() == {}
    assert store.reserved(["private"]) == [] and held_on_hosts(fleet) == {}
