# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host facts parsing and the request/config forms the scheduler accepts."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import (
    HostState,
    InstanceInfo,
    parse_hosts,
)
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.request import (
    RequestSpec,
    SchedulerConfig,
)
from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._scheduler.helpers import facts, request


def test_documented_example_parses():
    h = HostState.from_facts({
        "hostname": "c1", "enabled": True, "availability_zone": "az1",
        "aggregates": [{"name": "fast", "metadata": {"ssd": "true"}}],
        "hypervisor_type": "QEMU", "hypervisor_version": 7002000, "arch": "x86_64", "virt_type": "qemu",
        "vcpus": 2, "vcpus_used": 1, "memory_mb": 24000, "memory_mb_used": 512,
        "local_gb": 250, "local_gb_used": 3, "free_disk_gb": 80,
        "cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.0, "disk_allocation_ratio": 1.0,
        "capabilities": {"cpu_info": {"arch": "x86_64", "features": ["avx"]}, "hypervisor_type": "QEMU"},
        "instances": [{"uuid": "u1", "name": "web1", "vm_state": "active", "server_group": "g",
                       "flavor": {"name": "m1.tiny"}, "ips": ["10.0.0.5"]}],
    })
    assert h.free_ram_mb == 23488
    assert h.free_disk_mb == 80 * 1024           # the filesystem has less than the 247 GB accounted
    assert h.free_vcpus == 7.0
    assert h.availability_zones == {"az1"}
    assert h.aggregate_metadata == {"ssd": {"true"}}
    assert h.instance_ids == {"u1", "web1"}
    assert h.instances[0].server_group == "g"
    assert h.supported_instances == (("x86_64", "qemu", "hvm"),)


def test_minimal_facts_take_nova_defaults():
    h = HostState.from_facts({"hostname": "c1", "vcpus": 4, "vcpus_used": 0, "memory_mb": 8192,
                              "memory_mb_used": 0, "local_gb": 50, "local_gb_used": 0})
    assert h.enabled is True
    assert (h.cpu_allocation_ratio, h.ram_allocation_ratio, h.disk_allocation_ratio) == (4.0, 1.0, 1.0)
    assert h.availability_zones == frozenset()
    assert h.free_disk_mb == 50 * 1024
    assert h.instances == ()
    assert h.supported_instances == ()


def test_zero_ratio_means_default():
    assert HostState.from_facts(facts(cpu_allocation_ratio=0.0)).cpu_allocation_ratio == 4.0


@pytest.mark.parametrize("key", ["vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "local_gb",
                                 "local_gb_used"])
def test_missing_key_names_host_and_key(key):
    data = facts("c7")
    del data[key]
    with pytest.raises(VirtopsError, match=r"^host facts for c7: missing key '%s'$" % key):
        HostState.from_facts(data)


def test_missing_hostname_names_position():
    hosts = [facts("c1"), facts("c2")]
    del hosts[1]["hostname"]
    with pytest.raises(VirtopsError, match=r"^host facts #1: missing key 'hostname'$"):
        parse_hosts(hosts)


@pytest.mark.parametrize("key, value, words", [
    ("memory_mb", "lots", "'memory_mb' must be a number, got 'lots'"),
    ("vcpus", True, "'vcpus' must be a number"),
    ("local_gb", -1, "'local_gb' must be >= 0"),
    ("enabled", "maybe", "'enabled' must be a boolean"),
    ("aggregates", "fast", "'aggregates' must be a list"),
    ("instances", [{"vm_state": "active"}], "instances[0] has neither 'uuid' nor 'name'"),
])
def test_bad_values_are_named(key, value, words):
    with pytest.raises(VirtopsError) as err:
        HostState.from_facts(facts("c3", **{key: value}))
    assert err.value.msg.startswith("host facts for c3: ")
    assert words in err.value.msg


def test_numeric_strings_are_accepted():
    assert HostState.from_facts(facts(memory_mb="2048")).memory_mb == 2048


