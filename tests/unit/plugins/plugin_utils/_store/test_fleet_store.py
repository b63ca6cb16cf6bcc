# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet store on SQLite (tests/integration/test_fleet_store_postgresql.py runs these same
tests on a real PostgreSQL by overriding the ``store_url`` fixture)."""
from __future__ import annotations

import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import NoValidHost, schedule
from ansible_collections.virtops.compute.plugins.plugin_utils._store import db as store_db
from ansible_collections.virtops.compute.plugins.plugin_utils._store.fleet_store import (
    FleetStore, LeaseBusy, allocate_ports)
from ansible_collections.virtops.compute.plugins.plugin_utils._store.reconcile import reconcile
from tests.unit.plugins.plugin_utils._scheduler.helpers import facts

TINY = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 512, "root_gb": 1, "ephemeral_gb": 0, "swap_mb": 0}
NETWORKS = {"lan": {"cidr": "10.20.0.0/29", "gateway": "10.20.0.1"}}


def u(tag):
    """A stable uuid for a test server."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "%s.test" % tag))


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store_url(tmp_path):
    return "sqlite:///%s" % (tmp_path / "store" / "fleet.db")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(store_url, clock):  # pylint: disable=redefined-outer-name
    database = store_db.connect(store_url)
    yield FleetStore(database, clock=clock)
    database.close()


@pytest.fixture
def other(store_url, clock, store):  # pylint: disable=redefined-outer-name,unused-argument
    """A second controller's connection to the same store."""
    database = store_db.connect(store_url)
    yield FleetStore(database, clock=clock)
    database.close()


def instance(name, uuid, host, **extra):
    data = {"name": name, "uuid": uuid, "host": host, "flavor": TINY, "vm_state": "building"}
    data.update(extra)
    return data


def test_a_reported_host_is_fresh_until_max_age_and_an_unreported_one_is_stale(store, clock):
    store.report([facts("c1"), facts("c2")])
    assert store.stale(["c1", "c2", "c3"], max_age=60) == ["c3"]
    clock.now += 61
    assert store.stale(["c1", "c2", "c3"], max_age=60) == ["c1", "c2", "c3"]


def test_candidates_are_the_hosts_whose_free_resources_cover_the_flavor_most_free_ram_first(store):
    store.report([facts("small", memory_mb=1024), facts("big", memory_mb=65536),
                  facts("mid", memory_mb=8192), facts("off", enabled=False),
                  facts("full", vcpus=1, vcpus_used=1)])
    names = [f["hostname"] for f in store.fleet(["small", "big", "mid", "off", "full"], flavor=TINY)]
    assert names == ["big", "mid", "small"]
    assert [f["hostname"] for f in store.fleet(["big", "mid", "small"], flavor=TINY, spread=False)] \
        == ["small", "mid", "big"]
    assert [f["hostname"] for f in store.fleet(["small", "big", "mid"], flavor=TINY, limit=2)] \
        == ["big", "mid"]


def test_candidates_are_only_hosts_of_this_inventory(store):
    store.report([facts("c1"), facts("elsewhere", memory_mb=99999)])
    assert [f["hostname"] for f in store.fleet(["c1"], flavor=TINY)] == ["c1"]


def test_a_server_claimed_since_the_report_counts_on_its_host_like_a_pick(store):
    store.report([facts("c1", memory_mb=1024, memory_mb_used=0)])
    store.claim([instance("web", u("1"), "c1")])
    (host,) = store.fleet(["c1"], flavor=TINY)
    assert host["memory_mb_used"] == 512 and host["vcpus_used"] == 1 and host["local_gb_used"] == 1
    assert [i["name"] for i in host["instances"]] == ["web"]
    store.claim([instance("db", u("2"), "c1")])
    # 1024 MB, two tiny servers claimed: the scheduler's RamFilter sees nothing left for a third.
    (host,) = store.fleet(["c1"], flavor=TINY)
    assert host["memory_mb_used"] == 1024
    with pytest.raises(NoValidHost, match="RamFilter"):
        schedule([host], {"flavor": TINY, "instance_names": ["third"]})


def test_a_report_that_shows_the_server_replaces_its_pending_claim(store, clock):
    store.report([facts("c1")])
    store.claim([instance("web", u("1"), "c1")])
    clock.now += 1
    store.report([facts("c1", memory_mb_used=512, vcpus_used=1,
                        instances=[instance("web", u("1"), "c1", vm_state="active")])])
    (host,) = store.fleet(["c1"])
    assert host["memory_mb_used"] == 512
    assert [i["vm_state"] for i in host["instances"]] == ["active"]


