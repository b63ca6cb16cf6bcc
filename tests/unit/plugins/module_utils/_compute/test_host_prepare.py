# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host preparation logic: the virt type record, libvirt daemons, networks plan, readiness."""
from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import (
    Daemon, ReadinessConfig, bridges_of, check_readiness, ensure_libvirt_running,
    ensure_virt_record, pid_from_file, pid_runs, port_security_problem)
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
        "port security: nftables ok",
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


def test_port_security_is_checked_the_way_the_firewall_driver_filters(tmp_path, monkeypatch):
    assert port_security_problem("nftables", "clean-traffic", "test:///default") == ""
    no_filter = port_security_problem("nwfilter", "no-such-filter", "test:///default")
    assert no_filter.startswith("libvirt has no nwfilter no-such-filter, which filtered ports need")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda name, path=None: None)
    assert port_security_problem("nftables", "clean-traffic", "test:///default").startswith(
        "nft is missing, and filtered ports need it")
