# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host plumbing plans: what vm_vif would run for a given host, and the plugged check."""
from __future__ import annotations

import os

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import Subnet, Vif
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    vlan_ifname, vxlan_ifname)
from ansible_collections.virtops.compute.plugins.module_utils._network.links import (
    Link, parse_flood_entries, parse_links)
from ansible_collections.virtops.compute.plugins.module_utils._network.port_filter import (
    FilterSnapshot, PortFilter)
from ansible_collections.virtops.compute.plugins.module_utils._network.vif import (
    ExpectedPort, HostSnapshot, check_plugged, expected_filter, plan_plug, plan_unplug, unfilter_devices)
from ansible_collections.virtops.compute.tests.unit.plugins.module_utils._network.test_links import (
    FDB_JSON, IP_LINK_JSON)
from ansible_collections.virtops.compute.tests.unit.plugins.module_utils._network.test_port_filter import (
    in_force)


def vif(vif_type="bridge", port="p1", **kwargs) -> Vif:
    fields = dict(id=port + "-0000-0000-0000-000000000000", address="fa:16:3e:00:00:0%d"
                  % (len(port) % 10), network_id="n-" + port, network_label="net-" + port,
                  vif_type=vif_type, bridge="br-test", mtu=1500, port_filter=False,
                  subnets=[Subnet(cidr="10.10.0.0/24", gateway="10.10.0.1", ips=["10.10.0.5"])])
    fields.update(kwargs)
    fields.setdefault("devname", ("tap" + fields["id"])[:14])
    return Vif(**fields)


def host(*links, ipv4=None, flood=None, nwfilters=None, networks=None, filters=None) -> HostSnapshot:
    base = {"eth0": Link("eth0", kind="veth", up=True, mtu=1500)}
    base.update({link.name: link for link in links})
    return HostSnapshot(links=base, ipv4=ipv4 if ipv4 is not None else {"eth0": ["10.0.0.11"]},
                        flood=flood or {}, nwfilters=nwfilters, libvirt_networks=networks or {},
                        port_filters=filters)


def steps(plan):
    return [" ".join(step.argv) for step in plan.steps]


def test_new_bridge_is_created_without_stp_with_the_mtu_and_up():
    plan = plan_plug([vif(mtu=1400)], host())
    assert steps(plan) == [
        "ip link add name br-test mtu 1400 type bridge stp_state 0 forward_delay 0",
        "ip link set dev br-test up"]
    assert plan.before == {"br-test": "absent"}
    assert plan.after == {"br-test": "bridge up mtu 1400"}


def test_a_ready_bridge_needs_nothing_and_a_shared_one_is_planned_once():
    ready = Link("br-test", kind="bridge", mtu=1500, up=True)
    assert steps(plan_plug([vif()], host(ready))) == []
    plan = plan_plug([vif(port="p1"), vif(port="p22")], host())
    assert len(plan.steps) == 2 and len(plan.vifs) == 2


def test_bridge_mtu_and_state_are_corrected():
    plan = plan_plug([vif(mtu=9000)], host(Link("br-test", kind="bridge", mtu=1500, up=False)))
    assert steps(plan) == ["ip link set dev br-test mtu 9000", "ip link set dev br-test up"]


def test_two_networks_on_one_bridge_must_agree_on_the_mtu():
    with pytest.raises(VirtopsError, match="bridge br-test carries networks with different MTUs"):
        plan_plug([vif(port="p1", mtu=1500), vif(port="p22", mtu=1450)], host())


def test_missing_operator_bridge_is_an_error_and_a_down_one_only_a_warning():
    with pytest.raises(VirtopsError) as exc:
        plan_plug([vif(create_bridge=False)], host())
    assert "bridge br-test of network net-p1 does not exist" in exc.value.msg
    assert exc.value.details == {"bridge": "br-test"}
    plan = plan_plug([vif(create_bridge=False, mtu=1450)],
                     host(Link("br-test", kind="bridge", mtu=1500, up=False)))
    assert plan.steps == []
    assert any("br-test of network net-p1 is down" in w for w in plan.warnings)
    assert any("br-test has mtu 1500, network net-p1 says 1450" in w for w in plan.warnings)


