# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""schedule(): weighing, picking, consuming across a multiple create, alternates, errors."""
from __future__ import annotations

import random

import pytest

from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler import filters
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import parse_hosts
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import NoValidHost, schedule
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.weighers import normalize
from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._scheduler.helpers import facts, flavor, request

RAM_ONLY = {"disk_weight_multiplier": 0.0, "cpu_weight_multiplier": 0.0}


def hosts_with_free_ram(*free_mb):
    return [facts("c%d" % n, memory_mb=16384, memory_mb_used=16384 - free) for n, free in enumerate(free_mb, 1)]


def placed(selections):
    return [(s.instance_name, s.host) for s in selections]


# -------------------------------------------------------------- normalisation
def test_normalize_min_max():
    assert normalize([10, 20, 30]) == [0.0, 0.5, 1.0]
    assert normalize([-5, 5]) == [0.0, 1.0]


def test_normalize_all_equal_and_single_are_zero():
    assert normalize([7, 7, 7]) == [0, 0, 0]
    assert normalize([42]) == [0]
    assert normalize([]) == []


def test_weights_are_normalised_sums():
    # RAM free 1000/2000/3000 -> 0, .5, 1; disk free 30/20/10 GB -> 1, .5, 0 (x2); vCPUs all equal -> 0
    hosts = [facts("c%d" % n, memory_mb=4000, memory_mb_used=4000 - ram, local_gb=100, local_gb_used=100 - disk,
                   free_disk_gb=disk)
             for n, (ram, disk) in enumerate([(1000, 30), (2000, 20), (3000, 10)], 1)]
    sel = schedule(hosts, request(flavor=flavor(ram_mb=1, root_gb=1)), {"disk_weight_multiplier": 2.0})[0]
    assert sel.host == "c1"
    assert sel.weight == 2.0
    assert [(a.host, a.weight) for a in sel.alternates] == [("c2", 1.5), ("c3", 1.0)]


def test_single_host_weighs_zero():
    sel = schedule([facts("c1")], request())[0]
    assert (sel.host, sel.weight, sel.alternates) == ("c1", 0.0, ())


# ---------------------------------------------------------- spread vs stack
def test_positive_ram_multiplier_spreads():
    sel = schedule(hosts_with_free_ram(4000, 12000, 8000), request(), RAM_ONLY)
    assert sel[0].host == "c2"


def test_negative_ram_multiplier_stacks():
    sel = schedule(hosts_with_free_ram(4000, 12000, 8000), request(), dict(RAM_ONLY, ram_weight_multiplier=-1.0))
    assert sel[0].host == "c1"


def test_multiple_create_spreads_by_consuming_each_pick():
    # 2048 MB each: c1 has 8192 free, c2 4096: c1 takes two, then ties c2 and wins on host order,
    # then c2 has the most left
    sel = schedule(hosts_with_free_ram(8192, 4096), request(instance_names=["a", "b", "c", "d"]), RAM_ONLY)
    assert placed(sel) == [("a", "c1"), ("b", "c1"), ("c", "c1"), ("d", "c2")]


def test_multiple_create_stacks_until_full():
    sel = schedule(hosts_with_free_ram(8192, 12288), request(instance_names=["a", "b", "c", "d", "e"]),
                   dict(RAM_ONLY, ram_weight_multiplier=-1.0))
    assert placed(sel) == [("a", "c1"), ("b", "c1"), ("c", "c1"), ("d", "c1"), ("e", "c2")]


def test_multiple_create_never_oversubscribes():
    # room for 3 x 2048 MB on c1, 1 on c2: a fifth instance has nowhere to go
    with pytest.raises(NoValidHost) as err:
        schedule(hosts_with_free_ram(6144, 2048), request(name="web", num_instances=5), RAM_ONLY)
    assert err.value.msg.startswith("No valid host was found for web-5: 2 hosts; RamFilter removed 2")
    assert err.value.details["removed"] == {"RamFilter": 2}


