# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each filter's pass/fail table against Nova's semantics, and the limits it sets."""
from __future__ import annotations

import random

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler import filters
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import InstanceInfo
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.weighers import WEIGHER_CLASSES
from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._scheduler.helpers import flavor, host, spec


def passes(flt, h, s, hosts=None):
    """Run a filter the way the scheduler does: prepare on the request, then ask."""
    active = flt.prepare(hosts if hosts is not None else [h], s)
    return flt.host_passes(h, s) if active else True


# ------------------------------------------------------------------------- Retry
def test_retry_filter_removes_ignored_hosts_only():
    s = spec(ignore_hosts=["c1", "c3"])
    assert passes(filters.RetryFilter(), host("c1"), s) is False
    assert passes(filters.RetryFilter(), host("c2"), s) is True


def test_retry_filter_inactive_without_ignore_hosts():
    assert filters.RetryFilter().prepare([], spec()) is False


# ------------------------------------------------------------ AvailabilityZone
@pytest.mark.parametrize("host_zone, aggregates, wanted, expected", [
    (None, [], None, True),                                              # no zone asked
    (None, [], "nova", True),                                            # default zone
    (None, [], "az1", False),
    ("az1", [], "az1", True),
    ("az1", [], "az2", False),
    ("az1", [], "nova", False),                                          # in az1, not the default
    (None, [{"name": "a", "metadata": {"availability_zone": "az2"}}], "az2", True),
    (None, [{"name": "a", "metadata": {"availability_zone": "az2"}}], "nova", False),
    (None, [{"name": "fast", "metadata": {"ssd": "true"}}], "nova", True),  # aggregate without zone
    ("az1", [{"name": "fast", "metadata": {"ssd": "true"}}], "az1", True),
    # an aggregate's zone wins over the host's own fact (vm_host_facts reports "nova" by default)
    ("nova", [{"name": "a", "metadata": {"availability_zone": "az2"}}], "nova", False),
    ("nova", [{"name": "a", "metadata": {"availability_zone": "az2"}}], "az2", True),
])
def test_availability_zone_filter(host_zone, aggregates, wanted, expected):
    s = spec(availability_zone=wanted)
    h = host(availability_zone=host_zone, aggregates=aggregates)
    assert passes(filters.AvailabilityZoneFilter(), h, s) is expected


def test_availability_zone_filter_custom_default_zone():
    s = spec(availability_zone="main")
    assert passes(filters.AvailabilityZoneFilter("main"), host(), s) is True
    assert passes(filters.AvailabilityZoneFilter("nova"), host(), s) is False


def test_forced_host_form_keeps_the_zone():
    s = spec(availability_zone="az1:c2")
    assert (s.availability_zone, s.force_host) == ("az1", "c2")
    s = spec(availability_zone=":c2")
    assert (s.availability_zone, s.force_host) == (None, "c2")
    s = spec(availability_zone="az1:c2:c2")
    assert (s.availability_zone, s.force_host, s.force_node) == ("az1", "c2", "c2")


# --------------------------------------------------------------------- Compute
def test_compute_filter_drops_disabled_hosts():
    assert passes(filters.ComputeFilter(), host(enabled=False), spec()) is False
    assert passes(filters.ComputeFilter(), host(enabled=True), spec()) is True


# ------------------------------------------------------------------------ Ram
@pytest.mark.parametrize("total, used, ratio, wanted, expected", [
    (4096, 0, 1.0, 4096, True),          # exactly fits
    (4096, 1, 1.0, 4096, False),
    (4096, 2048, 1.0, 2048, True),
    (4096, 2048, 1.0, 2049, False),
    (4096, 4096, 1.5, 2048, True),       # 4096*1.5 - 4096 = 2048
    (4096, 4096, 1.5, 2049, False),
    (4096, 5000, 1.0, 1, False),         # already overcommitted
])
def test_ram_filter(total, used, ratio, wanted, expected):
    h = host(memory_mb=total, memory_mb_used=used, ram_allocation_ratio=ratio)
    s = spec(flavor=flavor(ram_mb=wanted))
    assert passes(filters.RamFilter(), h, s) is expected


def test_ram_limit_is_total_times_ratio():
    limits = {}
    filters.RamFilter().update_limits(host(memory_mb=24000, ram_allocation_ratio=1.5), limits)
    assert limits == {"memory_mb": 36000.0}