def test_a_non_bridge_under_the_bridge_name_is_refused():
    with pytest.raises(VirtopsError, match="br-test is a veth, not a bridge"):
        plan_plug([vif()], host(Link("br-test", kind="veth", up=True)))


def test_vlan_member_is_created_on_the_physical_interface_and_enslaved():
    plan = plan_plug([vif("vlan", vlan=100, physical_interface="eth0")], host())
    assert steps(plan) == [
        "ip link add name br-test mtu 1500 type bridge stp_state 0 forward_delay 0",
        "ip link set dev br-test up",
        "ip link add link eth0 name vlan100 mtu 1500 type vlan id 100",
        "ip link set dev vlan100 master br-test",
        "ip link set dev vlan100 up"]
    assert vlan_ifname(4000) == "vlan4000"


def test_an_existing_vlan_interface_is_used_whatever_its_name():
    links = parse_links(IP_LINK_JSON)           # eth0.100, down, in no bridge
    plan = plan_plug([vif("vlan", vlan=100, physical_interface="eth0")],
                     host(Link("br-test", kind="bridge", up=True), links["eth0.100"]))
    assert steps(plan) == ["ip link set dev eth0.100 master br-test",
                           "ip link set dev eth0.100 up"]


def test_vlan_name_taken_by_another_vlan_is_not_touched():
    wrong = Link("vlan100", kind="vlan", vlan_id=200, parent="eth0")
    with pytest.raises(VirtopsError, match="vlan100 exists as vlan .* not as VLAN 100 on eth0"):
        plan_plug([vif("vlan", vlan=100, physical_interface="eth0")], host(wrong))


def test_missing_physical_interface_is_named():
    with pytest.raises(VirtopsError, match="physical interface bond7 of network net-p1 does not"):
        plan_plug([vif("vlan", vlan=5, physical_interface="bond7")], host())


def test_vxlan_member_from_scratch():
    port = vif("vxlan", vxlan_id=42, physical_interface="eth0", mtu=1450, bridge="br-vx",
               vxlan_peers=["10.0.0.11", "10.0.0.12"])
    plan = plan_plug([port], host())
    assert steps(plan) == [
        "ip link add name br-vx mtu 1450 type bridge stp_state 0 forward_delay 0",
        "ip link set dev br-vx up",
        "ip link add name vxlan-42 mtu 1450 type vxlan id 42 local 10.0.0.11 dev eth0 "
        "dstport 4789",
        "ip link set dev vxlan-42 master br-vx",
        "ip link set dev vxlan-42 up",
        # Our own address is not a peer: only the other host gets a flood entry.
        "bridge fdb append 00:00:00:00:00:00 dev vxlan-42 dst 10.0.0.12"]
    assert vxlan_ifname(16777215) == "vxlan-16777215"


def test_vxlan_peers_are_brought_in_line_with_the_network():
    links = parse_links(IP_LINK_JSON)
    port = vif("vxlan", vxlan_id=42, physical_interface="eth0", mtu=1450, bridge="br-vx",
               vxlan_peers=["10.0.0.11", "10.0.0.12", "10.0.0.14"])
    snapshot = host(links["br-vx"], links["vxlan-42"],
                    flood={"vxlan-42": parse_flood_entries(FDB_JSON)})
    plan = plan_plug([port], snapshot)
    assert steps(plan) == [
        "bridge fdb append 00:00:00:00:00:00 dev vxlan-42 dst 10.0.0.14",
        "bridge fdb del 00:00:00:00:00:00 dev vxlan-42 dst 10.0.0.13"]
    assert plan.after["vxlan-42"].endswith("flood 10.0.0.12,10.0.0.14")
    settled = host(links["br-vx"], links["vxlan-42"],
                   flood={"vxlan-42": ["10.0.0.12", "10.0.0.14"]})
    assert plan_plug([port], settled).steps == []


def test_vxlan_made_without_local_address_by_host_preparation_is_accepted():
    made = Link("vxlan-42", kind="vxlan", mtu=1450, up=True, master="br-vx", vxlan_id=42,
                vxlan_port=4789)
    port = vif("vxlan", vxlan_id=42, physical_interface="eth0", mtu=1450, bridge="br-vx",
               vxlan_peers=["10.0.0.12"])
    plan = plan_plug([port], host(Link("br-vx", kind="bridge", mtu=1450, up=True), made,
                                  flood={"vxlan-42": ["10.0.0.12"]}))
    assert plan.steps == []


