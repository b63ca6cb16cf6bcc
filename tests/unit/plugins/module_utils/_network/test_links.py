# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one plumbing engine: reading ``ip -j`` output and the commands that create links."""
from __future__ import annotations

import json

from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import Subnet, Vif
from ansible_collections.virtops.compute.plugins.module_utils._network import host_network, links
from ansible_collections.virtops.compute.plugins.module_utils._network.links import (
    Link, parse_addresses, parse_flood_entries, parse_links)
from ansible_collections.virtops.compute.plugins.module_utils._network.vif import (
    HostSnapshot, plan_plug)

# Trimmed `ip -j -d link show` of a lab host with a bridge, a VXLAN member and a tap.
IP_LINK_JSON = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536},
    {"ifindex": 2, "ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "mtu": 1500, "linkinfo": {"info_kind": "veth"}},
    {"ifindex": 6, "ifname": "br-vx", "flags": ["BROADCAST", "MULTICAST", "UP"], "mtu": 1450,
     "linkinfo": {"info_kind": "bridge", "info_data": {"forward_delay": 0, "stp_state": 0}}},
    {"ifindex": 7, "ifname": "vxlan-42", "flags": ["BROADCAST", "MULTICAST", "UP"], "mtu": 1450,
     "master": "br-vx", "linkinfo": {"info_kind": "vxlan", "info_data": {
         "id": 42, "local": "10.0.0.11", "link": "eth0", "port": 4789, "learning": True},
         "info_slave_kind": "bridge"}},
    {"ifindex": 8, "ifname": "eth0.100", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500,
     "link": "eth0",
     "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100}}},
    {"ifindex": 9, "ifname": "tapq", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500,
     "linkinfo": {"info_kind": "tun",
                  "info_data": {"type": "tap", "pi": False, "persist": True}}},
])
IP_ADDR_JSON = json.dumps([
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.0.0.11", "prefixlen": 24},
                                     {"family": "inet6", "local": "fe80::1"}]},
])
FDB_JSON = json.dumps([
    {"mac": "d6:4a:91:53:34:48", "flags": [], "master": "br-vx", "state": "permanent"},
    {"mac": "00:00:00:00:00:00", "dst": "10.0.0.12", "flags": ["self"], "state": "permanent"},
    {"mac": "00:00:00:00:00:00", "dst": "10.0.0.13", "flags": ["self"], "state": "permanent"},
    {"mac": "fa:16:3e:00:00:09", "dst": "10.0.0.12", "flags": ["self"]},
])