# ----------------------------------------------------------------------- Disk
@pytest.mark.parametrize("total, used, fs_free, ratio, fl, expected", [
    (100, 0, 100, 1.0, dict(root_gb=100), True),
    (100, 0, 100, 1.0, dict(root_gb=100, swap_mb=1), False),     # swap counts, in MB
    (100, 0, 100, 1.0, dict(root_gb=60, ephemeral_gb=40), True),
    (100, 0, 100, 1.0, dict(root_gb=60, ephemeral_gb=41), False),
    (100, 50, 50, 1.0, dict(root_gb=50), True),
    (100, 50, 50, 1.0, dict(root_gb=50, swap_mb=512), False),
    (100, 10, 20, 1.0, dict(root_gb=21), False),                  # the filesystem has less: it wins
    (100, 10, 20, 1.0, dict(root_gb=20), True),
    (100, 10, 500, 1.0, dict(root_gb=91), False),                 # more on the fs than accounted: ignored
    (100, 100, 0, 2.0, dict(root_gb=100), True),                  # 100*2 - 100 = 100 GB left
    (100, 100, 0, 2.0, dict(root_gb=100, swap_mb=1), False),
    (100, 50, 50, 1.5, dict(root_gb=100), True),                  # 150 - 50
    (100, 50, 50, 1.5, dict(root_gb=101), False),
])
def test_disk_filter(total, used, fs_free, ratio, fl, expected):
    h = host(local_gb=total, local_gb_used=used, free_disk_gb=fs_free, disk_allocation_ratio=ratio)
    s = spec(flavor=flavor(**fl))
    assert passes(filters.DiskFilter(), h, s) is expected


def test_disk_filter_without_filesystem_fact_uses_accounting():
    h = host(local_gb=100, local_gb_used=40, free_disk_gb=None)
    assert passes(filters.DiskFilter(), h, spec(flavor=flavor(root_gb=60))) is True
    assert passes(filters.DiskFilter(), h, spec(flavor=flavor(root_gb=61))) is False


def test_disk_limit_is_total_times_ratio_in_gb():
    limits = {}
    filters.DiskFilter().update_limits(host(local_gb=250, disk_allocation_ratio=1.2), limits)
    assert limits == {"disk_gb": 300.0}


# ----------------------------------------------------------------------- Core
@pytest.mark.parametrize("total, used, ratio, wanted, expected", [
    (2, 0, 1.0, 2, True),
    (2, 1, 1.0, 2, False),
    (2, 1, 4.0, 2, True),                # 2*4 - 1 = 7
    (2, 7, 4.0, 1, True),
    (2, 8, 4.0, 1, False),
    (2, 0, 16.0, 3, False),              # never more vCPUs than the host has, whatever the ratio
    (0, 99, 1.0, 64, True),              # 0 vCPUs reported: Nova lets it pass
])
def test_core_filter(total, used, ratio, wanted, expected):
    h = host(vcpus=total, vcpus_used=used, cpu_allocation_ratio=ratio)
    s = spec(flavor=flavor(vcpus=wanted))
    assert passes(filters.CoreFilter(), h, s) is expected


def test_core_limit_is_total_times_ratio_and_absent_without_vcpus():
    limits = {}
    filters.CoreFilter().update_limits(host(vcpus=2, cpu_allocation_ratio=4.0), limits)
    assert limits == {"vcpu": 8.0}
    limits = {}
    filters.CoreFilter().update_limits(host(vcpus=0), limits)
    assert limits == {}


# ------------------------------------------------------- ComputeCapabilities
@pytest.mark.parametrize("extra_specs, expected", [
    ({}, True),
    ({"capabilities:cpu_info:arch": "x86_64"}, True),
    ({"capabilities:cpu_info:arch": "aarch64"}, False),
    ({"capabilities:cpu_info:vendor": "s== Intel"}, True),
    ({"capabilities:cpu_info:features": "<in> avx2"}, True),
    ({"capabilities:cpu_info:features": "<in> avx512f"}, False),
    ({"capabilities:cpu_info:features": "<all-in> avx sse4.2"}, True),
    ({"capabilities:hypervisor_type": "<or> QEMU <or> Xen"}, True),
    ({"capabilities:hypervisor_version": ">= 7000000"}, True),
    ({"capabilities:hypervisor_version": ">= 8000000"}, False),
    ({"capabilities:free_ram_mb": ">= 16384"}, True),            # Nova's host attribute names
    ({"capabilities:free_ram_mb": ">= 16385"}, False),
    ({"capabilities:vcpus_total": "= 8"}, True),
    ({"capabilities:no_such_thing": "1"}, False),                # scoped and missing: fails
    ({"capabilities:cpu_info:no_such_key": "1"}, False),
    ({"hypervisor_type": "QEMU"}, True),                          # unscoped, the host has it
    ({"hypervisor_type": "Xen"}, False),
    ({"no_such_thing": "1"}, True),                               # unscoped, unknown: ignored
    ({"hw:cpu_policy": "dedicated"}, True),                       # other namespaces: ignored
    ({"quota:cpu_shares": "1024"}, True),
    ({"aggregate_instance_extra_specs:ssd": "true"}, True),
    ({"capabilities:cpu_info:arch": "x86_64", "capabilities:cpu_info:vendor": "AMD"}, False),
])
def test_compute_capabilities_filter(extra_specs, expected):
    s = spec(flavor=flavor(extra_specs=extra_specs))
    assert passes(filters.ComputeCapabilitiesFilter(), host(), s) is expected