def test_vxlan_with_another_endpoint_is_refused_not_replaced():
    links = parse_links(IP_LINK_JSON)
    port = vif("vxlan", vxlan_id=42, physical_interface="eth0", mtu=1450, bridge="br-vx",
               vxlan_peers=["10.0.0.12"], vxlan_port=8472)
    with pytest.raises(VirtopsError, match="vxlan-42 exists as .*port 4789.* wants .*port 8472"):
        plan_plug([port], host(links["br-vx"], links["vxlan-42"]))


def test_vxlan_needs_an_underlay_address_and_warns_about_a_too_big_mtu():
    port = vif("vxlan", vxlan_id=9, physical_interface="eth0", mtu=1500,
               vxlan_peers=["10.0.0.12"])
    with pytest.raises(VirtopsError, match="eth0 has no IPv4 address"):
        plan_plug([port], host(ipv4={}))
    plan = plan_plug([port], host())
    assert any("VXLAN over eth0 (mtu 1500) carries at most 1450" in w for w in plan.warnings)


def test_multicast_vxlan_has_no_flood_entries():
    port = vif("vxlan", vxlan_id=9, physical_interface="eth0", mtu=1450,
               vxlan_group="239.1.1.9")
    plan = plan_plug([port], host())
    assert "group 239.1.1.9" in steps(plan)[2] and not any("fdb" in s for s in steps(plan))


def test_a_port_on_a_bridge_of_another_bridge_is_refused():
    links = parse_links(IP_LINK_JSON)
    port = vif("vxlan", vxlan_id=42, physical_interface="eth0", mtu=1450, bridge="br-other",
               vxlan_peers=["10.0.0.12"])
    with pytest.raises(VirtopsError, match="vxlan-42 is a member of bridge br-vx, not br-other"):
        plan_plug([port], host(links["vxlan-42"]))


def test_ethernet_tap_is_created_and_removed_by_unplug_only():
    port = vif("ethernet", mtu=1400, bridge=None)
    plan = plan_plug([port], host())
    assert steps(plan) == ["ip tuntap add dev %s mode tap" % port.devname,
                           "ip link set dev %s mtu 1400" % port.devname,
                           "ip link set dev %s up" % port.devname]
    tap = Link(port.devname, kind="tun", tun_type="tap", mtu=1400, up=True)
    assert plan_plug([port], host(tap)).steps == []
    assert steps(plan_unplug([port], host(tap))) == [
        "ip tuntap del dev %s mode tap" % port.devname]
    assert plan_unplug([port], host()).steps == []


def test_unplug_never_removes_shared_bridges_or_members():
    links = parse_links(IP_LINK_JSON)
    port = vif("vxlan", vxlan_id=42, physical_interface="eth0", bridge="br-vx")
    plan = plan_unplug([port], host(links["br-vx"], links["vxlan-42"]))
    assert plan.steps == [] and plan.vifs[0]["bridge"] == "br-vx"


READY = Link("br-test", kind="bridge", mtu=1500, up=True)


def test_with_the_nwfilter_driver_a_filtered_port_needs_the_nwfilter_and_a_tap():
    port = vif(port_filter=True)
    nwfilter = dict(firewall_driver="nwfilter")
    assert plan_plug([port], host(READY, nwfilters=["clean-traffic"]), **nwfilter).steps == []
    with pytest.raises(VirtopsError, match="needs the libvirt nwfilter clean-traffic"):
        plan_plug([port], host(READY, nwfilters=["allow-arp"]), **nwfilter)
    for driver in ("nwfilter", "nftables"):
        with pytest.raises(VirtopsError, match="direct .macvtap. has none"):
            plan_plug([vif("direct", port_filter=True, physical_interface="eth0")],
                      host(nwfilters=["clean-traffic"], filters=FilterSnapshot()),
                      firewall_driver=driver)