def test_vcpus_and_disk_are_consumed_too():
    hosts = [facts("c1", vcpus=2, cpu_allocation_ratio=1.0), facts("c2", vcpus=2, cpu_allocation_ratio=1.0)]
    sel = schedule(hosts, request(instance_names=["a", "b"], flavor=flavor(vcpus=2, root_gb=1)))
    assert {s.host for s in sel} == {"c1", "c2"}
    hosts = [facts("c1", local_gb=30, free_disk_gb=30), facts("c2", local_gb=10, free_disk_gb=10)]
    with pytest.raises(NoValidHost, match="DiskFilter removed 2"):
        schedule(hosts, request(name="w", num_instances=5, flavor=flavor(root_gb=10, ram_mb=1)))


def test_ties_keep_host_order():
    sel = schedule([facts("b"), facts("a"), facts("c")], request())
    assert sel[0].host == "b"
    assert [a.host for a in sel[0].alternates] == ["a", "c"]


def test_aggregate_multiplier_overrides_config():
    hosts = hosts_with_free_ram(4000, 12000)
    hosts[1]["aggregates"] = [{"name": "packed", "metadata": {"ram_weight_multiplier": "-1.0"}}]
    sel = schedule(hosts, request(), RAM_ONLY)
    # c2 has the most free RAM but its aggregate turns RAM weight against it: 1.0 x -1.0 < 0
    assert sel[0].host == "c1"
    assert sel[0].alternates[0].weight == -1.0


# -------------------------------------------------------------- server groups
def test_anti_affinity_across_a_multiple_create():
    req = request(name="web", num_instances=3, server_group={"name": "web", "policy": "anti-affinity"},
                  scheduler_hints={"group": "web"})
    sel = schedule([facts("c1"), facts("c2"), facts("c3")], req)
    assert sorted(s.host for s in sel) == ["c1", "c2", "c3"]


def test_anti_affinity_runs_out_of_hosts_with_a_clear_message():
    req = request(name="web", num_instances=3, server_group={"name": "web", "policy": "anti-affinity"})
    hosts = [facts("c1"), facts("c2", instances=[{"uuid": "u-old", "name": "web-0", "server_group": "web"}])]
    with pytest.raises(NoValidHost) as err:
        schedule(hosts, req)
    assert err.value.msg == ("No valid host was found for web-2: 2 hosts; ServerGroupAntiAffinityFilter removed 2 "
                             "(after placing web-1 on c1 in this request)")


def test_affinity_keeps_a_multiple_create_together():
    req = request(name="db", num_instances=3, server_group={"name": "db", "policy": "affinity"})
    sel = schedule(hosts_with_free_ram(6144, 16000), req, RAM_ONLY)
    # all on c2 although c1 would be emptier after two picks
    assert [s.host for s in sel] == ["c2", "c2", "c2"]
    assert all(s.alternates == () for s in sel)   # no other host may hold a member


def test_affinity_follows_an_existing_member():
    req = request(server_group={"name": "db", "policy": "affinity", "members": ["db-0"]})
    hosts = hosts_with_free_ram(16000, 1000, 8000)
    hosts[2]["instances"] = [{"uuid": "u0", "name": "db-0"}]
    assert schedule(hosts, req)[0].host == "c3"


# ----------------------------------------------------------- forced / retry
def test_forced_host_wins_over_weights():
    sel = schedule(hosts_with_free_ram(16000, 4000), request(availability_zone="nova:c2"))
    assert sel[0].host == "c2"
    assert sel[0].alternates == ()


def test_forced_host_is_still_filtered():
    with pytest.raises(NoValidHost) as err:
        schedule(hosts_with_free_ram(16000, 1000), request(availability_zone=":c2"))
    assert err.value.msg == "No valid host was found for web1: 1 host (forced host c2); RamFilter removed 1"
    with pytest.raises(NoValidHost, match="AvailabilityZoneFilter removed 1"):
        schedule([facts("c1"), facts("c2", availability_zone="az2")], request(availability_zone="az1:c2"))


