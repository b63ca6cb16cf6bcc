# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host preparation logic: the virt type record, libvirt daemons, networks plan, readiness."""
from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._network.host_network import (
    Link, NetworkSpec, plan_network)
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import (
    Daemon, ReadinessConfig, bridges_of, check_readiness, ensure_libvirt_running,
    ensure_virt_record, pid_from_file, pid_runs)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.virt_probe import (
    VirtProbe, detect_virt_type, recorded_virt_type)

# --------------------------------------------------------------------------- virt type record


def test_no_record_means_none(tmp_path):
    assert recorded_virt_type(str(tmp_path / "host.json")) is None


def test_forced_type_is_recorded_once_and_read_back(tmp_path):
    state_dir = tmp_path / "etc-virtops"
    first = ensure_virt_record(str(state_dir), "kvm", "/nonexistent", check_mode=False)
    assert first.changed and first.before is None
    assert json.loads((state_dir / "host.json").read_text()) == {
        "virt_type": "kvm", "kvm_usable": True, "reason": "forced by virtops_virt_type",
        "forced": True}
    second = ensure_virt_record(str(state_dir), "kvm", "/nonexistent", check_mode=False)
    assert not second.changed
    assert recorded_virt_type(str(state_dir / "host.json")) == VirtProbe(
        "kvm", True, "forced by virtops_virt_type", forced=True)


def test_check_mode_reports_but_does_not_write(tmp_path):
    result = ensure_virt_record(str(tmp_path / "etc"), "qemu", "/nonexistent", check_mode=True)
    assert result.changed and result.after["virt_type"] == "qemu"
    assert not (tmp_path / "etc").exists()


def test_probe_result_replaces_a_different_record(tmp_path):
    ensure_virt_record(str(tmp_path), "kvm", "/nonexistent", check_mode=False)
    result = ensure_virt_record(str(tmp_path), None, str(tmp_path / "no-kvm"), check_mode=False)
    assert result.changed and result.before["virt_type"] == "kvm"
    assert recorded_virt_type(str(tmp_path / "host.json")).virt_type == "qemu"
    assert "does not exist" in recorded_virt_type(str(tmp_path / "host.json")).reason


def test_unreadable_record_is_named_and_then_rewritten(tmp_path):
    record = tmp_path / "host.json"
    record.write_text("{not json")
    with pytest.raises(VirtopsError, match="prepare_hosts.yml"):
        recorded_virt_type(str(record))
    record.write_text(json.dumps({"virt_type": "xen"}))
    with pytest.raises(VirtopsError, match="does not record a virt type"):
        recorded_virt_type(str(record))
    assert ensure_virt_record(str(tmp_path), "qemu", "/nonexistent", check_mode=False).changed
    assert recorded_virt_type(str(record)).virt_type == "qemu"


def test_detect_prefers_explicit_then_record_then_probe(tmp_path):
    record = tmp_path / "host.json"
    ensure_virt_record(str(tmp_path), "kvm", "/nonexistent", check_mode=False)
    missing_kvm = str(tmp_path / "kvm")
    # The record wins over a live probe (which would say qemu: no such device) ...
    assert detect_virt_type(kvm_device=missing_kvm, recorded_path=str(record)).virt_type == "kvm"
    # ... an explicit type wins over the record ...
    assert detect_virt_type("qemu", recorded_path=str(record)).virt_type == "qemu"
    # ... and without a record the probe decides.
    probe = detect_virt_type(kvm_device=missing_kvm, recorded_path=str(tmp_path / "none.json"))
    assert probe.virt_type == "qemu" and not probe.forced


# --------------------------------------------------------------------------- libvirt daemons


def test_pid_runs_checks_the_binary_not_just_the_pid(tmp_path):
    assert pid_runs(os.getpid(), sys.executable)
    assert not pid_runs(os.getpid(), "/usr/sbin/libvirtd")
    assert not pid_runs(None, sys.executable)
    pidfile = tmp_path / "x.pid"
    pidfile.write_text("garbage\n")
    assert pid_from_file(str(pidfile)) is None
    assert pid_from_file(str(tmp_path / "missing.pid")) is None


def test_answering_libvirt_is_left_alone(tmp_path):
    daemons = [Daemon("virtlogd", str(tmp_path / "virtlogd.pid")),
               Daemon("libvirtd", str(tmp_path / "libvirtd.pid"))]
    result = ensure_libvirt_running("test:///default", daemons, start=True, check_mode=False)
    assert not result.changed and result.started == []
    assert result.pids == {"virtlogd": None, "libvirtd": None}


def test_check_mode_names_the_daemons_it_would_start(tmp_path):
    daemons = [Daemon("virtlogd", str(tmp_path / "virtlogd.pid")),
               Daemon("libvirtd", str(tmp_path / "libvirtd.pid"))]
    uri = "qemu:///system?socket=%s" % (tmp_path / "no-such-socket")
    result = ensure_libvirt_running(uri, daemons, start=True, check_mode=True)
    assert result.changed and result.started == ["virtlogd", "libvirtd"]
    assert not (tmp_path / "libvirtd.pid").exists()


def test_libvirt_that_never_answers_fails_with_where_to_look(tmp_path):
    uri = "qemu:///system?socket=%s" % (tmp_path / "no-such-socket")
    with pytest.raises(VirtopsError, match="does not answer on .*libvirtd.log"):
        ensure_libvirt_running(uri, [Daemon("libvirtd", str(tmp_path / "l.pid"))], start=False,
                               check_mode=False, timeout=1, poll=0.2)


