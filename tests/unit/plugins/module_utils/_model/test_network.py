# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One network model: the controller's catalog entry and the host's module options agree."""
from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec

L2_FIELDS = ("name", "vif_type", "bridge", "mtu", "vlan", "vxlan_id", "vxlan_peers",
             "vxlan_group", "vxlan_port", "physical_interface", "create_bridge")
CATALOG = {
    "private": {"cidr": "10.10.0.0/24", "bridge": "br-private", "mtu": 1450},
    "storage": {"cidr": "10.20.0.0/24", "vif_type": "vlan", "vlan": 20, "bridge": "br-storage",
                "physical_interface": "eth1"},
    "overlay": {"cidr": "10.30.0.0/24", "vif_type": "vxlan", "vxlan_id": 1001,
                "bridge": "br-overlay", "physical_interface": "eth0",
                "vxlan_peers": ["192.0.2.11", "192.0.2.12"], "vxlan_port": 4790},
    "multicast": {"cidr": "10.31.0.0/24", "vif_type": "vxlan", "vxlan_id": 1002,
                  "bridge": "br-mc", "physical_interface": "eth0", "vxlan_group": "239.1.1.1"},
    "ext": {"cidr": "10.40.0.0/24", "bridge": "br-ext", "create_bridge": False},
    "libvirt": {"cidr": "10.50.0.0/24", "vif_type": "network"},
}


def host_side(name, entry):
    """What roles/compute_host/tasks/networks.yml gives vm_host_network for an entry."""
    return NetworkSpec(
        name=name, bridge=entry.get("bridge"), vif_type=entry.get("vif_type", "bridge"),
        mtu=entry.get("mtu"), vlan=entry.get("vlan"), vxlan_id=entry.get("vxlan_id"),
        physical_interface=entry.get("physical_interface"),
        vxlan_peers=tuple(entry.get("vxlan_peers") or ()), vxlan_group=entry.get("vxlan_group"),
        vxlan_port=entry.get("vxlan_port"), create_bridge=entry.get("create_bridge", True),
    ).validate()


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_a_network_is_parsed_the_same_on_the_controller_and_on_the_host(name):
    controller = NetworkSpec.from_catalog(name, CATALOG[name])
    host = host_side(name, CATALOG[name])
    differing = [f for f in L2_FIELDS if getattr(controller, f) != getattr(host, f)
                 and not (f == "mtu" and host.mtu is None)]
    assert differing == []
    assert controller.member == host.member
    assert controller.bridged == host.bridged


def test_member_names_follow_nova_and_neutron():
    assert NetworkSpec.from_catalog("s", CATALOG["storage"]).member == "vlan20"
    assert NetworkSpec.from_catalog("o", CATALOG["overlay"]).member == "vxlan-1001"
    assert NetworkSpec.from_catalog("p", CATALOG["private"]).member is None


@pytest.mark.parametrize("entry, message", [
    ({"vif_type": "vxlan", "vxlan_id": 7, "bridge": "br0", "vxlan_peers": ["192.0.2.1"]},
     "needs vxlan_id .* and physical_interface"),
    ({"vif_type": "vxlan", "vxlan_id": 7, "bridge": "br0", "physical_interface": "eth0",
      "vxlan_peers": ["192.0.2.1"], "vxlan_group": "239.1.1.1"}, "not both"),
    ({"vif_type": "vxlan", "vxlan_id": 7, "bridge": "br0", "physical_interface": "eth0",
      "vxlan_group": "192.0.2.1"}, "is not a multicast address"),
    ({"bridge": "br 0"}, "not a valid interface name"),
    ({"vif_type": "vlan", "vlan": 20.5, "bridge": "br0", "physical_interface": "eth0"},
     "vlan must be an integer, got 20.5"),
    ({"vif_type": "vlan", "vlan": True, "bridge": "br0", "physical_interface": "eth0"},
     "vlan must be an integer, got True"),
    ({"bridge": "br0", "mtu": "9000x"}, "mtu must be an integer"),
])
def test_the_host_refuses_what_the_controller_refuses(entry, message):
    with pytest.raises(VirtopsError, match=message):
        NetworkSpec.from_catalog("bad", dict(entry, cidr="10.0.0.0/24"))
    with pytest.raises(VirtopsError, match=message):
        host_side("bad", entry)


def test_numbers_written_as_text_read_as_numbers_in_the_catalog():
    entry = {"vif_type": "vlan", "vlan": "20", "bridge": "br0", "physical_interface": "eth0",
             "mtu": "1400"}
    controller = NetworkSpec.from_catalog("n", dict(entry, cidr="10.0.0.0/24"))
    assert (controller.vlan, controller.mtu) == (20, 1400)


def test_the_host_spec_has_no_subnet_and_the_controller_fills_one_in():
    controller = NetworkSpec.from_catalog("private", CATALOG["private"])
    assert (controller.cidr, controller.gateway, controller.mtu) == ("10.10.0.0/24", "10.10.0.1", 1450)
    host = host_side("private", CATALOG["private"])
    assert (host.cidr, host.gateway, host.id) == (None, None, None)
    assert dataclasses.replace(controller, id=None, cidr=None, gateway=None) == host