def test_forced_host_must_exist():
    with pytest.raises(NoValidHost, match=r"^No valid host was found for web1: forced host c9 is not among the 2 "
                                          r"hosts given$"):
        schedule([facts("c1"), facts("c2")], request(availability_zone="nova:c9"))


def test_retry_excludes_tried_hosts_from_pick_and_alternates():
    hosts = hosts_with_free_ram(16000, 12000, 8000, 4000)
    sel = schedule(hosts, request(ignore_hosts=["c1"]), RAM_ONLY)[0]
    assert sel.host == "c2"
    assert [a.host for a in sel.alternates] == ["c3", "c4"]


def test_zone_request():
    hosts = [facts("c1", memory_mb_used=0), facts("c2", availability_zone="az1", memory_mb_used=8000),
             facts("c3", aggregates=[{"name": "z", "metadata": {"availability_zone": "az1"}}])]
    sel = schedule(hosts, request(availability_zone="az1"), RAM_ONLY)[0]
    assert (sel.host, sel.availability_zone) == ("c3", "az1")
    assert [a.host for a in sel.alternates] == ["c2"]
    assert schedule(hosts, request())[0].availability_zone == "nova"
    assert schedule(hosts[1:2], request())[0].availability_zone == "az1"


# --------------------------------------------------------------------- limits
def test_limits_follow_each_hosts_ratios():
    hosts = [facts("c1", vcpus=2, cpu_allocation_ratio=4.0, memory_mb=24000, ram_allocation_ratio=1.5,
                   local_gb=250, disk_allocation_ratio=1.0),
             facts("c2", vcpus=4, cpu_allocation_ratio=16.0, memory_mb=8000, ram_allocation_ratio=1.0,
                   local_gb=100, disk_allocation_ratio=2.0)]
    sel = schedule(hosts, request(), RAM_ONLY)[0]
    assert sel.host == "c1"
    assert sel.limits == {"memory_mb": 36000.0, "disk_gb": 250.0, "vcpu": 8.0}
    assert sel.alternates[0].limits == {"memory_mb": 8000.0, "disk_gb": 200.0, "vcpu": 64.0}


def test_limits_only_from_enabled_filters():
    sel = schedule([facts("c1")], request(), {"enabled_filters": ["ComputeFilter", "RamFilter"]})[0]
    assert sel.limits == {"memory_mb": 16384.0}


# ---------------------------------------------------------------- NoValidHost
def test_no_valid_host_counts_per_filter_in_order():
    hosts = [facts("c1", memory_mb_used=16000), facts("c2", memory_mb_used=15000),
             facts("c3", local_gb_used=90, free_disk_gb=10)]
    with pytest.raises(NoValidHost) as err:
        schedule(hosts, request())
    assert err.value.msg == "No valid host was found for web1: 3 hosts; RamFilter removed 2, DiskFilter removed 1"


def test_no_valid_host_counts_the_first_filter_that_refuses():
    # c1 is disabled AND too small: only ComputeFilter (earlier in the list) is charged
    hosts = [facts("c1", enabled=False, memory_mb_used=16384), facts("c2", vcpus=0, enabled=False)]
    with pytest.raises(NoValidHost) as err:
        schedule(hosts, request())
    assert err.value.msg == "No valid host was found for web1: 2 hosts; ComputeFilter removed 2"


def test_no_hosts_at_all():
    with pytest.raises(NoValidHost, match="^No valid host was found for web1: 0 hosts given$"):
        schedule([], request())


# ----------------------------------------------------------------- alternates
def test_alternates_follow_max_attempts():
    hosts = hosts_with_free_ram(16000, 12000, 8000, 4000)
    assert len(schedule(hosts, request(), RAM_ONLY)[0].alternates) == 2
    assert len(schedule(hosts, request(), dict(RAM_ONLY, max_attempts=4))[0].alternates) == 3
    assert schedule(hosts, request(), dict(RAM_ONLY, max_attempts=1))[0].alternates == ()


