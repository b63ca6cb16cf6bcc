# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port allocation on the controller: addresses unique across the fleet and the run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.lookup import ports as ports_lookup
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    parse_network_info)
from ansible_collections.virtops.compute.plugins.plugin_utils._network.ipam import (
    NetworkSpec, allocate_ports, parse_networks)

NETWORKS = {
    "private": {"cidr": "10.10.0.0/24", "gateway": "10.10.0.1", "dns": ["10.10.0.1"],
                "bridge": "br-private", "mtu": 1450},
    "tiny": {"cidr": "10.20.0.0/29"},        # hosts .1 (gateway) to .6
    "pooled": {"cidr": "10.30.0.0/24", "allocation_pools": [{"start": "10.30.0.100",
                                                             "end": "10.30.0.101"}]},
}
UUID_A = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
UUID_B = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


def request(name, *networks, instance_uuid=None, network_info=None):
    entry = {"name": name, "networks": list(networks)}
    if instance_uuid:
        entry["uuid"] = instance_uuid
    if network_info is not None:
        entry["network_info"] = network_info
    return entry


def ips(allocations):
    return [a.ips for a in allocations]


def test_first_addresses_skip_network_and_gateway():
    [web] = allocate_ports(NETWORKS, [request("web", "private", "private")])
    assert web.ips == ["10.10.0.2", "10.10.0.3"]


def test_broadcast_is_never_handed_out_and_exhaustion_is_explained():
    names = ["vm%d" % i for i in range(5)]
    got = allocate_ports(NETWORKS, [request(n, "tiny") for n in names])
    assert [a.ips[0] for a in got] == ["10.20.0.2", "10.20.0.3", "10.20.0.4", "10.20.0.5",
                                       "10.20.0.6"]
    with pytest.raises(VirtopsError) as exc:
        allocate_ports(NETWORKS, [request(n, "tiny") for n in names + ["one-too-many"]])
    assert "network tiny (10.20.0.0/29) has no free address left for instance one-too-many" \
        in exc.value.msg
    assert "5 addresses in use" in exc.value.msg


def test_allocation_pools_limit_automatic_addresses():
    got = allocate_ports(NETWORKS, [request("a", "pooled"), request("b", "pooled")])
    assert ips(got) == [["10.30.0.100"], ["10.30.0.101"]]
    with pytest.raises(VirtopsError, match="no free address"):
        allocate_ports(NETWORKS, [request(n, "pooled") for n in ("a", "b", "c")])


def test_addresses_in_use_anywhere_in_the_fleet_are_skipped():
    hosts = {
        "c1": {"instances": [{"name": "old1", "uuid": UUID_B, "ips": ["10.10.0.2"]}]},
        "c2": {"hostname": "c2", "instances": [
            {"name": "old2", "ips": [{"address": "10.10.0.3"}]},
            {"name": "old3", "network_info": [{
                "id": "p", "address": "fa:16:3e:00:00:01",
                "network": {"id": "n", "subnets": [{"cidr": "10.10.0.0/24",
                                                    "ips": [{"address": "10.10.0.4"}]}]}}]}]},
    }
    [web] = allocate_ports(NETWORKS, [request("web", "private")], hosts=hosts)
    assert web.ips == ["10.10.0.5"]
    # The same facts as a list of facts mappings.
    as_list = [dict(facts, hostname=name) for name, facts in hosts.items()]
    [web] = allocate_ports(NETWORKS, [request("web", "private")], hosts=as_list)
    assert web.ips == ["10.10.0.5"]


def test_instances_of_one_run_never_share_an_address():
    got = allocate_ports(NETWORKS, [request("w%d" % i, "private") for i in range(4)])
    flat = [ip for a in got for ip in a.ips]
    assert len(set(flat)) == 4
    # A later call of the same run passes the earlier results as `allocated`.
    [late] = allocate_ports(NETWORKS, [request("late", "private")],
                            allocated=[a.to_dict() for a in got] + ["10.10.0.6"])
    assert late.ips == ["10.10.0.7"]


def test_requested_fixed_ip_is_honoured_and_may_lie_outside_the_pools():
    [a] = allocate_ports(NETWORKS, [request("a", {"network": "private",
                                                  "fixed_ip": "10.10.0.50"})])
    assert a.ips == ["10.10.0.50"]
    [b] = allocate_ports(NETWORKS, [request("b", {"network": "pooled",
                                                  "fixed_ip": "10.30.0.7"})])
    assert b.ips == ["10.30.0.7"]