def test_compute_capabilities_decodes_json_cpu_info():
    h = host(capabilities={"cpu_info": '{"arch": "x86_64", "topology": {"cores": 4}}'})
    s = spec(flavor=flavor(extra_specs={"capabilities:cpu_info:topology:cores": ">= 4"}))
    assert passes(filters.ComputeCapabilitiesFilter(), h, s) is True
    s = spec(flavor=flavor(extra_specs={"capabilities:cpu_info:topology:cores": ">= 8"}))
    assert passes(filters.ComputeCapabilitiesFilter(), h, s) is False


def test_compute_capabilities_sees_consumed_free_ram():
    h = host(memory_mb=4096, memory_mb_used=0)
    s = spec(flavor=flavor(extra_specs={"capabilities:free_ram_mb": ">= 2048"}))
    after = h.consume(1, 3072, 0, InstanceInfo(uuid=None, name="web0"))
    assert passes(filters.ComputeCapabilitiesFilter(), h, s) is True
    assert passes(filters.ComputeCapabilitiesFilter(), after, s) is False


def test_bad_numeric_extra_spec_is_refused_with_its_key():
    s = spec(flavor=flavor(extra_specs={"capabilities:cpu_info:vendor": "= Intel"}))
    with pytest.raises(VirtopsError, match="capabilities:cpu_info:vendor"):
        filters.ComputeCapabilitiesFilter().prepare([], s)


# ------------------------------------------------------------ ImageProperties
@pytest.mark.parametrize("props, arch, virt_type, version, expected", [
    ({}, "x86_64", "qemu", 7002000, True),
    ({"hw_disk_bus": "virtio"}, "x86_64", "qemu", 7002000, True),   # not a compute property
    ({"hw_architecture": "x86_64"}, "x86_64", "qemu", 7002000, True),
    ({"architecture": "x86_64"}, "x86_64", "qemu", 7002000, True),  # legacy name
    ({"hw_architecture": "amd64"}, "x86_64", "qemu", 7002000, True),  # canonicalised
    ({"hw_architecture": "aarch64"}, "x86_64", "qemu", 7002000, False),
    ({"hw_architecture": "i386"}, "i686", "qemu", 7002000, True),
    ({"img_hv_type": "qemu"}, "x86_64", "qemu", 7002000, True),
    ({"img_hv_type": "QEMU"}, "x86_64", "qemu", 7002000, True),
    ({"img_hv_type": "kvm"}, "x86_64", "qemu", 7002000, False),     # TCG-only host
    ({"img_hv_type": "kvm"}, "x86_64", "kvm", 7002000, True),
    ({"img_hv_type": "qemu"}, "x86_64", "kvm", 7002000, True),      # kvm hosts also run qemu guests
    ({"hypervisor_type": "xen"}, "x86_64", "kvm", 7002000, False),
    ({"hw_vm_mode": "hvm"}, "x86_64", "qemu", 7002000, True),
    ({"vm_mode": "hv"}, "x86_64", "qemu", 7002000, True),           # legacy spelling of hvm
    ({"hw_vm_mode": "xen"}, "x86_64", "qemu", 7002000, False),
    ({"hw_architecture": "x86_64", "img_hv_requested_version": ">=7.0"}, "x86_64", "qemu", 7002000, True),
    ({"hw_architecture": "x86_64", "img_hv_requested_version": ">=7.3"}, "x86_64", "qemu", 7002000, False),
    ({"hw_architecture": "x86_64", "hypervisor_version_requires": ">=6.0, <7.2"}, "x86_64", "qemu",
     7002000, False),
    ({"hw_architecture": "x86_64", "img_hv_requested_version": ">=9.0"}, "x86_64", "qemu", None, True),
    ({"img_hv_requested_version": ">=9.0"}, "x86_64", "qemu", 7002000, True),  # alone it checks nothing
    ({"hw_architecture": "x86_64"}, None, None, 7002000, False),      # host advertises nothing
])
def test_image_properties_filter(props, arch, virt_type, version, expected):
    h = host(arch=arch, virt_type=virt_type, hypervisor_version=version)
    s = spec(image={"properties": props})
    assert passes(filters.ImagePropertiesFilter(), h, s) is expected


