# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab seeds each host's /etc/libvirt with the machine's configuration, not its objects,
and never takes a daemon of the machine for one of its hosts'."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from tests.lab.lab import _machine_state, pid_alive


def _machine_etc(root):
    files = [
        "libvirtd.conf", "qemu.conf", "nwfilter/clean-traffic.xml",
        "qemu/virtops-demo.xml", "qemu/autostart/virtops-demo.xml",
        "qemu/networks/default.xml", "qemu/networks/autostart/default.xml",
        "storage/pool1.xml", "storage/autostart/pool1.xml", "secrets/abc.xml",
    ]
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<x/>")
    return root


def test_a_lab_host_gets_the_daemon_configuration_and_stock_nwfilters(tmp_path):
    etc = _machine_etc(tmp_path / "etc-libvirt")
    copy = tmp_path / "host"
    shutil.copytree(etc, copy, symlinks=True, ignore=_machine_state)
    assert (copy / "libvirtd.conf").is_file()
    assert (copy / "qemu.conf").is_file()
    assert (copy / "nwfilter" / "clean-traffic.xml").is_file()


def test_a_lab_host_inherits_none_of_the_machines_domains_networks_pools_or_secrets(tmp_path):
    etc = _machine_etc(tmp_path / "etc-libvirt")
    copy = tmp_path / "host"
    shutil.copytree(etc, copy, symlinks=True, ignore=_machine_state)
    copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*.xml"))
    assert copied == ["nwfilter/clean-traffic.xml"]


def test_a_recorded_pid_now_held_by_a_daemon_of_this_machine_is_not_a_lab_hosts():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and ip")
    sleep = os.path.realpath(shutil.which("sleep"))
    here = subprocess.Popen([sleep, "30"])
    netns = "vo-unit-%s" % uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", netns], check=True)
    there = subprocess.Popen(["ip", "netns", "exec", netns, sleep, "30"])
    try:
        for _attempt in range(50):  # ip netns exec execs sleep in the same process
            if os.path.realpath(os.readlink("/proc/%d/exe" % there.pid)) == sleep:
                break
            subprocess.run([sleep, "0.05"], check=True)
        assert pid_alive(there.pid, sleep) is True
        assert pid_alive(here.pid, sleep) is False      # same binary, this machine's namespace
        assert pid_alive(here.pid) is True
    finally:
        for proc in (here, there):
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False)
