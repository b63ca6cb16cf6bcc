# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vm_xml module as Ansible runs it: check mode, real run, check again, run again.

The module file is executed with an argument file, exactly as Ansible's module runner does;
it reads capabilities from the root-namespace libvirtd (qemu:///system) and defines nothing.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from ansible_collections.virtops.compute.plugins.modules import vm_xml as vm_xml_module
from tests.fixtures.modules import run_module_file

UUID = str(uuid.uuid4())


def vif(mac="fa:16:3e:12:34:56"):
    return {"id": "5e6f7a8b-0000-4000-8000-000000000001", "address": mac, "type": "bridge",
            "details": {"port_filter": True},
            "network": {"id": "n1", "label": "private", "bridge": "br-private",
                        "meta": {"mtu": 1500},
                        "subnets": [{"cidr": "10.10.0.0/24", "ips": [{"address": "10.10.0.5"}]}]}}


def args(instances: Path, **over) -> dict:
    state_dir = instances / "state"
    state_dir.mkdir(exist_ok=True)
    (state_dir / "host.json").write_text('{"virt_type": "qemu", "reason": "recorded for test"}')
    data = {"instance": {"uuid": UUID, "name": "vmxml-mod-" + UUID[:8]},
            "flavor": {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                       "ephemeral_gb": 1},
            "image": {"id": "tiny", "properties": {"hw_qemu_guest_agent": "yes"}},
            "disk_formats": {"disk": "qcow2", "disk.local": "qcow2"},
            "network_info": [vif()], "config_drive": True,
            "instances_path": str(instances), "state_dir": str(state_dir)}
    data.update(over)
    return data


def run_module(tmp_path: Path, module_args: dict, check: bool = False, diff: bool = False):
    return run_module_file(vm_xml_module, tmp_path, module_args, check, diff)[1]


def test_check_run_check_run(var_tmp, tmp_path):
    path = var_tmp / UUID / "libvirt.xml"
    first = run_module(tmp_path, args(var_tmp), check=True, diff=True)
    assert first["changed"] is True and not path.exists()
    assert first["diff"]["before"] == "" and first["diff"]["after"] == first["xml"]
    assert first["virt_type"] == "qemu" and first["virt_type_reason"] == "recorded for test"

    real = run_module(tmp_path, args(var_tmp))
    assert real["changed"] is True and path.read_text() == real["xml"]
    # no created_at given: the first real run records the time, later runs keep it
    assert real["disk_info"]["mapping"]["disk.config"]["dev"] == "hda"
    assert set(real["timings"]) == {"inputs", "host", "design", "write"}

    again = run_module(tmp_path, args(var_tmp), check=True, diff=True)
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]
    assert run_module(tmp_path, args(var_tmp))["changed"] is False


def test_a_flavor_change_is_reported_as_a_diff(var_tmp, tmp_path):
    run_module(tmp_path, args(var_tmp))
    bigger = args(var_tmp, flavor={"name": "m1.small", "vcpus": 2, "ram_mb": 256,
                                   "root_gb": 1, "ephemeral_gb": 1})
    result = run_module(tmp_path, bigger, check=True, diff=True)
    assert result["changed"] is True
    assert "<vcpu>1</vcpu>" in result["diff"]["before"]
    assert "<vcpu>2</vcpu>" in result["diff"]["after"]


def test_a_changed_mac_fails_and_leaves_the_file_alone(var_tmp, tmp_path):
    run_module(tmp_path, args(var_tmp))
    path = var_tmp / UUID / "libvirt.xml"
    before = path.read_text()
    result = run_module(tmp_path, args(var_tmp, network_info=[vif("fa:16:3e:65:43:21")]))
    assert result["failed"] is True
    assert "records fa:16:3e:12:34:56 for this port" in result["msg"]
    assert path.read_text() == before


def test_refusals_come_back_as_messages(var_tmp, tmp_path):
    result = run_module(tmp_path, args(var_tmp, instance={"uuid": UUID, "name": "a/b"}))
    assert result["failed"] is True and "invalid instance name 'a/b'" in result["msg"]
    # (UEFI where no firmware is installed: tests/unit/plugins/module_utils/_guest/test_designer.py; this machine has OVMF.)
    coreboot = args(var_tmp, image={"id": "x", "properties": {"hw_firmware_type": "coreboot"}})
    result = run_module(tmp_path, coreboot)
    assert result["failed"] is True and "'coreboot'" in result["msg"] and "bios, uefi" in result["msg"]
    missing = args(var_tmp, disk_formats=None)
    result = run_module(tmp_path, missing)
    assert result["failed"] is True and "the format of disk is unknown" in result["msg"]