def test_image_properties_use_supported_instances_fact():
    h = host(arch="x86_64", supported_instances=[["x86_64", "qemu", "hvm"], ["aarch64", "qemu", "hvm"]])
    s = spec(image={"properties": {"hw_architecture": "aarch64"}})
    assert passes(filters.ImagePropertiesFilter(), h, s) is True


@pytest.mark.parametrize("props, named", [
    ({"hw_architecture": "pdp11"}, "hw_architecture"),
    ({"img_hv_type": "bochs"}, "img_hv_type"),
    ({"hw_vm_mode": "weird"}, "hw_vm_mode"),
    ({"img_hv_requested_version": "about 7"}, "img_hv_requested_version"),
])
def test_image_properties_refuse_unknown_values(props, named):
    with pytest.raises(VirtopsError, match=named):
        filters.ImagePropertiesFilter().prepare([], spec(image={"properties": props}))


def test_version_int_to_str():
    assert filters.version_int_to_str(7002000) == "7.2.0"
    assert filters.version_int_to_str(2011001) == "2.11.1"


# -------------------------------------------------- AggregateInstanceExtraSpecs
FAST = [{"name": "fast", "metadata": {"ssd": "true", "gpu": "2"}}]
BOTH = FAST + [{"name": "cheap", "metadata": {"ssd": "false"}}]


@pytest.mark.parametrize("aggregates, extra_specs, expected", [
    ([], {}, True),
    (FAST, {"aggregate_instance_extra_specs:ssd": "true"}, True),
    (FAST, {"aggregate_instance_extra_specs:ssd": "false"}, False),
    ([], {"aggregate_instance_extra_specs:ssd": "true"}, False),       # no aggregate carries the key
    (FAST, {"aggregate_instance_extra_specs:gpu": ">= 2"}, True),
    (FAST, {"aggregate_instance_extra_specs:gpu": ">= 3"}, False),
    (BOTH, {"aggregate_instance_extra_specs:ssd": "false"}, True),     # any aggregate's value will do
    (FAST, {"ssd": "true"}, True),                                     # unscoped keys count too (Nova)
    ([], {"ssd": "true"}, False),
    ([], {"capabilities:cpu_info:arch": "x86_64", "hw:cpu_policy": "dedicated"}, True),  # other scopes
])
def test_aggregate_instance_extra_specs_filter(aggregates, extra_specs, expected):
    s = spec(flavor=flavor(extra_specs=extra_specs))
    assert passes(filters.AggregateInstanceExtraSpecsFilter(), host(aggregates=aggregates), s) is expected


def test_yaml_booleans_read_as_lowercase_strings():
    h = host(aggregates=[{"name": "fast", "metadata": {"ssd": True}}])
    s = spec(flavor=flavor(extra_specs={"aggregate_instance_extra_specs:ssd": True}))
    assert h.aggregates[0].metadata == {"ssd": "true"}
    assert passes(filters.AggregateInstanceExtraSpecsFilter(), h, s) is True


# ------------------------------------------------------------- server groups
def _member(name, group=None, uuid=None):
    return {"uuid": uuid or "uuid-" + name, "name": name, "server_group": group}


def test_anti_affinity_filter_members_by_list_and_by_record():
    group = {"name": "g", "policy": "anti-affinity", "members": ["db1", "uuid-db2"]}
    s = spec(server_group=group)
    by_name = host("c1", instances=[_member("db1")])
    by_uuid = host("c2", instances=[_member("db2")])
    by_record = host("c3", instances=[_member("db3", group="g")])
    stranger = host("c4", instances=[_member("other")])
    hosts = [by_name, by_uuid, by_record, stranger]
    flt = filters.ServerGroupAntiAffinityFilter()
    assert flt.prepare(hosts, s) is True
    assert [flt.host_passes(h, s) for h in hosts] == [False, False, False, True]


def test_anti_affinity_max_server_per_host():
    group = {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}
    s = spec(server_group=group)
    one = host("c1", instances=[_member("a", "g")])
    two = host("c2", instances=[_member("a", "g"), _member("b", "g")])
    flt = filters.ServerGroupAntiAffinityFilter()
    flt.prepare([one, two], s)
    assert (flt.host_passes(one, s), flt.host_passes(two, s)) == (True, False)