def test_the_hosts_of_named_servers_come_with_the_candidates(store):
    store.report([facts("c1", memory_mb=1024, memory_mb_used=1024), facts("c2")])
    store.claim([instance("web", u("1"), "c1")])
    names = [f["hostname"] for f in store.fleet(["c1", "c2"], flavor=TINY, servers=["web"])]
    assert names == ["c2", "c1"]


def test_a_name_is_held_by_one_server_in_the_fleet(store, other):
    store.claim([instance("web", u("1"), "c1")])
    with pytest.raises(VirtopsError, match="the name web is taken in the fleet by server %s on c1" % u("1")):
        other.claim([instance("web", u("2"), "c2")])
    other.claim([instance("web", u("1"), "c2")])     # the same server moving is fine
    assert store.servers(["web"])["web"]["host"] == "c2"


def test_a_lease_refuses_a_second_holder_naming_the_first_until_it_expires(store, other, clock):
    store.take(["web"], "job 1", "boot", ttl=60)
    with pytest.raises(LeaseBusy, match=r"server web is busy: boot by job 1 since .* \(lease ends in 60 s\)"):
        other.take(["web"], "job 2", "delete", ttl=60)
    store.take(["web"], "job 1", "boot", ttl=60)      # the holder may take it again
    clock.now += 61
    assert [lease.holder for lease in other.take(["web"], "job 2", "delete", ttl=60)] == ["job 2"]


def test_a_refused_lease_takes_none_of_the_servers_asked_for(store, other):
    store.take(["b"], "job 1", "boot", ttl=60)
    with pytest.raises(LeaseBusy):
        other.take(["a", "b"], "job 2", "boot", ttl=60)
    assert store.lease("a") is None


def test_only_the_holder_gives_a_lease_back(store, other):
    store.take(["web"], "job 1", "boot", ttl=60)
    assert other.give_back(["web"], "job 2") == []
    assert store.give_back(["web"], "job 1") == ["web"]
    other.take(["web"], "job 2", "delete", ttl=60)


def test_check_mode_sees_a_busy_server_and_takes_nothing(store, other):
    store.take(["web"], "job 1", "boot", ttl=60)
    with pytest.raises(LeaseBusy, match="busy: boot by job 1"):
        other.check_free(["web"], "job 2")
    other.check_free(["db"], "job 2")
    assert store.lease("db") is None


def test_ports_are_unique_across_controllers_allocating_from_the_same_store(store, other):
    first = allocate_ports(store, NETWORKS, [{"name": "a", "uuid": u("a"), "networks": [{"network": "lan"}]}])
    second = allocate_ports(other, NETWORKS, [{"name": "b", "uuid": u("b"), "networks": [{"network": "lan"}]}])
    assert first[0]["ips"] == ["10.20.0.2"] and second[0]["ips"] == ["10.20.0.3"]
    assert first[0]["macs"] != second[0]["macs"]


def test_an_address_taken_between_read_and_write_is_picked_again(store, other, monkeypatch):
    taken_behind_its_back = {"done": False}
    real_reserved = FleetStore.reserved

    def reserved_then_race(self, networks):
        result = real_reserved(self, networks)
        if self is store and not taken_behind_its_back["done"]:
            taken_behind_its_back["done"] = True
            allocate_ports(other, NETWORKS, [{"name": "b", "uuid": u("b"), "networks": [{"network": "lan"}]}])
        return result
    monkeypatch.setattr(FleetStore, "reserved", reserved_then_race)
    allocated = allocate_ports(store, NETWORKS, [{"name": "a", "uuid": u("a"), "networks": [{"network": "lan"}]}])
    assert allocated[0]["ips"] == ["10.20.0.3"]
    assert store.servers(["b"]) == {}        # ports are held before any server row exists


def test_a_re_run_for_the_same_server_gets_its_ports_back(store):
    request = [{"name": "a", "uuid": u("a"), "networks": [{"network": "lan"}]}]
    assert allocate_ports(store, NETWORKS, request) == allocate_ports(store, NETWORKS, request)


def test_check_mode_allocation_holds_nothing(store):
    request = [{"name": "a", "uuid": u("a"), "networks": [{"network": "lan"}]}]
    allocate_ports(store, NETWORKS, request, write=False)
    assert store.reserved(["lan"]) == []


