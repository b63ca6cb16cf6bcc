# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-process build (vm_build's driver) without a libvirtd: the claim check of check
mode, the step a failure names and what it leaves for the cleanup, on real files with real
qemu-img and libvirt's test driver. The whole build on a real libvirtd is proven by the boot
integration tests (tests/integration/test_boot.py), which run it through playbooks/boot.yml."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.build import (
    STEPS, BuildParams, BuildStepFailed, Builder, build_instance)

libvirt = pytest.importorskip("libvirt")

UUID = "3b0c8d1e-2f4a-4c6b-9d8e-7a6b5c4d3e2f"
MIB = 1024 ** 2
ROOT = tempfile.gettempdir()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A 16 MiB qcow2 made on the spot."""
    path = tmp_path_factory.mktemp("img") / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    return path


def params(tmp_path: Path, image_path: Path, **over) -> BuildParams:
    values = dict(
        instance={"uuid": UUID, "name": "web-1", "host": "c1", "metadata": {}},
        flavor={"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1},
        image={"name": "tiny", "url": str(image_path), "disk_format": "qcow2",
               "allow_unverified": True, "id": "tiny"},
        instances_path=str(tmp_path / "instances"), state_dir=str(tmp_path / "state"),
        virt_type="qemu", image_roots=[ROOT], libvirt_uri="test:///default")
    values.update(over)
    return BuildParams(**values)


def record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "instances" / UUID / "instance.json").read_text())


def test_check_mode_checks_the_claim_and_writes_nothing(tmp_path, image):
    result = build_instance(params(tmp_path, image), check_mode=True)
    assert result.checked_only and result.power_state == "absent" and result.msg == "claimed"
    assert result.steps["claim"]["changed"] and list(result.steps) == ["claim"]
    assert not (tmp_path / "instances" / UUID).exists()


def test_a_host_too_small_fails_the_claim_step_and_writes_nothing(tmp_path, image):
    too_small = params(tmp_path, image, limits={"memory_mb": 64})
    for check_mode in (True, False):
        with pytest.raises(BuildStepFailed) as failed:
            build_instance(too_small, check_mode=check_mode)
        assert failed.value.step == "claim"
        assert "memory" in str(failed.value.error).lower()
    assert not (tmp_path / "instances" / UUID).exists()


def test_an_image_that_fails_its_checksum_fails_the_image_step_after_the_claim(tmp_path, image):
    wrong = params(tmp_path, image, image={"name": "tiny", "url": str(image), "id": "tiny",
                                           "disk_format": "qcow2", "checksum": "sha256:" + "0" * 64})
    with pytest.raises(BuildStepFailed) as failed:
        build_instance(wrong)
    assert failed.value.step == "image"
    assert "checksum" in str(failed.value.error).lower()
    # The claim stays for the caller's cleanup (the boot role's rescue releases it), and the
    # record says where the build was.
    assert (record(tmp_path)["vm_state"], record(tmp_path)["task_state"]) == ("building", "spawning")
    assert not [name for name in os.listdir(tmp_path / "instances" / UUID) if name.startswith("disk")]


def test_the_steps_run_in_novas_order_and_a_definition_failure_names_the_xml_step(tmp_path, image):
    # libvirt's test driver has no qemu capabilities, so the definition step is refused: the
    # steps before it ran, in order, and made the disks and the config drive.
    conn = libvirt.open("test:///default")
    try:
        builder = Builder(params(tmp_path, image, config_drive=True), conn=conn)
        with pytest.raises(BuildStepFailed) as failed:
            builder.run()
    finally:
        conn.close()
    assert failed.value.step == "xml"
    assert list(builder.result.steps) == ["claim", "image"]
    assert list(builder.result.timings) == ["claim", "image"]
    made = set(os.listdir(tmp_path / "instances" / UUID))
    assert {"disk", "disk.info", "disk.config", "instance.json"} <= made
    assert builder.result.image_base and os.path.exists(builder.result.image_base)
    assert STEPS == ("claim", "image", "vif", "xml", "domain")


def test_a_vnc_listen_that_is_not_an_ip_address_is_refused_before_the_claim(tmp_path, image):
    with pytest.raises(VirtopsError, match="vnc_listen must be an IP address.*'compute1'"):
        params(tmp_path, image, vnc_listen="compute1")
    assert not (tmp_path / "instances").exists()
    assert params(tmp_path, image, vnc_listen="192.0.2.11").vnc_listen == "192.0.2.11"
