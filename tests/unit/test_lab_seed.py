# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab seeds each host's /etc/libvirt with the machine's configuration, not its objects."""
from __future__ import annotations

import shutil

from tests.lab.lab import _machine_state


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