# What host preparation leaves behind: a VLAN member in its bridge, a VXLAN member made without
# a local address (the kernel picks it by route), down and in no bridge yet.
VLAN_LINK = {"ifname": "vlan20", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
             "mtu": 1500, "master": "br-storage", "link": "eth0",
             "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 20}}}
VXLAN_LINK = {"ifname": "vxlan-1001", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1450,
              "linkinfo": {"info_kind": "vxlan", "info_data": {"id": 1001, "port": 4789}}}


def test_ip_json_is_read_into_links():
    links = parse_links(IP_LINK_JSON)
    assert links["br-vx"] == Link("br-vx", kind="bridge", mtu=1450, up=True)
    vx = links["vxlan-42"]
    assert (vx.kind, vx.master, vx.vxlan_id, vx.vxlan_local, vx.vxlan_dev, vx.vxlan_port) == (
        "vxlan", "br-vx", 42, "10.0.0.11", "eth0", 4789)
    vl = links["eth0.100"]
    assert (vl.kind, vl.vlan_id, vl.parent, vl.up) == ("vlan", 100, "eth0", False)
    assert links["tapq"].tun_type == "tap" and links["eth0"].kind == "veth"
    assert parse_addresses(IP_ADDR_JSON) == {"lo": ["127.0.0.1"], "eth0": ["10.0.0.11"]}
    assert parse_flood_entries(FDB_JSON) == ["10.0.0.12", "10.0.0.13"]


def test_members_made_by_host_preparation_are_read_by_the_same_parser():
    found = parse_links(json.dumps([VLAN_LINK, VXLAN_LINK]))
    assert found["vlan20"] == Link("vlan20", kind="vlan", mtu=1500, up=True, master="br-storage",
                                   parent="eth0", vlan_id=20)
    vxlan = found["vxlan-1001"]
    assert (vxlan.kind, vxlan.vxlan_id, vxlan.up, vxlan.master, vxlan.vxlan_local) == (
        "vxlan", 1001, False, None, None)


def test_all_addresses_or_ipv4_only():
    assert parse_addresses(IP_ADDR_JSON, family=None)["eth0"] == ["10.0.0.11", "fe80::1"]
    assert parse_addresses(IP_ADDR_JSON)["eth0"] == ["10.0.0.11"]


def test_a_new_bridge_has_stp_off_and_no_forward_delay():
    assert links.add_bridge("ip", "br0", 1450) == [
        "ip", "link", "add", "name", "br0", "mtu", "1450", "type", "bridge",
        "stp_state", "0", "forward_delay", "0"]
    assert links.BRIDGE_SETTINGS == ("stp_state", "0", "forward_delay", "0")


def test_vm_vif_and_vm_host_network_create_a_bridge_with_the_same_command(monkeypatch):
    # vm_host_network reads the host link by link: here, no bridge exists yet.
    monkeypatch.setattr(host_network, "find_binary", lambda name: name)
    monkeypatch.setattr(links, "read_link", lambda ip, name: None)
    by_host_network = host_network.plan_network(
        NetworkSpec("private", bridge="br-same", mtu=1450)).actions[0]
    port = Vif(id="p1-0000", address="fa:16:3e:00:00:01", network_id="n1",
               network_label="private", bridge="br-same", mtu=1450, devname="tapp1-0000",
               subnets=[Subnet(cidr="10.10.0.0/24", gateway="10.10.0.1", ips=["10.10.0.5"])])
    by_vm_vif = plan_plug([port], HostSnapshot(links={})).steps[0].argv
    assert list(by_vm_vif) == by_host_network == links.add_bridge("ip", "br-same", 1450)


def test_vlan_and_vxlan_members_are_made_the_same_way_by_both_modules(monkeypatch):
    monkeypatch.setattr(host_network, "find_binary", lambda name: name)
    eth0 = Link("eth0", kind="veth", up=True, mtu=1500)
    monkeypatch.setattr(links, "read_link",
                        lambda ip, name: eth0 if name == "eth0" else None)
    monkeypatch.setattr(links, "read_addresses", lambda ip, family="inet": {})
    vlan_plan = host_network.plan_network(NetworkSpec(
        "v", vif_type="vlan", bridge="br-v", vlan=20, physical_interface="eth0"))
    assert vlan_plan.actions[2] == links.add_vlan("ip", "vlan20", "eth0", 20)
    vxlan_plan = host_network.plan_network(NetworkSpec(
        "x", vif_type="vxlan", bridge="br-x", vxlan_id=42, physical_interface="eth0",
        vxlan_peers=("10.0.0.12",), vxlan_port=4789))
    assert vxlan_plan.describe()[2:] == [
        "ip link add name vxlan-42 type vxlan id 42 dev eth0 dstport 4789",
        "ip link set dev vxlan-42 master br-x", "ip link set dev vxlan-42 up",
        "bridge fdb append 00:00:00:00:00:00 dev vxlan-42 dst 10.0.0.12"]
    port = Vif(id="p1-0000", address="fa:16:3e:00:00:01", network_id="n1", network_label="x",
               vif_type="vxlan", bridge="br-x", vxlan_id=42, physical_interface="eth0",
               vxlan_peers=["10.0.0.12"], devname="tapp1-0000")
    steps = plan_plug([port], HostSnapshot(links={"eth0": eth0},
                                           ipv4={"eth0": ["10.0.0.11"]})).steps
    assert list(steps[2].argv) == links.add_vxlan("ip", "vxlan-42", 42, local="10.0.0.11",
                                                  dev="eth0", port=4789)
