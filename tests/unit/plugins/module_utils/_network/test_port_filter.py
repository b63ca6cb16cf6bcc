# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port anti-spoofing rules: what is written for a port, planned against the table as nft
lists it (tests/fixtures/nft, captured from a real nft), and one real run in a scratch
network namespace when root."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._network.port_filter import (
    FilterSnapshot, Nft, PortChain, PortFilter, RemovedPort, plan_port_filters)

NFT_DIR = Path(__file__).resolve().parents[5] / "tests" / "fixtures" / "nft"
PORT_A = PortFilter("3f1c2d0e-9a00-4e2b-8c1d-5a6b7c8d9e0f", "tap3f1c2d0e-9a", "fa:16:3e:12:34:56",
                    ("10.77.51.5", "10.77.51.9"))
PORT_B = PortFilter("7b2e4c6a-1d3f-4a5b-9c8d-0e1f2a3b4c5d", "tap7b2e4c6a-1d", "fa:16:3e:ab:cd:ef",
                    ("10.77.52.7",))


def captured(name: str) -> FilterSnapshot:
    return FilterSnapshot.from_json((NFT_DIR / name).read_text())


def in_force(*ports: PortFilter) -> FilterSnapshot:
    """The table as it reads once ``ports`` were written."""
    return FilterSnapshot(table=True, ports_map=True, dispatch_hook="prerouting", dispatch_ok=True,
                          elements={p.devname: p.chain for p in ports},
                          chains={p.chain: PortChain(p.comment, len(p.rules())) for p in ports})


def test_a_port_s_chain_reproduces_libvirt_s_clean_traffic_for_what_the_guest_sends():
    assert PORT_A.rules() == [
        "ether saddr != fa:16:3e:12:34:56 drop",
        "ip protocol udp udp sport 67 udp dport 68 drop",
        "ip saddr 0.0.0.0 ip protocol udp udp sport 68 udp dport 67 accept",
        "ip saddr { 10.77.51.5, 10.77.51.9 } accept",
        "ether type ip drop",
        "arp saddr ether != fa:16:3e:12:34:56 drop",
        "arp saddr ip { 0.0.0.0, 10.77.51.5, 10.77.51.9 } accept",
        "ether type arp drop",
        "ether type 0x8035 accept",
        "drop"]
    no_ipv4 = PortFilter(PORT_A.port_id, PORT_A.devname, PORT_A.mac)
    assert "ip saddr {" not in " ".join(no_ipv4.rules())
    assert "arp saddr ip { 0.0.0.0 } accept" in no_ipv4.rules()
    assert no_ipv4.describe().endswith("ipv4 none (DHCP only)")


def test_the_first_port_on_a_host_brings_the_table_the_map_and_the_dispatch_chain():
    change = plan_port_filters(FilterSnapshot(), [PORT_A])
    lines = change.script.splitlines()
    assert lines[:5] == [
        "add table bridge virtops",
        "add map bridge virtops ports { type ifname : verdict ; }",
        "add chain bridge virtops prerouting { type filter hook prerouting priority filter ; "
        "policy accept ; }",
        "add rule bridge virtops prerouting iifname vmap @ports",
        "add chain bridge virtops port-tap3f1c2d0e-9a"]
    assert lines[5] == ('add rule bridge virtops port-tap3f1c2d0e-9a ether saddr != '
                        'fa:16:3e:12:34:56 drop comment "virtops port '
                        '3f1c2d0e-9a00-4e2b-8c1d-5a6b7c8d9e0f %s"' % PORT_A.digest)
    assert lines[6:15] == ["add rule bridge virtops port-tap3f1c2d0e-9a " + r for r in PORT_A.rules()[1:]]
    assert lines[15:] == ['add element bridge virtops ports { "tap3f1c2d0e-9a" : jump port-tap3f1c2d0e-9a }']
    assert change.actions == ["filter port 3f1c2d0e-9a00-4e2b-8c1d-5a6b7c8d9e0f on tap3f1c2d0e-9a: "
                              "mac fa:16:3e:12:34:56, ipv4 10.77.51.5, 10.77.51.9"]


