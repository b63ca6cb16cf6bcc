# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several servers in one boot or delete (``server`` as a list, as playbooks/converge.yml
passes them): each keeps its own flavor, image, networks and secrets through the plan."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import fleet as bf
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import plan as bp
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import request as br

from .test_plan import FLAVORS, GROUPS, IMAGES, NETWORKS, host, uuids

CATALOGS = (FLAVORS, IMAGES, dict(NETWORKS, public={"cidr": "10.91.0.0/24"}), {}, GROUPS)


def requests(*servers):
    return br.boot_requests([dict({"networks": [{"network": "private"}]}, **server)
                             for server in servers], *CATALOGS)


def test_a_list_of_servers_gives_one_checked_request_each_in_order():
    checked = requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                       {"name": "db", "flavor": "m1.big", "image": "guest",
                        "networks": [{"network": "public"}]})
    assert [(r["name"], r["flavor"]["name"], r["networks"]) for r in checked] == [
        ("web", "m1.tiny", [{"network": "private"}]), ("db", "m1.big", [{"network": "public"}])]


def test_a_single_server_gives_a_list_of_one_request():
    checked = br.boot_requests({"name": "web", "flavor": "m1.tiny", "image": "guest",
                                "networks": "none"}, *CATALOGS)
    assert [r["name"] for r in checked] == ["web"]


def test_a_name_asked_for_twice_is_refused_before_anything_is_placed():
    with pytest.raises(VirtopsError, match="server web-2 is asked for twice"):
        requests({"name": "web", "flavor": "m1.tiny", "image": "guest", "max_count": 2},
                 {"name": "web-2", "flavor": "m1.tiny", "image": "guest"})


def test_one_bad_server_of_the_list_stops_the_whole_boot():
    with pytest.raises(VirtopsError, match="no flavor 'm1.huge'"):
        requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                 {"name": "db", "flavor": "m1.huge", "image": "guest"})


def test_each_instance_is_placed_with_its_own_flavor_and_claims_it():
    plan = bp.boot_plan(requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                                 {"name": "db", "flavor": "m1.big", "image": "guest"}),
                        [host("c1", memory_mb=2048), host("c2")], uuid_factory=uuids())
    scheduler_requests = bp.schedule_requests(plan)
    assert [(r["instance_names"], r["flavor"]["name"]) for r in scheduler_requests] == [
        (["web"], "m1.tiny"), (["db"], "m1.big")]
    plan = bp.boot_scheduled(plan, [host("c1", memory_mb=2048), host("c2")])
    placed = {i["name"]: i["host"] for i in plan["instances"]}
    assert placed["db"] == "c2"          # 4 GB fit only there
    claims = {c["name"]: c["flavor"]["name"] for c in bp.boot_claims(plan)}
    assert claims == {"web": "m1.tiny", "db": "m1.big"}
    assert [i["request"] for i in plan["instances"]] == [0, 1]
    assert bp.request_of(plan, plan["instances"][1])["name"] == "db"


def test_ports_are_asked_on_each_servers_own_networks():
    plan = bp.boot_plan(requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                                 {"name": "db", "flavor": "m1.tiny", "image": "guest",
                                  "networks": "none"}),
                        [host("c1")], uuid_factory=uuids())
    plan = bp.boot_scheduled(plan, [host("c1")])
    assert [(p["name"], p["networks"]) for p in bp.ports_request(plan)] == [
        ("web", [{"network": "private"}])]


def test_a_server_that_does_not_fit_fails_alone_and_the_others_are_placed():
    hosts = [host("c1", memory_mb=1024)]
    plan = bp.boot_plan(requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                                 {"name": "db", "flavor": "m1.big", "image": "guest"}),
                        hosts, uuid_factory=uuids())
    plan = bp.boot_scheduled(plan, hosts)
    assert {i["name"]: i["status"] for i in plan["instances"]} == {"web": "pending",
                                                                   "db": "error"}


def test_a_multiple_create_shrinks_towards_its_own_min_count_beside_another_server():
    hosts = [host("c1", memory_mb=900)]        # 388 MB usable: three 128 MB instances
    plan = bp.boot_plan(requests({"name": "db", "flavor": "m1.tiny", "image": "guest"},
                                 {"name": "web", "flavor": "m1.tiny", "image": "guest",
                                  "min_count": 1, "max_count": 4}),
                        hosts, uuid_factory=uuids())
    plan = bp.boot_scheduled(plan, hosts)
    statuses = {i["name"]: i["status"] for i in plan["instances"]}
    assert statuses["db"] == "pending"
    assert sorted(s for n, s in statuses.items() if n.startswith("web-")) == [
        "dropped", "dropped", "pending", "pending"]