def test_a_filtered_port_gets_its_rules_in_one_nft_step_after_the_plumbing():
    port = vif(port_filter=True)
    plan = plan_plug([port], host(filters=FilterSnapshot()), nft="/usr/sbin/nft")
    assert [s.description for s in plan.steps] == [
        "create bridge br-test (mtu 1500)", "set br-test up",
        "filter port p1-0000-0000-0000-000000000000 on tapp1-0000-000: mac fa:16:3e:00:00:02, "
        "ipv4 10.10.0.5"]
    last = plan.steps[-1]
    assert last.argv == ("/usr/sbin/nft", "-f", "-")
    assert 'add element bridge virtops ports { "tapp1-0000-000" : jump port-tapp1-0000-000 }' \
        in last.stdin.splitlines()
    assert (plan.before["filter:tapp1-0000-000"], plan.after["filter:tapp1-0000-000"]) == (
        "absent", "%s (10 rules)" % PortFilter.from_vif(port).comment)


def test_re_plugging_a_filtered_port_whose_rules_are_in_force_changes_nothing():
    port = vif(port_filter=True)
    assert plan_plug([port], host(READY, filters=in_force(PortFilter.from_vif(port)))).steps == []


def test_new_addresses_rewrite_the_port_chain_in_the_same_plan():
    port = vif(port_filter=True)
    moved = vif(port_filter=True, subnets=[Subnet(cidr="10.10.0.0/24", gateway=None,
                                                  ips=["10.10.0.6", "10.10.0.7"])])
    [step] = plan_plug([moved], host(READY, filters=in_force(PortFilter.from_vif(port)))).steps
    assert step.description.startswith("rewrite the filter of port p1-")
    assert step.description.endswith("ipv4 10.10.0.6, 10.10.0.7")
    assert "flush chain bridge virtops port-tapp1-0000-000" in step.stdin.splitlines()
    assert "add element" not in step.stdin


def test_a_port_whose_security_was_switched_off_loses_its_rules():
    port = vif(port_filter=True)
    [step] = plan_plug([vif()], host(READY, filters=in_force(PortFilter.from_vif(port)))).steps
    assert step.description == ("remove the anti-spoofing rules of port "
                                "p1-0000-0000-0000-000000000000 from tapp1-0000-000")


def test_the_nwfilter_driver_writes_no_rules_and_removes_those_of_an_earlier_nftables_plug():
    port = vif(port_filter=True)
    assert plan_plug([port], host(READY, nwfilters=["clean-traffic"], filters=FilterSnapshot()),
                     firewall_driver="nwfilter").steps == []
    [step] = plan_plug([port], host(READY, filters=in_force(PortFilter.from_vif(port))),
                       firewall_driver="nwfilter").steps
    assert step.description.startswith("remove the anti-spoofing rules of port p1-")
    with pytest.raises(VirtopsError, match="firewall_driver must be one of nftables, nwfilter"):
        plan_plug([port], host(READY), firewall_driver="iptables")


def test_unplug_removes_the_rules_of_any_vif_type_and_nothing_when_they_are_gone():
    ports = [vif(port_filter=True), vif("network", port="p22", port_filter=True, bridge=None)]
    filters = in_force(*(PortFilter.from_vif(p) for p in ports))
    plan = plan_unplug(ports, host(filters=filters), nft="/usr/sbin/nft")
    [step] = plan.steps
    assert plan.actions == ["remove the anti-spoofing rules of port %s from %s" % (p.id, p.devname)
                            for p in ports]
    assert step.argv == ("/usr/sbin/nft", "-f", "-")
    assert step.stdin.splitlines() == [
        'delete element bridge virtops ports { "tapp1-0000-000" }',
        "delete chain bridge virtops port-tapp1-0000-000",
        'delete element bridge virtops ports { "tapp22-0000-00" }',
        "delete chain bridge virtops port-tapp22-0000-00"]
    assert plan_unplug(ports, host(filters=FilterSnapshot())).steps == []
    assert plan_unplug(ports, host()).steps == []       # no nft on the host: nothing of ours


def test_an_ethernet_port_is_filtered_with_a_warning_that_no_bridge_sees_its_tap():
    plan = plan_plug([vif("ethernet", port_filter=True)], host(filters=FilterSnapshot()))
    assert plan.steps[-1].description.startswith("filter port p1-")
    assert "on no bridge" in plan.warnings[0]


def test_filtered_ports_cannot_be_planned_without_reading_the_table():
    with pytest.raises(VirtopsError, match="nftables were not read"):
        plan_plug([vif(port_filter=True)], host(READY))