def test_the_table_nft_listed_after_writing_two_ports_reads_back_as_both_in_force():
    snapshot = captured("two_ports.json")
    assert snapshot == in_force(PORT_A, PORT_B)
    assert (snapshot.problem(PORT_A), snapshot.problem(PORT_B)) == (None, None)
    change = plan_port_filters(snapshot, [PORT_A, PORT_B])
    assert (change.changed, change.script, change.actions) == (False, "", [])


def test_a_second_port_adds_its_chain_and_map_element_and_nothing_else():
    change = plan_port_filters(captured("one_port.json"), [PORT_A, PORT_B])
    lines = change.script.splitlines()
    assert lines[0] == "add chain bridge virtops port-tap7b2e4c6a-1d"
    assert lines[-1] == 'add element bridge virtops ports { "tap7b2e4c6a-1d" : jump port-tap7b2e4c6a-1d }'
    assert len(lines) == 12 and all("tap3f1c2d0e" not in line for line in lines)
    assert change.actions == [PORT_B.describe()]


def test_changed_addresses_rewrite_the_chain_in_place_in_one_transaction():
    moved = PortFilter(PORT_A.port_id, PORT_A.devname, PORT_A.mac, ("10.77.51.6",))
    snapshot = captured("one_port.json")
    assert snapshot.problem(moved) == ("the anti-spoofing rules of port %s on tap3f1c2d0e-9a are "
                                       "out of date" % PORT_A.port_id)
    change = plan_port_filters(snapshot, [moved])
    lines = change.script.splitlines()
    assert lines[0] == "flush chain bridge virtops port-tap3f1c2d0e-9a"
    assert lines[1:] == ["add rule bridge virtops port-tap3f1c2d0e-9a " + rule for rule in
                         [moved.rules()[0] + ' comment "%s"' % moved.comment] + moved.rules()[1:]]
    assert change.actions == ["rewrite the filter of port %s on tap3f1c2d0e-9a: mac "
                              "fa:16:3e:12:34:56, ipv4 10.77.51.6" % PORT_A.port_id]
    assert change.before["filter:tap3f1c2d0e-9a"].startswith(PORT_A.comment)
    assert change.after["filter:tap3f1c2d0e-9a"] == "%s (10 rules)" % moved.comment


def test_a_rule_added_by_hand_to_a_port_chain_is_drift_and_is_flushed():
    snapshot = in_force(PORT_A)
    snapshot.chains[PORT_A.chain] = PortChain(PORT_A.comment, len(PORT_A.rules()) + 1)
    change = plan_port_filters(snapshot, [PORT_A])
    assert change.script.splitlines()[0] == "flush chain bridge virtops port-tap3f1c2d0e-9a"
    assert change.actions[0].startswith("restore the filter of port")


def test_unplug_removes_the_port_s_element_and_chain_and_leaves_the_shared_table():
    change = plan_port_filters(captured("two_ports.json"),
                               removed=[RemovedPort(PORT_A.port_id, PORT_A.devname)])
    assert change.script.splitlines() == [
        'delete element bridge virtops ports { "tap3f1c2d0e-9a" }',
        "delete chain bridge virtops port-tap3f1c2d0e-9a"]
    assert change.actions == ["remove the anti-spoofing rules of port %s from tap3f1c2d0e-9a"
                              % PORT_A.port_id]
    assert change.after == {"filter:tap3f1c2d0e-9a": "absent"}
    gone = plan_port_filters(captured("one_port.json"), removed=[RemovedPort("b", PORT_B.devname)])
    assert not gone.changed
    assert not plan_port_filters(FilterSnapshot(), removed=[RemovedPort("a", PORT_A.devname)]).changed