def test_the_summary_names_every_server_asked_for():
    plan = bp.boot_plan(requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                                 {"name": "db", "flavor": "m1.tiny", "image": "guest"}),
                        [host("c1")], uuid_factory=uuids())
    assert bp.boot_summary(plan)["msg"].startswith("web, db: ")


def test_an_empty_list_plans_nothing_and_says_so():
    plan = bp.boot_plan([], [])
    assert plan["instances"] == [] and bp.schedule_requests(plan) == []
    summary = bp.boot_summary(plan)
    assert (summary["servers"], summary["changed"]) == ([], False)
    assert summary["msg"] == "nothing asked: nothing to boot"


def test_the_least_flavor_is_what_every_server_needs_at_least():
    checked = requests({"name": "web", "flavor": "m1.tiny", "image": "guest"},
                       {"name": "db", "flavor": "m1.big", "image": "guest"})
    least = bp.least_flavor(checked)
    assert (least["ram_mb"], least["vcpus"], least["root_gb"]) == (128, 1, 1)
    assert bp.least_flavor([]) == {}


def test_server_request_of_a_list_gives_a_list_and_refuses_survey_variables():
    assert br.server_request(["web1", {"name": "db", "flavor": "m1.big"}]) == [
        {"name": "web1"}, {"name": "db", "flavor": "m1.big"}]
    assert br.server_request([]) == []
    with pytest.raises(VirtopsError, match="survey variables flavor say one server"):
        br.server_request(["web1"], {"flavor": "m1.big", "image": ""})
    with pytest.raises(VirtopsError, match="say which server"):
        br.server_request([{"flavor": "m1.big"}])


def test_each_server_of_a_list_keeps_its_own_secrets_and_shares_the_top_level_ones():
    secrets = br.server_secrets([{"name": "a", "user_data": "#!/bin/sh\n"}, {"name": "b"}],
                                admin_pass="s3cret", user_data="#cloud-config\n")
    assert secrets == [{"admin_pass": "s3cret", "user_data": "#!/bin/sh\n"},
                       {"admin_pass": "s3cret", "user_data": "#cloud-config\n"}]
    assert br.server_secrets("web1", admin_pass="x", each=True) == [
        {"admin_pass": "x", "user_data": None}]


def test_names_and_locations_of_a_list_cover_every_server():
    facts = [{"hostname": "c1", "instances": [{"name": "web", "uuid": "u1"},
                                              {"name": "db-2", "uuid": "u2"},
                                              {"name": "other", "uuid": "u3"}]}]
    wanted = [{"name": "web"}, {"name": "db", "max_count": 2}, {"uuid": "u3"}]
    assert bf.server_names(wanted) == ["web", "db-1", "db-2"]
    assert [f["name"] for f in bf.server_locations(facts, wanted)] == ["db-2", "other", "web"]
    assert bf.server_names([]) == [] and bf.server_locations(facts, []) == []


def test_a_later_server_sees_the_room_an_earlier_one_took_on_the_same_host():
    # 8 GB host, 512 MB used: room for one m1.big (4 GB) and some m1.tiny, not two m1.big
    hosts = [host("c1")]
    plan = bp.boot_plan(requests({"name": "a", "flavor": "m1.big", "image": "guest"},
                                 {"name": "b", "flavor": "m1.big", "image": "guest"}),
                        hosts, uuid_factory=uuids())
    plan = bp.boot_scheduled(plan, hosts)
    assert {i["name"]: i["status"] for i in plan["instances"]} == {"a": "pending", "b": "error"}
    assert "No valid host" in plan["instances"][1]["fault"]


def test_anti_affinity_holds_across_servers_of_one_boot():
    hosts = [host("c1"), host("c2")]
    plan = bp.boot_plan(requests(
        {"name": "a", "flavor": "m1.tiny", "image": "guest", "scheduler_hints": {"group": "spread"}},
        {"name": "b", "flavor": "m1.tiny", "image": "guest", "scheduler_hints": {"group": "spread"}}),
        hosts, uuid_factory=uuids())
    plan = bp.boot_scheduled(plan, hosts)
    assert sorted(i["host"] for i in plan["instances"]) == ["c1", "c2"]