def test_libvirt_network_must_exist_and_is_started_when_inactive():
    started = []
    port = vif("network", network_label="default", bridge=None)
    plan = plan_plug([port], host(networks={"default": False}), start_network=started.append)
    assert [s.description for s in plan.steps] == ["start libvirt network default"]
    plan.steps[0].call()
    assert started == ["default"]
    assert plan_plug([port], host(networks={"default": True})).steps == []
    with pytest.raises(VirtopsError, match="libvirt network default is not defined"):
        plan_plug([port], host())


def test_two_ports_with_one_mac_are_refused():
    with pytest.raises(VirtopsError, match="share fa:16:3e"):
        plan_plug([vif(port="p1", address="fa:16:3e:00:00:01"),
                   vif(port="p2", address="fa:16:3e:00:00:01")], host())


# -- plugged? ---------------------------------------------------------------------------------

def fake_sysfs(root, name, up=True, master=None):
    path = root / name
    path.mkdir()
    (path / "flags").write_text("0x%x\n" % (0x1303 if up else 0x1302))
    if master:
        os.symlink("../" + master, str(path / "master"))


def test_plugged_means_tap_up_on_its_bridge_which_is_up(tmp_path):
    fake_sysfs(tmp_path, "br-a", up=True)
    fake_sysfs(tmp_path, "br-down", up=False)
    fake_sysfs(tmp_path, "tap-ok", master="br-a")
    fake_sysfs(tmp_path, "tap-down", up=False, master="br-a")
    fake_sysfs(tmp_path, "tap-wrong", master="br-down")
    fake_sysfs(tmp_path, "tap-loose")
    fake_sysfs(tmp_path, "macvtap0")
    sysfs = str(tmp_path)
    assert check_plugged([ExpectedPort("tap-ok", "br-a"), ExpectedPort("macvtap0")], sysfs) == []
    assert check_plugged([ExpectedPort("tap-gone", "br-a"), ExpectedPort("tap-down", "br-a"),
                          ExpectedPort("tap-wrong", "br-a"), ExpectedPort("tap-loose", "br-a"),
                          ExpectedPort("tap-wrong", "br-down")], sysfs) == [
        "tap-gone does not exist",
        "tap-down is down",
        "tap-wrong is attached to br-down, not to bridge br-a",
        "tap-loose is attached to no bridge, not to bridge br-a",
        "bridge br-down of tap-wrong is down"]


def test_a_filtered_port_is_plugged_only_once_its_rules_are_in_force(tmp_path):
    fake_sysfs(tmp_path, "br-test", up=True)
    fake_sysfs(tmp_path, "tapp1-0000-000", master="br-test")
    port = vif(port_filter=True)
    rules = expected_filter(port)
    expected = [ExpectedPort("tapp1-0000-000", "br-test", port.address, rules)]
    assert check_plugged(expected, str(tmp_path), in_force(rules)) == []
    assert check_plugged(expected, str(tmp_path), in_force()) == [
        "the anti-spoofing rules of port p1-0000-0000-0000-000000000000 on tapp1-0000-000 are missing"]
    assert "dispatch chain" in check_plugged(expected, str(tmp_path), FilterSnapshot())[0]
    assert expected_filter(port, "nwfilter") is None and expected_filter(vif()) is None


class FakeNftHost:
    """A host whose anti-spoofing table is ``filters``; records the scripts applied."""

    def __init__(self, filters):
        self.filters = filters
        self.applied = []

    def port_filters(self, required=True):
        return self.filters

    def nft(self, required):
        return self

    def apply(self, script):
        self.applied.append(script)


def test_a_domain_deleted_without_its_ports_loses_the_rules_of_the_taps_it_names():
    fake = FakeNftHost(in_force(PortFilter.from_vif(vif(port_filter=True))))
    planned = unfilter_devices(["tapp1-0000-000", "tap-other"], check_mode=True, host=fake)
    assert planned.actions == ["remove the anti-spoofing rules of tapp1-0000-000"] and fake.applied == []
    done = unfilter_devices(["tapp1-0000-000", "tap-other"], host=fake)
    assert done.changed and fake.applied == ['delete element bridge virtops ports { "tapp1-0000-000" }\n'
                                             "delete chain bridge virtops port-tapp1-0000-000\n"]
    assert not unfilter_devices(["tapp1-0000-000"], host=FakeNftHost(None)).changed