def test_a_dispatch_chain_without_its_rule_gets_it_back_and_one_hooked_elsewhere_is_refused():
    snapshot = in_force()
    snapshot.dispatch_ok = False
    lines = plan_port_filters(snapshot, [PORT_A]).script.splitlines()
    assert lines[:2] == ["flush chain bridge virtops prerouting",
                         "add rule bridge virtops prerouting iifname vmap @ports"]
    snapshot.dispatch_hook = "forward"
    with pytest.raises(VirtopsError, match="hooked at forward, not prerouting; delete the table"):
        plan_port_filters(snapshot, [PORT_A])


@pytest.mark.parametrize("field, value, message", [
    ("devname", "tap x", "devname 'tap x' is not a valid interface name"),
    ("mac", "FA:16:3E:00:00:01", "is not six lower-case hex pairs"),
    ("port_id", 'p1" drop', "cannot name an nftables rule"),
    ("ipv4", ("10.0.0.300",), "'10.0.0.300' is not an IPv4 address"),
])
def test_values_that_would_not_make_a_safe_nft_script_are_refused(field, value, message):
    values = dict(port_id=PORT_A.port_id, devname=PORT_A.devname, mac=PORT_A.mac, ipv4=PORT_A.ipv4)
    values[field] = value
    with pytest.raises(VirtopsError, match=message):
        PortFilter(**values)


def fake_nft(tmp_path, stdout="", stderr="", rc=0) -> str:
    (tmp_path / "out").write_text(stdout)
    (tmp_path / "err").write_text(stderr)
    script = tmp_path / "nft"
    script.write_text('#!/bin/sh\ncat "%s"; cat "%s" >&2; exit %d\n'
                      % (tmp_path / "out", tmp_path / "err", rc))
    script.chmod(0o755)
    return str(script)


def test_a_host_without_the_table_reads_as_an_empty_one_and_other_nft_errors_are_reported(tmp_path):
    missing = fake_nft(tmp_path, stderr="Error: No such file or directory\nlist table bridge virtops\n",
                       rc=1)
    assert Nft(missing).read() == FilterSnapshot()
    broken = fake_nft(tmp_path, stderr="Error: Operation not permitted\n", rc=1)
    with pytest.raises(VirtopsError, match="cannot read the anti-spoofing table.*not permitted"):
        Nft(broken).read()
    listed = fake_nft(tmp_path, stdout=(NFT_DIR / "one_port.json").read_text())
    assert Nft(listed).read() == in_force(PORT_A)


# -- the real nft, in a network namespace of its own --------------------------------------------

@pytest.fixture
def netns_nft(tmp_path):
    """An ``nft`` that runs in a scratch network namespace, removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        pytest.skip("needs root, nft and ip")
    name = "vo-ut-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    wrapper = tmp_path / "nft-in-netns"
    wrapper.write_text('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (name, shutil.which("nft")))
    wrapper.chmod(0o755)
    try:
        yield Nft(str(wrapper))
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_the_real_nft_takes_the_script_and_lists_what_the_planner_expects(netns_nft):
    assert netns_nft.read() == FilterSnapshot()
    netns_nft.apply(plan_port_filters(netns_nft.read(), [PORT_A, PORT_B]).script)
    assert netns_nft.read() == in_force(PORT_A, PORT_B)
    assert not plan_port_filters(netns_nft.read(), [PORT_A, PORT_B]).changed
    moved = PortFilter(PORT_B.port_id, PORT_B.devname, PORT_B.mac, ("10.77.52.8", "10.77.52.9"))
    netns_nft.apply(plan_port_filters(netns_nft.read(), [PORT_A, moved]).script)
    assert netns_nft.read() == in_force(PORT_A, moved)
    netns_nft.apply(plan_port_filters(netns_nft.read(), removed=[
        RemovedPort(PORT_A.port_id, PORT_A.devname), RemovedPort(moved.port_id, moved.devname)]).script)
    left = netns_nft.read()
    assert (left.elements, left.chains, left.dispatch_ok) == ({}, {}, True)