# --------------------------------------------------------------------------- networks

VLAN_LINK = {"ifname": "vlan20", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
             "mtu": 1500, "master": "br-storage", "link": "eth0",
             "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 20}}}
VXLAN_LINK = {"ifname": "vxlan-1001", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1450,
              "linkinfo": {"info_kind": "vxlan", "info_data": {"id": 1001, "port": 4789}}}


def test_links_are_read_from_ip_json():
    assert Link.from_ip_json(VLAN_LINK) == Link("vlan20", "vlan", True, 1500, "br-storage",
                                                vlan_id=20, parent="eth0")
    vxlan = Link.from_ip_json(VXLAN_LINK)
    assert vxlan.kind == "vxlan" and vxlan.vxlan_id == 1001 and not vxlan.up and vxlan.master is None


@pytest.mark.parametrize("spec, message", [
    (NetworkSpec("n", bridge="br0", vif_type="vlan", vlan=20), "needs physical_interface"),
    (NetworkSpec("n", bridge="br0", vif_type="vlan", vlan=5000, physical_interface="eth0"),
     "vlan \\(1-4094\\)"),
    (NetworkSpec("n", bridge="br0", vif_type="vxlan", vxlan_id=7), "vxlan_group .* or vxlan_peers"),
    (NetworkSpec("n", bridge="br0", vif_type="vxlan", vxlan_id=7, vxlan_peers=("peer1",)),
     "'peer1' is not an IP address"),
    (NetworkSpec("n", bridge="br-much-too-long-name"), "not a valid interface name"),
    (NetworkSpec("n", vif_type="bridge"), "needs a bridge name"),
    (NetworkSpec("n", bridge="br0", vif_type="ovs"), "vif_type must be one of"),
    (NetworkSpec("n", bridge="br0", mtu=10), "mtu 10 is out of range"),
])
def test_invalid_networks_are_refused_with_the_reason(spec, message):
    with pytest.raises(VirtopsError, match=message):
        plan_network(spec)


def test_missing_bridge_is_planned_not_created():
    plan = plan_network(NetworkSpec("private", bridge="vo-ut-nobr", mtu=1500))
    assert plan.changed
    assert plan.describe() == ["ip link add name vo-ut-nobr mtu 1500 type bridge",
                               "ip link set dev vo-ut-nobr up"]


def test_operator_bridge_that_is_missing_is_an_error():
    with pytest.raises(VirtopsError, match="create_bridge is false"):
        plan_network(NetworkSpec("ext", bridge="vo-ut-nobr", create_bridge=False))


def test_a_link_that_is_not_a_bridge_is_not_taken_for_one():
    with pytest.raises(VirtopsError, match="lo exists but is a physical interface"):
        plan_network(NetworkSpec("n", bridge="lo"))


def test_networks_without_a_host_bridge_need_nothing():
    assert not plan_network(NetworkSpec("libvirt", vif_type="network")).changed


# --------------------------------------------------------------------------- readiness


def test_bridges_of_takes_bridged_networks_only():
    assert bridges_of({
        "a": {"bridge": "br-a"},  # vif_type defaults to bridge
        "b": {"bridge": "br-b", "vif_type": "vxlan"},
        "c": {"bridge": "br-c", "vif_type": "direct"},
        "d": {"vif_type": "network"},
        "e": {"bridge": "br-a", "vif_type": "vlan"},
    }) == ["br-a", "br-b"]


def test_ready_host(tmp_path):
    ensure_virt_record(str(tmp_path / "etc"), "qemu", "/nonexistent", check_mode=False)
    (tmp_path / "instances").mkdir()
    result = check_readiness(ReadinessConfig(
        libvirt_uri="test:///default", instances_path=str(tmp_path / "instances"),
        state_dir=str(tmp_path / "etc"), min_free_ram_mb=0, min_free_disk_gb=0,
        python=sys.executable, python_libraries=("json",)))
    assert result["problems"] == []
    assert result["summary"]["ready"] and result["summary"]["virt_type"]["virt_type"] == "qemu"
    assert result["lines"] == [
        "libvirt test:///default: reachable",
        "virt type: qemu (forced by virtops_virt_type, forced)",
        "free: %d MiB RAM, %s GiB disk" % (
            result["summary"]["free_ram_mb"], result["summary"]["free_disk_gb"]),
        "python libraries: all importable",
        "ready"]


def test_each_problem_says_what_to_fix(tmp_path):
    result = check_readiness(ReadinessConfig(
        libvirt_uri="qemu:///system?socket=%s" % (tmp_path / "none"),
        instances_path=str(tmp_path / "instances"), state_dir=str(tmp_path / "etc"),
        bridges=("vo-ut-nobr",), min_free_ram_mb=10 ** 9, python=sys.executable,
        python_libraries=("json", "no_such_library_here")))
    problems = "\n".join(result["problems"])
    assert not result["summary"]["ready"]
    assert "libvirt does not answer" in problems and "start libvirtd" in problems
    assert "no virt type recorded in %s/host.json" % (tmp_path / "etc") in problems
    assert "below virtops_min_free_ram_mb" in problems
    assert "instances path %s does not exist" % (tmp_path / "instances") in problems
    assert "bridge vo-ut-nobr is missing" in problems
    assert "cannot import no_such_library_here" in problems
    assert "json" not in result["summary"]["python"]["missing"]
    assert result["lines"][-1] == "NOT READY: 6 problem(s)"