def test_multiple_create_alternates_are_never_chosen_hosts():
    hosts = hosts_with_free_ram(16000, 15000, 8000, 4000, 3000)
    sel = schedule(hosts, request(instance_names=["a", "b"]), RAM_ONLY)
    assert placed(sel) == [("a", "c1"), ("b", "c2")]
    for s in sel:
        assert [a.host for a in s.alternates] == ["c3", "c4"]


# ------------------------------------------------------------- random subset
def test_host_subset_size_draws_among_the_best_only():
    hosts = hosts_with_free_ram(16000, 15000, 14000, 1000)
    seen = {schedule(hosts, request(), dict(RAM_ONLY, host_subset_size=3), rng=random.Random(seed))[0].host
            for seed in range(60)}
    assert seen == {"c1", "c2", "c3"}


def test_seed_makes_the_draw_repeatable():
    hosts = hosts_with_free_ram(*([8000] * 20))
    config = {"host_subset_size": 20, "random_seed": 7}
    first = placed(schedule(hosts, request(name="w", num_instances=5), config))
    assert placed(schedule(hosts, request(name="w", num_instances=5), config)) == first
    assert len({host for _name, host in first}) > 1


def test_injected_rng_is_used():
    class Last(random.Random):
        def choice(self, seq):
            return seq[-1]
    sel = schedule(hosts_with_free_ram(16000, 15000, 14000), request(), dict(RAM_ONLY, host_subset_size=2),
                   rng=Last())
    assert sel[0].host == "c2"
    assert [a.host for a in sel[0].alternates] == ["c1", "c3"]


# ---------------------------------------------------------------------- misc
def test_inputs_are_left_unchanged():
    states = parse_hosts([facts("c1"), facts("c2")])
    before = [(h.vcpus_used, h.memory_mb_used, h.instances) for h in states]
    schedule(states, request(instance_names=["a", "b", "c"]))
    assert [(h.vcpus_used, h.memory_mb_used, h.instances) for h in states] == before


def test_selection_dict_form():
    sel = schedule([facts("c1")], request(instance_uuids=["9b1c"]))[0].to_dict()
    assert sel == {"instance_name": "web1", "instance_uuid": "9b1c", "host": "c1", "availability_zone": "nova",
                   "limits": {"memory_mb": 16384.0, "disk_gb": 100.0, "vcpu": 8.0}, "weight": 0.0,
                   "alternates": []}


# --------------------------------------------------------------- cost per pick
def _counting(cls):
    class Counting(cls):
        batches = 0
        singles = 0

        def filter_indices(self, hosts, indices, spec):
            type(self).batches += 1
            return super().filter_indices(hosts, indices, spec)

        def host_passes(self, host, spec):
            type(self).singles += 1
            return super().host_passes(host, spec)
    return Counting


def test_after_a_pick_only_the_chosen_host_is_filtered_again(monkeypatch):
    counting = _counting(filters.RamFilter)
    monkeypatch.setitem(filters.FILTER_CLASSES, "RamFilter", counting)
    hosts = [facts("c%d" % n) for n in range(300)]
    schedule(hosts, request(name="web", num_instances=40))
    assert counting.batches == 1          # one pass over all hosts for the whole request
    assert counting.singles == 40         # then the chosen host once per pick


def test_affinity_refilters_everyone_once_after_the_first_member(monkeypatch):
    counting = _counting(filters.RamFilter)
    monkeypatch.setitem(filters.FILTER_CLASSES, "RamFilter", counting)
    hosts = [facts("c%d" % n) for n in range(300)]
    schedule(hosts, request(name="db", num_instances=5, server_group={"name": "db", "policy": "affinity"}))
    assert counting.batches == 2
    assert counting.singles == 4