def test_requested_fixed_ip_held_by_another_instance_is_refused_naming_the_holder():
    hosts = {"c1": {"instances": [{"name": "db1", "ips": ["10.10.0.50"]}]}}
    with pytest.raises(VirtopsError) as exc:
        allocate_ports(NETWORKS, [request("web", {"network": "private",
                                                  "fixed_ip": "10.10.0.50"})], hosts=hosts)
    assert "fixed_ip 10.10.0.50 on network private is already in use by instance db1 on c1" \
        in exc.value.msg
    with pytest.raises(VirtopsError, match="already in use by instance a .allocated in this run"):
        allocate_ports(NETWORKS, [request("a", {"network": "private", "fixed_ip": "10.10.0.9"}),
                                  request("b", {"network": "private", "fixed_ip": "10.10.0.9"})])


@pytest.mark.parametrize("address, reason", [
    ("10.10.0.0", "network, broadcast or gateway"),
    ("10.10.0.1", "network, broadcast or gateway"),
    ("10.10.0.255", "network, broadcast or gateway"),
    ("10.99.0.5", "is not in network private"),
    ("not-an-ip", "is not an IP address"),
])
def test_impossible_fixed_ips_are_refused(address, reason):
    with pytest.raises(VirtopsError, match=reason):
        allocate_ports(NETWORKS, [request("web", {"network": "private", "fixed_ip": address})])


def test_ports_have_nova_names_and_macs():
    [web] = allocate_ports(NETWORKS, [request("web", "private", "tiny", instance_uuid=UUID_A)])
    for vif in web.vifs:
        assert vif.address.startswith("fa:16:3e:")
        assert int(vif.address[:2], 16) & 1 == 0          # unicast
        assert vif.devname == ("tap" + vif.id)[:14]
        uuid.UUID(vif.id)
    assert len({v.address for v in web.vifs}) == 2
    private = web.vifs[0]
    assert (private.bridge, private.mtu, private.port_filter) == ("br-private", 1450, True)
    assert private.subnets[0].gateway == "10.10.0.1" and private.subnets[0].dns == ["10.10.0.1"]
    # What the lookup returns parses back into the same ports.
    assert parse_network_info(web.to_dict()["network_info"]) == web.vifs


def test_the_same_boot_run_again_gets_the_same_ports():
    first = allocate_ports(NETWORKS, [request("web", "private", instance_uuid=UUID_A)])[0]
    again = allocate_ports(NETWORKS, [request("web", "private", instance_uuid=UUID_A)])[0]
    assert again.to_dict() == first.to_dict()
    # After the boot the host facts show the instance holding its address: it gets it back
    # instead of a new one, and nobody else gets it.
    hosts = {"c1": {"instances": [{"name": "web", "uuid": UUID_A, "ips": first.ips}]}}
    rerun, other = allocate_ports(NETWORKS, [request("web", "private", instance_uuid=UUID_A),
                                             request("other", "private")], hosts=hosts)
    assert rerun.to_dict() == first.to_dict()
    assert other.ips != first.ips


def test_a_recorded_port_keeps_its_id_mac_and_address():
    recorded = allocate_ports(NETWORKS, [request("web", {"network": "private",
                                                         "fixed_ip": "10.10.0.77"})])[0]
    hosts = {"c1": {"instances": [{"name": "web", "ips": recorded.ips}]}}
    again = allocate_ports(NETWORKS, [request("web", "private",
                                              network_info=recorded.to_dict()["network_info"])],
                           hosts=hosts)[0]
    assert again.to_dict() == recorded.to_dict()


def test_a_recorded_address_held_by_someone_else_is_an_error():
    recorded = allocate_ports(NETWORKS, [request("web", "private")])[0]
    hosts = {"c1": {"instances": [{"name": "intruder", "ips": recorded.ips}]}}
    with pytest.raises(VirtopsError, match="also held by instance intruder on c1"):
        allocate_ports(NETWORKS, [request("web", "private",
                                          network_info=recorded.to_dict()["network_info"])],
                       hosts=hosts)


def test_requested_mac_is_honoured_unless_someone_uses_it():
    [a] = allocate_ports(NETWORKS, [request("a", {"network": "private",
                                                  "mac": "FA:16:3E:00:00:42"})])
    assert a.vifs[0].address == "fa:16:3e:00:00:42"
    with pytest.raises(VirtopsError, match="MAC fa:16:3e:00:00:42 is already used by instance a"):
        allocate_ports(NETWORKS, [request("a", {"network": "private", "mac": "fa:16:3e:00:00:42"}),
                                  request("b", {"network": "private", "mac": "fa:16:3e:00:00:42"})])
    with pytest.raises(VirtopsError, match="not a unicast MAC"):
        allocate_ports(NETWORKS, [request("a", {"network": "private", "mac": "01:00:5e:00:00:01"})])