def test_a_full_network_is_a_clear_error(store):
    many = [{"name": "s%d" % n, "uuid": u("%d" % n), "networks": [{"network": "lan"}]} for n in range(6)]
    with pytest.raises(VirtopsError, match="no free address left"):
        allocate_ports(store, NETWORKS, many)


def test_forgetting_a_server_frees_its_name_and_addresses(store, other):
    allocate_ports(store, NETWORKS, [{"name": "a", "uuid": u("a"), "networks": [{"network": "lan"}]}])
    store.claim([instance("a", u("a"), "c1")])
    assert store.forget([u("a")]) == 1
    other.claim([instance("a", u("new"), "c2")])
    assert allocate_ports(other, NETWORKS, [{"name": "a", "uuid": u("new"), "networks": [{"network": "lan"}]}])[0]["ips"] \
        == ["10.20.0.2"]


def test_a_report_records_the_servers_and_addresses_a_host_already_has(store):
    subnet = {"cidr": "10.20.0.0/29", "ips": [{"address": "10.20.0.2"}]}
    vif = {"id": "p-1", "address": "fa:16:3e:00:00:01",
           "network": {"id": "n", "label": "lan", "subnets": [subnet]}}
    store.report([facts("c1", instances=[instance("old", u("old"), "c1", network_info=[vif])])])
    assert store.servers(["old"])["old"]["host"] == "c1"
    new = allocate_ports(store, NETWORKS, [{"name": "n", "uuid": u("n"), "networks": [{"network": "lan"}]}])
    assert new[0]["ips"] == ["10.20.0.3"]


def test_reconcile_releases_what_no_host_holds_and_expired_leases(store, clock):
    store.report([facts("c1"), facts("gone-quiet")])
    store.claim([instance("lost", u("lost"), "c1"), instance("busy", u("busy"), "c1"),
                 instance("kept", u("kept"), "c1"), instance("far", u("far"), "gone-quiet")])
    allocate_ports(store, NETWORKS, [{"name": "lost", "uuid": u("lost"), "networks": [{"network": "lan"}]}])
    store.take(["busy"], "job 1", "boot", ttl=600)
    store.take(["old"], "job 0", "delete", ttl=5)
    clock.now += 10
    result = reconcile(store, [facts("c1", instances=[instance("kept", u("kept"), "c1", vm_state="active")])])
    assert [r["name"] for r in result.released] == ["lost"]
    assert [lease.server for lease in result.expired] == ["old"]
    assert result.kept_leased == ["busy"]
    assert store.reserved(["lan"]) == []         # the lost server's address is free again
    assert sorted(store.servers(["lost", "busy", "kept", "far"])) == ["busy", "far", "kept"]
    again = reconcile(store, [facts("c1", instances=[instance("kept", u("kept"), "c1", vm_state="active")])])
    assert not again.changed and "nothing to fix" in again.lines()


def test_a_store_url_that_is_neither_engine_is_refused_without_its_password():
    with pytest.raises(VirtopsError) as caught:
        store_db.connect("mysql://admin:s3cret@db/fleet")
    assert "s3cret" not in caught.value.msg and "postgresql://" in caught.value.msg


def test_a_store_newer_than_the_collection_is_refused(store_url, store):  # pylint: disable=unused-argument
    with store.db.transaction():
        store.db.execute("UPDATE virtops_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(VirtopsError, match="schema version 99, newer than"):
        store_db.connect(store_url)


def test_a_lease_whose_holder_is_gone_is_taken_over_at_once(store, other):
    store.take(["web"], "ansible-playbook pid 1 on gone", "boot", ttl=600)
    (lease,) = other.take(["web"], "job 2", "delete", ttl=60,
                          alive=lambda holder: holder != "ansible-playbook pid 1 on gone")
    assert store.lease("web").holder == "job 2" == lease.holder


def test_check_mode_decides_a_gone_holder_as_a_real_run_would(store, other):
    store.take(["web"], "ansible-playbook pid 1 on gone", "boot", ttl=600)

    def gone(holder):
        return holder != "ansible-playbook pid 1 on gone"
    with pytest.raises(LeaseBusy, match="busy: boot by ansible-playbook pid 1 on gone"):
        other.check_free(["web"], "job 2")
    assert [lease.server for lease in other.check_free(["web"], "job 2", alive=gone)] == ["web"]
    assert store.lease("web").holder == "ansible-playbook pid 1 on gone"     # nothing taken
