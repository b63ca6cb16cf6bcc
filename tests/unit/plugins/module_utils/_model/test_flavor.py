# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Flavor type: strict parsing, messages that say what to fix, and a value that can be
compared, hashed and written back to a record unchanged."""
from __future__ import annotations

import re

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import (
    CpuTopologySpec, Flavor)
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import VmXmlParams, build

TINY = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1}


def flavor(**over) -> Flavor:
    data = dict(TINY)
    data.update(over)
    return Flavor.from_dict(data)


# --- valid input --------------------------------------------------------------------------

def test_a_full_flavor_is_read():
    read = Flavor.from_dict({"name": "m1.big", "vcpus": 4, "ram_mb": 8192, "root_gb": 40,
                             "ephemeral_gb": 10, "swap_mb": 512,
                             "extra_specs": {"hw:cpu_sockets": "2", "quota:cpu_shares": 1024}})
    assert read == Flavor("m1.big", 4, 8192, 40, 10, 512,
                          {"hw:cpu_sockets": "2", "quota:cpu_shares": "1024"})


def test_optional_sizes_default_to_zero_and_extra_specs_to_empty():
    for data in ({"name": "f", "vcpus": 1, "ram_mb": 64},
                 {"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": None, "ephemeral_gb": None,
                  "swap_mb": None, "extra_specs": None}):
        read = Flavor.from_dict(data)
        assert (read.root_gb, read.ephemeral_gb, read.swap_mb, read.extra_specs) == (0, 0, 0, {})


@pytest.mark.parametrize("value, number", [(2, 2), ("2", 2), (" 2 ", 2), ("0", 0)])
def test_integers_may_be_given_as_their_text(value, number):
    assert flavor(root_gb=value).root_gb == number


@pytest.mark.parametrize("name", [None, ""])
def test_a_flavor_may_have_no_name(name):
    data = {"vcpus": 2, "ram_mb": 2048, "root_gb": 40}
    if name is not None:
        data["name"] = name
    assert Flavor.from_dict(data).name == ""


def test_extra_spec_keys_and_values_become_strings_and_booleans_read_as_yaml_writes_them():
    read = flavor(extra_specs={"hw_rng:allowed": False, "ssd": True, 1: 2, "rate": "True"})
    assert read.extra_specs == {"hw_rng:allowed": "false", "ssd": "true", "1": "2", "rate": "True"}
    assert read.extra("hw_rng:allowed") == "false"
    assert read.extra("absent") is None


# --- refusals -----------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ("m1.tiny", r"^flavor must be a dict, got str 'm1.tiny'; a flavor needs vcpus and ram_mb"),
    (["m1.tiny"], "flavor must be a dict, got list"),
    (None, "flavor must be a dict, got NoneType"),
    (dict(TINY, extra_specs=["hw:cpu_sockets=2"]),
     r"flavor 'm1.tiny': extra_specs must be a dict of key: value strings, got list"),
    (dict(TINY, extra_specs="hw:cpu_sockets=2"), "extra_specs must be a dict"),
    ({"name": "m1.x", "ram_mb": 64}, r"^flavor 'm1.x' is missing vcpus; a flavor needs vcpus and "
                                     r"ram_mb \(integers >= 1\)"),
    ({"name": "m1.x"}, "flavor 'm1.x' is missing vcpus and ram_mb; a flavor needs"),
    ({"vcpus": 1, "ram_mb": None}, r"flavor \(no name\) is missing ram_mb"),
    (dict(TINY, vcpus=0), r"^flavor 'm1.tiny': vcpus must be at least 1, got 0; give the number "
                          r"of virtual CPUs"),
    (dict(TINY, ram_mb="0"), r"flavor 'm1.tiny': ram_mb must be at least 1, got 0; give the memory"),
    (dict(TINY, ram_mb=-5), "ram_mb must be at least 1, got -5"),
    (dict(TINY, root_gb=-1), r"flavor 'm1.tiny': root_gb cannot be negative, got -1; give the root "
                             r"disk in GiB"),
    (dict(TINY, ephemeral_gb="-1"), "ephemeral_gb cannot be negative"),
    (dict(TINY, swap_mb=-512), r"swap_mb cannot be negative, got -512; .* \(0 for none\)"),
    (dict(TINY, ram_mb="lots"), r"flavor 'm1.tiny': ram_mb must be an integer, got 'lots'; give "
                                r"the memory in MiB, such as 2048"),
    (dict(TINY, ram_mb="1.5"), "ram_mb must be an integer, got '1.5'"),
    (dict(TINY, ram_mb=1.5), "ram_mb must be an integer, got 1.5"),
    (dict(TINY, ram_mb=2.0), "ram_mb must be an integer, got 2.0"),
    (dict(TINY, vcpus=True), "vcpus must be an integer, got True"),
    (dict(TINY, root_gb=False), "root_gb must be an integer, got False"),
    (dict(TINY, swap_mb="+512"), "swap_mb must be an integer, got '\\+512'"),
    (dict(TINY, swap_mb="0512"), "swap_mb must be an integer, got '0512'"),
    (dict(TINY, swap_mb=""), "swap_mb must be an integer, got ''"),
    (dict(TINY, vcpus=[2]), r"vcpus must be an integer, got \[2\]"),
    (dict(TINY, name=7), "flavor name must be a string, got 7"),
    (dict(TINY, name="m1\x01"), "flavor name contains a control character"),
    (dict(TINY, name="x" * 256), "flavor name must be 1 to 255 characters long"),
])
def test_refusals(data, message):
    with pytest.raises(VirtopsError, match=message):
        Flavor.from_dict(data)


def test_vm_xml_still_needs_a_name_for_the_domain_metadata():
    params = VmXmlParams(instance={"uuid": "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11", "name": "web1"},
                         flavor={"vcpus": 1, "ram_mb": 64}, image={"id": "tiny"},
                         libvirt_uri="test:///never-opened")
    with pytest.raises(VirtopsError, match="flavor name is missing: the domain definition "
                                           "records it"):
        build(params)


# --- value semantics ----------------------------------------------------------------------

def test_round_trip_through_to_dict():
    for original in (flavor(ephemeral_gb=2, swap_mb=64, extra_specs={"hw:cpu_cores": "1"}),
                     Flavor.from_dict({"vcpus": 1, "ram_mb": 64})):
        data = original.to_dict()
        assert set(data) == {"name", "vcpus", "ram_mb", "root_gb", "ephemeral_gb", "swap_mb",
                             "extra_specs"}
        assert Flavor.from_dict(data) == original


def test_to_dict_gives_a_copy_of_the_extra_specs():
    read = flavor(extra_specs={"a": "1"})
    read.to_dict()["extra_specs"]["a"] = "2"
    assert read.extra("a") == "1"


def test_flavors_are_hashable_and_equal_by_value():
    one = flavor(extra_specs={"a": "1", "b": "2"})
    same = flavor(extra_specs={"b": "2", "a": "1"})
    assert one == same and hash(one) == hash(same)
    assert len({one, same, flavor()}) == 2
    assert {one: "claimed"}[same] == "claimed"


def test_extra_specs_take_part_in_equality():
    assert flavor(extra_specs={"a": "1"}) != flavor(extra_specs={"a": "2"})
    assert flavor(extra_specs={"a": "1"}) != flavor()
    # Different specs may share a hash (they are left out of it) but are still two flavors.
    assert len({flavor(extra_specs={"a": "1"}), flavor(extra_specs={"a": "2"})}) == 2


def test_flavors_are_frozen():
    with pytest.raises(AttributeError):
        flavor().vcpus = 2


# --- CPU topology -------------------------------------------------------------------------

@pytest.mark.parametrize("vcpus, specs, topology", [
    (4, {}, None),
    (4, {"hw:cpu_sockets": "2", "hw:cpu_cores": "2"}, CpuTopologySpec(2, 2, 1)),
    (4, {"hw:cpu_sockets": "2"}, CpuTopologySpec(2, 2, 1)),
    (4, {"hw:cpu_cores": "2"}, CpuTopologySpec(2, 2, 1)),
    (4, {"hw:cpu_threads": "2"}, CpuTopologySpec(2, 1, 2)),
    (8, {"hw:cpu_sockets": "2", "hw:cpu_threads": "2"}, CpuTopologySpec(2, 2, 2)),
    (2, {"hw:cpu_sockets": "1", "hw:cpu_cores": "2", "hw:cpu_threads": "1"},
     CpuTopologySpec(1, 2, 1)),
])
def test_cpu_topology(vcpus, specs, topology):
    assert flavor(vcpus=vcpus, extra_specs=specs).cpu_topology() == topology


@pytest.mark.parametrize("vcpus, specs, message", [
    (3, {"hw:cpu_sockets": "2"}, r"^flavor 'm1.tiny': CPU topology 2 sockets x 1 cores x 1 threads "
                                 r"does not give its 3 vCPUs; set hw:cpu_sockets"),
    (4, {"hw:cpu_sockets": "2", "hw:cpu_cores": "4"}, "does not give its 4 vCPUs"),
    (4, {"hw:cpu_sockets": "two"}, r"flavor 'm1.tiny': extra spec hw:cpu_sockets must be an "
                                   r"integer, got 'two'"),
    (4, {"hw:cpu_cores": "0"}, "flavor 'm1.tiny': extra spec hw:cpu_cores must be at least 1, got 0"),
    (4, {"hw:cpu_threads": "1.5"}, "extra spec hw:cpu_threads must be an integer"),
])
def test_impossible_cpu_topologies_are_refused(vcpus, specs, message):
    with pytest.raises(VirtopsError, match=message):
        flavor(vcpus=vcpus, extra_specs=specs).cpu_topology()


# --- one flavor for the controller and the hosts --------------------------------------------

def test_the_controller_and_the_host_read_the_same_flavor_from_the_same_catalog_entry():
    from ansible_collections.virtops.compute.plugins.plugin_utils._boot.request import boot_request
    from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.request import (
        RequestSpec)
    entry = {"vcpus": 2, "ram_mb": 512, "root_gb": 1, "swap_mb": 64,
             "extra_specs": {"aggregate_instance_extra_specs:ssd": True, "hw_rng:allowed": False,
                             "hw:cpu_sockets": 2}}
    image = {"url": "http://images/x.qcow2", "disk_format": "qcow2", "allow_unverified": True}
    checked = boot_request({"name": "web", "flavor": "m1.small", "image": "x"},
                           {"m1.small": entry}, {"x": image})
    controller = RequestSpec.from_dict({"name": "web", "flavor": checked["flavor"]}).flavor
    host = Flavor.from_dict(checked["flavor"])          # what vm_image / vm_xml / vm_instance read
    assert controller == host == Flavor.from_dict(dict(entry, name="m1.small"))
    assert host.extra_specs == {"aggregate_instance_extra_specs:ssd": "true",
                                "hw_rng:allowed": "false", "hw:cpu_sockets": "2"}


def test_every_module_that_takes_a_flavor_declares_the_one_spec_and_its_doc_fragment():
    from pathlib import Path
    from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import (
        FLAVOR_OPTIONS, flavor_spec)
    from ansible_collections.virtops.compute.plugins.doc_fragments.flavor import ModuleDocFragment
    import yaml
    modules = Path(__file__).resolve().parents[5] / "plugins" / "modules"
    takers = sorted(p.name for p in modules.glob("*.py")
                    if re.search(r"^ +flavor=", p.read_text(), re.M))
    assert takers == ["vm_build.py", "vm_image.py", "vm_instance.py", "vm_xml.py"]
    for name in takers:
        text = (modules / name).read_text()
        assert "flavor=flavor_spec()" in text and "virtops.compute.flavor" in text, name
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["flavor"]["suboptions"]
    assert sorted(documented) == sorted(FLAVOR_OPTIONS)
    for key, spec in FLAVOR_OPTIONS.items():
        assert documented[key]["type"] == spec["type"]
        assert documented[key].get("required", False) == spec.get("required", False)
        assert documented[key].get("default") == spec.get("default")
    assert flavor_spec()["options"] is not flavor_spec()["options"]


def test_a_catalog_flavor_takes_nova_fields_it_ignores_and_refuses_unknown_keys():
    flavor = Flavor.from_catalog("m1.nano", {"vcpus": 1, "ram_mb": 128, "id": "42",
                                             "description": "small", "is_public": True})
    assert (flavor.name, flavor.vcpus, flavor.ram_mb) == ("m1.nano", 1, 128)
    with pytest.raises(VirtopsError, match=r"flavors.m1.nano: unknown key\(s\) disk \(known: name"):
        Flavor.from_catalog("m1.nano", {"vcpus": 1, "ram_mb": 128, "disk": 1})
    with pytest.raises(VirtopsError, match="flavors.m1.nano must be a mapping with vcpus"):
        Flavor.from_catalog("m1.nano", ["vcpus", 1])