def test_mapping_input_takes_hostname_from_key_and_keeps_order():
    data = {"zeta": facts(), "alpha": facts()}
    del data["zeta"]["hostname"], data["alpha"]["hostname"]
    assert [h.hostname for h in parse_hosts(data)] == ["zeta", "alpha"]


def test_mapping_key_and_hostname_must_agree():
    with pytest.raises(VirtopsError, match="host facts for c1: 'hostname' says c2"):
        parse_hosts({"c1": facts("c2")})


def test_duplicate_hosts_are_refused():
    with pytest.raises(VirtopsError, match="host facts for c1: given twice"):
        parse_hosts([facts("c1"), facts("c1")])


def test_kvm_host_supports_kvm_and_qemu_guests():
    h = HostState.from_facts(facts(virt_type="kvm", arch="amd64"))
    assert h.supported_instances == (("x86_64", "kvm", "hvm"), ("x86_64", "qemu", "hvm"))


def test_consume_makes_a_new_state_and_leaves_the_old_one():
    h = HostState.from_facts(facts(memory_mb_used=100, free_disk_gb=50, local_gb_used=10))
    after = h.consume(2, 1024, 20, InstanceInfo(uuid=None, name="web1"))
    assert (h.vcpus_used, h.memory_mb_used, h.local_gb_used, h.free_disk_gb, len(h.instances)) == (0, 100, 10, 50, 0)
    assert (after.vcpus_used, after.memory_mb_used, after.local_gb_used, after.free_disk_gb) == (2, 1124, 30, 30)
    assert after.instance_ids == {"web1"}


# ------------------------------------------------------------------- requests
def test_request_names_from_name_and_count():
    spec = RequestSpec.from_dict({"name": "web", "num_instances": 3, "flavor": request()["flavor"]})
    assert spec.instance_names == ("web-1", "web-2", "web-3")
    spec = RequestSpec.from_dict({"name": "web", "flavor": request()["flavor"]})
    assert spec.instance_names == ("web",)


@pytest.mark.parametrize("change, words", [
    ({"flavor": {"vcpus": 1, "ram_mb": 512}}, "request.flavor: missing key 'root_gb'"),
    ({"flavor": {"vcpus": 1.5, "ram_mb": 512, "root_gb": 1}}, "request.flavor: vcpus must be an integer, got 1.5"),
    ({"instance_names": ["a", "a"]}, "names must be unique"),
    ({"num_instances": 2}, "num_instances is 2 but 1 instance_names"),
    ({"server_group": {"name": "g", "policy": "soft-affinity"}}, "policy must be one of affinity, anti-affinity"),
    ({"scheduler_hints": {"group": "g"}}, "needs the group's definition"),
    ({"flavour": {}}, "unknown key(s) flavour"),
    ({"availability_zone": "a:b:c:d"}, "use az, az:host or az:host:node"),
    ({"image": "cirros"}, "request.image must be the image's definition"),
])
def test_bad_requests_are_explained(change, words):
    with pytest.raises(VirtopsError) as err:
        RequestSpec.from_dict(request(**change))
    assert words in err.value.msg


def test_config_defaults_are_novas():
    config = SchedulerConfig.from_dict({})
    assert (config.ram_weight_multiplier, config.disk_weight_multiplier, config.cpu_weight_multiplier) == (1.0,) * 3
    assert (config.host_subset_size, config.max_attempts, config.default_availability_zone) == (1, 3, "nova")


@pytest.mark.parametrize("data, words", [
    ({"host_subset_size": 0}, "config.host_subset_size must be at least 1, got 0"),
    ({"ram_weight_multiplier": "heavy"}, "config.ram_weight_multiplier must be a number"),
    ({"ram_weight_multipler": 1}, "unknown key(s) ram_weight_multipler"),
])
def test_bad_config_is_explained(data, words):
    with pytest.raises(VirtopsError) as err:
        SchedulerConfig.from_dict(data)
    assert words in err.value.msg