def test_a_derived_mac_that_collides_is_derived_again():
    [first] = allocate_ports(NETWORKS, [request("web", "private", instance_uuid=UUID_A)])
    taken = first.vifs[0].address
    hosts = {"c1": {"instances": [{"name": "squatter", "network_info": [{
        "id": "x", "address": taken,
        "network": {"id": "n", "subnets": []}}]}]}}
    [again] = allocate_ports(NETWORKS, [request("web", "private", instance_uuid=UUID_A)],
                             hosts=hosts)
    assert again.vifs[0].id == first.vifs[0].id
    assert again.vifs[0].address != taken and again.vifs[0].address.startswith("fa:16:3e:")


def test_unknown_network_and_duplicate_instances_are_refused():
    with pytest.raises(VirtopsError, match="asks for network 'public', which is not in networks"):
        allocate_ports(NETWORKS, [request("web", "public")])
    with pytest.raises(VirtopsError, match="instances listed twice: web"):
        allocate_ports(NETWORKS, [request("web", "private"), request("web", "private")])


def test_network_defaults():
    spec = NetworkSpec.from_catalog("net1", {"cidr": "192.168.5.0/24"})
    assert spec.gateway == "192.168.5.1"
    assert spec.vif_type == "bridge" and spec.mtu == 1500 and spec.port_security
    assert spec.bridge == ("brq" + spec.id)[:14]
    # Ids are stable: derived from the name, the same in every run and on every controller.
    assert NetworkSpec.from_catalog("net1", {"cidr": "192.168.5.0/24"}).id == spec.id
    no_gw = NetworkSpec.from_catalog("isolated", {"cidr": "192.168.6.0/24", "gateway": None})
    assert no_gw.gateway is None
    [vm] = allocate_ports({"isolated": {"cidr": "192.168.6.0/24", "gateway": None}},
                          [request("vm", "isolated")])
    assert vm.ips == ["192.168.6.1"]


def test_vxlan_and_vlan_networks_carry_their_plumbing_into_network_info():
    catalog = {
        "vx": {"cidr": "10.40.0.0/24", "vif_type": "vxlan", "vxlan_id": 42,
               "physical_interface": "eth0", "vxlan_peers": ["192.0.2.11", "192.0.2.12"],
               "mtu": 1450},
        "vl": {"cidr": "10.41.0.0/24", "vif_type": "vlan", "vlan": 100,
               "physical_interface": "eth1", "create_bridge": False, "bridge": "br-vl"},
        "mv": {"cidr": "10.42.0.0/24", "vif_type": "direct", "physical_interface": "eth2"},
    }
    nets = parse_networks(catalog)
    [vm] = allocate_ports(catalog, [request("vm", "vx", "vl", "mv")])
    vx, vl, mv = vm.vifs
    assert (vx.vif_type, vx.vxlan_id, vx.vxlan_peers, vx.physical_interface) == (
        "vxlan", 42, ["192.0.2.11", "192.0.2.12"], "eth0")
    assert (vl.vif_type, vl.vlan, vl.create_bridge, vl.bridge) == ("vlan", 100, False, "br-vl")
    assert mv.vif_type == "direct" and not mv.port_filter    # macvtap has no tap to filter
    assert nets["vx"].vxlan_port is None
    meta = vm.to_dict()["network_info"][0]["network"]["meta"]
    assert meta["vxlan_peers"] == ["192.0.2.11", "192.0.2.12"] and "create_bridge" not in meta


