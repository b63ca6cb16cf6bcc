# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_vif on lab hosts: real bridges, VXLAN tunnels between hosts, anti-spoofing (nftables
rules by default, libvirt's nwfilter on request), and test guests that read their addresses
from the config drive and ping."""
from __future__ import annotations

import copy
import os
import threading
import uuid

import pytest

from ansible_collections.virtops.compute.plugins.plugin_utils._network.ipam import allocate_ports

from tests.integration.vif_lab import READY, guest_lines

pytestmark = [pytest.mark.slow, pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

HOST1, HOST2 = "compute1", "compute2"
VTEP1, VTEP2 = "10.77.4.11", "10.77.4.12"     # the lab hosts' eth0
NETWORKS = {
    "lan1": {"cidr": "10.77.51.0/24", "bridge": "br-lan1"},
    "lan2": {"cidr": "10.77.52.0/24", "bridge": "br-lan2", "mtu": 1400},
    "open": {"cidr": "10.77.51.0/24", "bridge": "br-lan1", "port_security": False},
    "vx": {"cidr": "10.77.50.0/24", "vif_type": "vxlan", "vxlan_id": 4242, "mtu": 1450,
           "physical_interface": "eth0", "vxlan_peers": [VTEP1, VTEP2], "bridge": "br-vx"},
    "eth": {"cidr": "10.77.53.0/24", "vif_type": "ethernet", "mtu": 1400},
}


def ports(*requests, networks=None):
    """network_info per instance, allocated together as the boot play does."""
    allocations = allocate_ports(networks or NETWORKS, [
        {"name": name, "uuid": instance_uuid, "networks": nets}
        for name, instance_uuid, nets in requests])
    return [a.to_dict()["network_info"] for a in allocations]


def prepare(vif_fleet, host, instance_uuid, name, network_info, guest, guest_network_info=None):
    """vm_vif, then disks, config drive and libvirt.xml."""
    vif_fleet.ok(host, "vm_vif", {"network_info": network_info})
    vif_fleet.prepare_instance(host, instance_uuid, name, network_info, guest, guest_network_info)


def start(vif_fleet, host, instance_uuid, network_info):
    return vif_fleet.ok(host, "vm_domain", {"uuid": instance_uuid, "network_info": network_info,
                                            "wait_for_console": READY, "console_timeout": 180})


def link(vif_fleet, host, name):
    return vif_fleet.links(host).get(name)


def test_plug_is_checked_applied_and_then_unchanged(vif_fleet):
    [info] = ports(("plumbing", str(uuid.uuid4()), ["vx", "lan2"]))
    before = vif_fleet.links(HOST1)
    planned = vif_fleet.ok(HOST1, "vm_vif", {"network_info": info}, check=True, diff=True)
    assert planned.changed
    assert "create VXLAN 4242 interface vxlan-4242 (local %s on eth0, port 4789)" % VTEP1 \
        in planned["actions"]
    assert set(vif_fleet.links(HOST1)) == set(before), "check mode must not touch the host"

    done = vif_fleet.ok(HOST1, "vm_vif", {"network_info": info}, diff=True)
    assert done.changed and done["actions"] == planned["actions"]
    bridge, vxlan, lan2 = (link(vif_fleet, HOST1, n) for n in ("br-vx", "vxlan-4242", "br-lan2"))
    assert bridge["linkinfo"]["info_kind"] == "bridge" and "UP" in bridge["flags"]
    assert bridge["mtu"] == 1450 and bridge["linkinfo"]["info_data"]["stp_state"] == 0
    data = vxlan["linkinfo"]["info_data"]
    assert (data["id"], data["local"], data["link"], data["port"]) == (4242, VTEP1, "eth0", 4789)
    assert vxlan["master"] == "br-vx" and "UP" in vxlan["flags"]
    assert lan2["mtu"] == 1400 and "UP" in lan2["flags"]
    fdb = vif_fleet.sh(HOST1, "bridge", "fdb", "show", "dev", "vxlan-4242").stdout
    assert "00:00:00:00:00:00 dst %s" % VTEP2 in fdb and "dst %s" % VTEP1 not in fdb

    assert not vif_fleet.ok(HOST1, "vm_vif", {"network_info": info}, check=True).changed
    assert not vif_fleet.ok(HOST1, "vm_vif", {"network_info": info}).changed

    # A third host joins the network: one more flood entry, nothing else.
    grown = copy.deepcopy(info)
    grown[0]["network"]["meta"]["vxlan_peers"].append("10.77.4.13")
    added = vif_fleet.ok(HOST1, "vm_vif", {"network_info": grown})
    assert added["actions"] == ["flood vxlan-4242 traffic to VTEP 10.77.4.13"]
    shrunk = vif_fleet.ok(HOST1, "vm_vif", {"network_info": info})
    assert shrunk["actions"] == [
        "stop flooding vxlan-4242 traffic to 10.77.4.13 (not a peer any more)"]

    # Both ports are filtered (nftables, the default): their rules came with the plug.
    devnames = sorted(port["devname"] for port in info)
    assert [a for a in done["actions"] if a.startswith("filter port")] == [
        "filter port %s on %s: mac %s, ipv4 %s" % (port["id"], port["devname"], port["address"],
                                                   port["network"]["subnets"][0]["ips"][0]["address"])
        for port in info]
    assert vif_fleet.port_filters(HOST1) == devnames

    # Unplug leaves what the network's other instances share, and takes the ports' rules.
    gone = vif_fleet.ok(HOST1, "vm_vif", {"network_info": info, "state": "absent"})
    assert gone["actions"] == ["remove the anti-spoofing rules of port %s from %s"
                               % (port["id"], port["devname"]) for port in info]
    assert {"br-vx", "vxlan-4242", "br-lan2"} <= set(vif_fleet.links(HOST1))
    assert vif_fleet.port_filters(HOST1) == []
    assert not vif_fleet.ok(HOST1, "vm_vif", {"network_info": info, "state": "absent"}).changed


def test_ethernet_port_tap_is_made_and_removed(vif_fleet):
    [info] = ports(("routed", str(uuid.uuid4()), ["eth"]))
    devname = info[0]["devname"]
    assert vif_fleet.ok(HOST2, "vm_vif", {"network_info": info}).changed
    tap = link(vif_fleet, HOST2, devname)
    assert tap["linkinfo"]["info_data"]["type"] == "tap" and tap["mtu"] == 1400
    assert "UP" in tap["flags"]
    assert not vif_fleet.ok(HOST2, "vm_vif", {"network_info": info}).changed
    assert vif_fleet.ok(HOST2, "vm_vif", {"network_info": info, "state": "absent"}).changed
    assert devname not in vif_fleet.links(HOST2)
    assert not vif_fleet.ok(HOST2, "vm_vif", {"network_info": info, "state": "absent"}).changed


@pytest.mark.parametrize("change, message", [
    ({"create_bridge": False}, "bridge br-none of network lan1 does not exist on this host and "
                               "the network says create_bridge: false"),
    ({"bridge": "eth0"}, "network lan1 wants bridge eth0, but eth0 is a veth, not a bridge"),
    ({"vif_type": "vxlan", "vxlan_id": 7, "physical_interface": "bond9",
      "vxlan_peers": [VTEP2]}, "physical interface bond9 of network lan1 does not exist"),
])
def test_plumbing_that_cannot_be_done_fails_before_touching_the_host(vif_fleet, change, message):
    catalog = {"lan1": dict(NETWORKS["lan1"], **dict({"bridge": "br-none"}, **change))}
    [info] = ports(("broken", str(uuid.uuid4()), ["lan1"]), networks=catalog)
    before = vif_fleet.links(HOST2)
    run = vif_fleet.module(HOST2, "vm_vif", {"network_info": info})
    assert run.failed and message in run["msg"]
    assert set(vif_fleet.links(HOST2)) == set(before)


def test_a_filter_libvirt_does_not_have_is_named(vif_fleet):
    [info] = ports(("unfiltered", str(uuid.uuid4()), ["lan1"]))
    run = vif_fleet.module(HOST2, "vm_vif", {"network_info": info, "nwfilter": "no-such-filter",
                                             "firewall_driver": "nwfilter"})
    assert run.failed
    assert "needs the libvirt nwfilter no-such-filter, which is not defined" in run["msg"]


def test_guest_with_one_nic_gets_its_address_and_reaches_its_gateway_filtered_by_nwfilter(
        vif_fleet, guest, vif_instances):
    # firewall_driver=nwfilter, the old way, still works: libvirt's clean-traffic, no nft rules.
    nwfilter = {"firewall_driver": "nwfilter"}
    instance_uuid = str(uuid.uuid4())
    [info] = ports(("one-nic", instance_uuid, ["lan1"]))
    vif_fleet.ok(HOST1, "vm_vif", dict(network_info=info, **nwfilter))
    vif_fleet.sh(HOST1, "ip", "addr", "replace", "10.77.51.1/24", "dev", "br-lan1")
    vif_instances.add(HOST1, instance_uuid)
    vif_fleet.prepare_instance(HOST1, instance_uuid, "one-nic", info, guest, firewall_driver="nwfilter")
    started = vif_fleet.ok(HOST1, "vm_domain", dict(uuid=instance_uuid, network_info=info, wait_for_console=READY,
                                                    console_timeout=180, **nwfilter))
    assert started["console_match"] == READY
    console = vif_fleet.console(HOST1, instance_uuid)
    port = info[0]
    ip = port["network"]["subnets"][0]["ips"][0]["address"]
    assert guest_lines(console, "VIRTOPS-NET") == ["VIRTOPS-NET eth0 %s %s/24"
                                                   % (port["address"], ip)]
    assert "VIRTOPS-PING 10.77.51.1 ok" in console
    # The port is filtered (clean-traffic with the port's IP), and the right address passes.
    assert vif_fleet.nwfilter_bindings(HOST1) == [port["devname"]]
    assert port["devname"] not in vif_fleet.port_filters(HOST1)
    assert "<filterref filter='clean-traffic'>" in vif_fleet.lab.virsh(HOST1, "dumpxml", "one-nic").stdout
    assert vif_fleet.sh(HOST1, "busybox", "ping", "-c", "1", "-W", "3", ip, check=False).returncode == 0
    # With the guest up, both modules find nothing to do.
    assert not vif_fleet.ok(HOST1, "vm_vif", dict(network_info=info, **nwfilter)).changed
    assert not vif_fleet.ok(HOST1, "vm_domain", dict(uuid=instance_uuid, network_info=info,
                                                     wait_for_console=READY, **nwfilter)).changed


def test_guest_with_two_nics_is_reachable_on_both(vif_fleet, guest, vif_instances):
    instance_uuid = str(uuid.uuid4())
    [info] = ports(("two-nics", instance_uuid, ["lan1", "lan2"]))
    vif_fleet.ok(HOST2, "vm_vif", {"network_info": info})
    vif_fleet.sh(HOST2, "ip", "addr", "replace", "10.77.51.1/24", "dev", "br-lan1")
    vif_fleet.sh(HOST2, "ip", "addr", "replace", "10.77.52.1/24", "dev", "br-lan2")
    vif_instances.add(HOST2, instance_uuid)
    vif_fleet.prepare_instance(HOST2, instance_uuid, "two-nics", info, guest)
    start(vif_fleet, HOST2, instance_uuid, info)
    console = vif_fleet.console(HOST2, instance_uuid)
    addresses = [p["network"]["subnets"][0]["ips"][0]["address"] for p in info]
    nets = guest_lines(console, "VIRTOPS-NET")
    assert sorted(line.split()[2:] for line in nets) == sorted(
        [[p["address"], "%s/24" % ip] for p, ip in zip(info, addresses)])
    assert "VIRTOPS-PING 10.77.51.1 ok" in console       # the guest pings its first gateway
    for ip in addresses:                                 # and the host reaches both NICs
        assert vif_fleet.sh(HOST2, "busybox", "ping", "-c", "1", "-W", "3", ip,
                            check=False).returncode == 0, ip
    assert link(vif_fleet, HOST2, info[1]["devname"])["mtu"] == 1400


def test_guests_on_two_hosts_talk_over_vxlan(vif_fleet, guest, vif_instances):
    uuid_b, uuid_a = str(uuid.uuid4()), str(uuid.uuid4())
    info_b, info_a = ports(("vx-b", uuid_b, ["vx"]), ("vx-a", uuid_a, ["vx"]))
    ip_b = info_b[0]["network"]["subnets"][0]["ips"][0]["address"]
    # B pings the network's gateway, which lives on compute2 only; A's "gateway" is B itself,
    # so A's ping crosses the tunnel from compute1 to a guest on compute2.
    view_a = copy.deepcopy(info_a)
    view_a[0]["network"]["subnets"][0]["gateway"] = {"address": ip_b}
    vif_instances.add(HOST2, uuid_b)
    prepare(vif_fleet, HOST2, uuid_b, "vx-b", info_b, guest)
    vif_fleet.sh(HOST2, "ip", "addr", "replace", "10.77.50.1/24", "dev", "br-vx")
    start(vif_fleet, HOST2, uuid_b, info_b)
    vif_instances.add(HOST1, uuid_a)
    prepare(vif_fleet, HOST1, uuid_a, "vx-a", info_a, guest, guest_network_info=view_a)
    start(vif_fleet, HOST1, uuid_a, info_a)
    assert "VIRTOPS-PING 10.77.50.1 ok" in vif_fleet.console(HOST2, uuid_b)
    assert "VIRTOPS-PING %s ok" % ip_b in vif_fleet.console(HOST1, uuid_a)
    # compute2 learned guest A's MAC behind compute1's tunnel endpoint.
    fdb = vif_fleet.sh(HOST2, "bridge", "fdb", "show", "dev", "vxlan-4242").stdout
    assert "%s dst %s" % (info_a[0]["address"], VTEP1) in fdb


def test_a_spoofing_guest_is_cut_off_and_an_unfiltered_one_is_not(vif_fleet, guest, vif_instances):
    uuid_s, uuid_c = str(uuid.uuid4()), str(uuid.uuid4())
    info_s, info_c = ports(("spoofer", uuid_s, ["lan1"]), ("control", uuid_c, ["open"]))
    assert info_s[0]["details"]["port_filter"] and not info_c[0]["details"]["port_filter"]

    def lying(info, address):
        view = copy.deepcopy(info)
        view[0]["network"]["subnets"][0]["ips"] = [{"address": address, "type": "fixed"}]
        return view

    # Both guests configure an address their port does not have.
    vif_instances.add(HOST1, uuid_s)
    vif_instances.add(HOST1, uuid_c)
    prepare(vif_fleet, HOST1, uuid_s, "spoofer", info_s, guest,
            guest_network_info=lying(info_s, "10.77.51.77"))
    prepare(vif_fleet, HOST1, uuid_c, "control", info_c, guest,
            guest_network_info=lying(info_c, "10.77.51.78"))
    vif_fleet.sh(HOST1, "ip", "addr", "replace", "10.77.51.1/24", "dev", "br-lan1")
    results = {}
    threads = [threading.Thread(target=lambda u=u, i=i: results.update(
        {u: start(vif_fleet, HOST1, u, i)})) for u, i in ((uuid_s, info_s), (uuid_c, info_c))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {uuid_s, uuid_c}
    # The spoofer's port has its nftables rules (firewall_driver's default), the control's none,
    # and libvirt filters nothing itself.
    tap_s, tap_c = info_s[0]["devname"], info_c[0]["devname"]
    filtered = vif_fleet.port_filters(HOST1)
    assert tap_s in filtered and tap_c not in filtered
    assert vif_fleet.nwfilter_bindings(HOST1) == []
    assert "filterref" not in vif_fleet.lab.virsh(HOST1, "dumpxml", "spoofer").stdout
    spoofer, control = vif_fleet.console(HOST1, uuid_s), vif_fleet.console(HOST1, uuid_c)
    assert "VIRTOPS-NET eth0 %s 10.77.51.77/24" % info_s[0]["address"] in spoofer
    assert "VIRTOPS-PING 10.77.51.1 fail" in spoofer
    assert "VIRTOPS-PING 10.77.51.1 ok" in control
    assert vif_fleet.sh(HOST1, "busybox", "ping", "-c", "1", "-W", "2", "10.77.51.77",
                        check=False).returncode != 0
    assert vif_fleet.sh(HOST1, "busybox", "ping", "-c", "1", "-W", "2", "10.77.51.78",
                        check=False).returncode == 0
    # Re-plugging finds the rules in force; deleting the spoofer takes them away.
    assert not vif_fleet.ok(HOST1, "vm_vif", {"network_info": info_s}).changed
    vif_fleet.delete(HOST1, uuid_s, info_s)
    assert tap_s not in vif_fleet.port_filters(HOST1)