def test_anti_affinity_ignores_the_instance_being_moved():
    s = spec(instance_names=["db1"], server_group={"name": "g", "policy": "anti-affinity"})
    source = host("c1", instances=[_member("db1", "g")])
    flt = filters.ServerGroupAntiAffinityFilter()
    flt.prepare([source], s)
    assert flt.host_passes(source, s) is True


def test_affinity_filter_first_member_anywhere_then_only_group_hosts():
    s = spec(server_group={"name": "g", "policy": "affinity"})
    c1, c2 = host("c1"), host("c2")
    flt = filters.ServerGroupAffinityFilter()
    flt.prepare([c1, c2], s)
    assert (flt.host_passes(c1, s), flt.host_passes(c2, s)) == (True, True)
    assert flt.on_selected(c2, s) is True          # every answer changes
    assert (flt.host_passes(c1, s), flt.host_passes(c2, s)) == (False, True)
    assert flt.on_selected(c2, s) is False


def test_affinity_filter_existing_member():
    s = spec(server_group={"name": "g", "policy": "affinity", "members": ["db1"]})
    c1, c2 = host("c1", instances=[_member("db1")]), host("c2")
    flt = filters.ServerGroupAffinityFilter()
    flt.prepare([c1, c2], s)
    assert (flt.host_passes(c1, s), flt.host_passes(c2, s)) == (True, False)


def test_group_filters_only_act_on_their_policy():
    anti = spec(server_group={"name": "g", "policy": "anti-affinity"})
    assert filters.ServerGroupAffinityFilter().prepare([], anti) is False
    assert filters.ServerGroupAntiAffinityFilter().prepare([], spec()) is False


# ------------------------------------------------------ same / different host
def test_same_host_and_different_host_hints():
    c1 = host("c1", instances=[_member("db1", uuid="11111111-aaaa")])
    c2 = host("c2", instances=[_member("web9")])
    same = spec(scheduler_hints={"same_host": ["11111111-aaaa"]})
    diff = spec(scheduler_hints={"different_host": "db1"})   # one string is a list of one
    assert [passes(filters.SameHostFilter(), h, same) for h in (c1, c2)] == [True, False]
    assert [passes(filters.DifferentHostFilter(), h, diff) for h in (c1, c2)] == [False, True]
    assert passes(filters.SameHostFilter(), c2, spec()) is True


def test_unknown_filter_name_is_refused():
    with pytest.raises(VirtopsError, match="unknown filter 'RAMFilter'"):
        filters.make_filters(["RAMFilter"])


# ------------------------------------------- batch form agrees with host_passes
def _random_hosts(rng, count=400):
    result = []
    for n in range(count):
        total_gb = rng.choice((0, 10, 100))
        used_gb = rng.randint(0, 120)
        result.append(host(
            "h%d" % n,
            enabled=rng.random() > 0.2,
            availability_zone=rng.choice((None, "az1", "az2")),
            aggregates=rng.choice(([], [{"name": "a", "metadata": {"availability_zone": "az2"}}])),
            vcpus=rng.choice((0, 1, 2, 8)), vcpus_used=rng.randint(0, 20),
            cpu_allocation_ratio=rng.choice((1.0, 1.5, 4.0)),
            memory_mb=rng.choice((1024, 4096)), memory_mb_used=rng.randint(0, 6000),
            ram_allocation_ratio=rng.choice((1.0, 1.5)),
            local_gb=total_gb, local_gb_used=used_gb,
            free_disk_gb=rng.choice((None, 0, 5, 50, 500, 7.5)),
            disk_allocation_ratio=rng.choice((1.0, 2.0))))
    return result


@pytest.mark.parametrize("seed", range(5))
def test_filter_indices_agrees_with_host_passes(seed):
    rng = random.Random(seed)
    hosts = _random_hosts(rng)
    indices = list(range(len(hosts)))
    for zone in (None, "nova", "az1", "az2"):
        s = spec(availability_zone=zone, ignore_hosts=["h1", "h7"],
                 flavor=flavor(vcpus=rng.randint(1, 4), ram_mb=rng.randint(1, 3000), root_gb=rng.randint(0, 40),
                               ephemeral_gb=rng.randint(0, 5), swap_mb=rng.randint(0, 2048)))
        for name in filters.FILTER_CLASSES:
            flt = filters.make_filters([name])[0]
            if not flt.prepare(hosts, s):
                continue
            expected = [i for i in indices if flt.host_passes(hosts[i], s)]
            assert flt.filter_indices(hosts, indices, s) == expected, name


def test_weigher_batch_form_agrees_with_raw():
    hosts = _random_hosts(random.Random(9))
    for cls in WEIGHER_CLASSES:
        weigher = cls()
        assert weigher.raw_many(hosts) == [weigher.raw(h) for h in hosts], cls.name