@pytest.mark.parametrize("definition, message", [
    ({}, "needs a cidr"),
    ({"cidr": "10.0.0.5/24"}, "has host bits set; did you mean 10.0.0.0/24"),
    ({"cidr": "10.0.0.0/24", "gateway": "10.0.1.1"}, "is not a host address of"),
    ({"cidr": "10.0.0.0/24", "vif_type": "ovs"}, "vif_type 'ovs' is not one of"),
    ({"cidr": "10.0.0.0/24", "bridge": "a-very-long-bridge"}, "not a valid interface name"),
    ({"cidr": "10.0.0.0/24", "vif_type": "vlan", "vlan": 5}, "needs vlan .1-4094. and physical"),
    ({"cidr": "10.0.0.0/24", "vif_type": "vlan", "vlan": 5000, "physical_interface": "eth0"},
     "vlan must be between 1 and 4094"),
    ({"cidr": "10.0.0.0/24", "vif_type": "vxlan", "vxlan_id": 7, "physical_interface": "eth0"},
     "needs vxlan_peers"),
    ({"cidr": "10.0.0.0/24", "vif_type": "vxlan", "vxlan_id": 7, "physical_interface": "eth0",
      "vxlan_group": "10.0.0.9"}, "is not a multicast address"),
    ({"cidr": "10.0.0.0/24", "vif_type": "direct"}, "needs physical_interface"),
    ({"cidr": "10.0.0.0/24", "mtu": 20}, "mtu must be between 68 and 65535"),
    ({"cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.9", "end": "10.0.0.3"}]},
     "is not a range inside"),
    ({"cidr": "10.0.0.0/24", "vlan_id": 3}, "unknown keys vlan_id"),
])
def test_bad_network_definitions_are_refused_with_the_reason(definition, message):
    with pytest.raises(VirtopsError, match=message):
        NetworkSpec.from_catalog("bad", definition)


# The directory holding ansible_collections/ (.cache/collections, or ansible-test's tree).
COLLECTIONS = Path(os.path.abspath(ports_lookup.__file__)).parents[5]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.mark.skipif(not PLAYBOOK.exists(), reason="needs ansible-playbook beside the test Python")
def test_lookup_in_a_playbook(tmp_path):
    out = tmp_path / "ports.json"
    (tmp_path / "vars.json").write_text(json.dumps({
        "networks": NETWORKS, "out_path": str(out),
        "fleet": {"c1": {"instances": [{"name": "db", "ips": ["10.10.0.2"]}]}}}))
    (tmp_path / "play.yml").write_text("""
- hosts: localhost
  gather_facts: false
  vars_files: [vars.json]
  tasks:
    - name: Allocate
      ansible.builtin.set_fact:
        ports: >-
          {{ query('virtops.compute.ports', networks=networks, hosts=fleet,
                   instances=[{'name': 'web', 'networks': [{'network': 'private'}]},
                              {'name': 'api', 'networks': ['private', 'tiny']}]) }}
    - name: Store
      ansible.builtin.copy:
        content: "{{ ports | to_json }}"
        dest: "{{ out_path }}"
        mode: "0600"
    - name: A taken fixed IP fails the lookup with the reason
      ansible.builtin.set_fact:
        refused: "{{ query('virtops.compute.ports', networks=networks, hosts=fleet,
                           instances=[{'name': 'x', 'networks': [{'network': 'private',
                                                                  'fixed_ip': '10.10.0.2'}]}]) }}"
      ignore_errors: true
      register: refused
    - name: Check it failed
      ansible.builtin.assert:
        that: "'already in use by instance db on c1' in refused.msg"
""")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=%s" % sys.executable, "play.yml"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    web, api = json.loads(out.read_text())
    assert web["ips"] == ["10.10.0.3"] and api["ips"] == ["10.10.0.4", "10.20.0.2"]
    assert web["network_info"][0]["devname"].startswith("tap")


def test_ipv6_subnets_hand_out_addresses_after_the_gateway():
    catalog = {"v6": {"cidr": "fd00:10::/64"}}
    got = allocate_ports(catalog, [request("a", "v6"), request("b", "v6")])
    assert ips(got) == [["fd00:10::2"], ["fd00:10::3"]]
    assert got[0].vifs[0].subnets[0].gateway == "fd00:10::1"
    assert got[0].vifs[0].subnets[0].version == 6


def test_overlapping_pools_hand_out_each_address_once_lowest_first_without_reserved_ones():
    from ansible_collections.virtops.compute.plugins.plugin_utils._network.ipam import pools
    (spec,) = parse_networks({"n": {
        "cidr": "10.40.0.0/24", "gateway": "10.40.0.5",
        "allocation_pools": [{"start": "10.40.0.4", "end": "10.40.0.7"},
                             {"start": "10.40.0.2", "end": "10.40.0.5"},
                             {"start": "10.40.0.254", "end": "10.40.0.255"}]}}).values()
    assert [str(a) for a in pools(spec)] == [
        "10.40.0.2", "10.40.0.3", "10.40.0.4", "10.40.0.6", "10.40.0.7", "10.40.0.254"]
    (v6,) = parse_networks({"n": {"cidr": "fd00:1::/126", "gateway": None}}).values()
    assert [str(a) for a in pools(v6)] == ["fd00:1::1", "fd00:1::2", "fd00:1::3"]
