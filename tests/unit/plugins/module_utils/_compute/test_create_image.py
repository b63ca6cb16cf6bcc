# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_image's driver on real files with real qemu-img: decisions, order of refusals, check
mode, idempotency, clean failure, removal and cache ageing; and the module as Ansible runs it.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    read_config_drive)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_write_json, qemu_access)
from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import (
    VmImageParams, clean_cache, config_drive_wanted, ensure_absent, ensure_present,
    plan_present)
from ansible_collections.virtops.compute.plugins.modules import vm_image as vm_image_module
from tests.fixtures.hostile_images import build_corpus
from tests.fixtures.modules import run_module_file

from ansible_collections.virtops.compute.plugins.module_utils._common.process import Result
from ansible_collections.virtops.compute.plugins.module_utils._storage.rbd import RbdCli
from tests.unit.plugins.module_utils._storage.test_rbd import (
    FSID as RBD_FSID, IMAGE_ID as RBD_IMAGE_ID, SETTINGS as RBD_SETTINGS, FakeCluster)

GIB = 1024 ** 3
MIB = 1024 ** 2
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm3xq8Y2x0K6f7gJH3d2pLw9nVt4sQe1rZ5uT0aBcDe ops@ctl"
PASSWORD = "Vm-Image-S3cret!"
TEST_DRIVER_RUNNING_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"  # libvirt test:///default
# pytest's tmp_path and tmp_path_factory directories live under the temporary directory.
ROOT = tempfile.gettempdir()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A 64 MiB qcow2 with some data in it."""
    directory = tmp_path_factory.mktemp("img")
    raw = directory / "img.raw"
    with open(raw, "wb") as handle:
        handle.truncate(64 * MIB)
        handle.seek(MIB)
        handle.write(b"virtops" * 10000)
    path = directory / "img.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def sha256(path: Path):
    if not path.exists():
        return None
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def params(tmp_path: Path, image_path: Path, **over) -> VmImageParams:
    values = dict(
        instance={"uuid": over.pop("uuid", "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"),
                  "name": "web1", "availability_zone": "az1", "metadata": {"role": "web"}},
        image={"url": str(image_path), "disk_format": "qcow2", "checksum": sha256(image_path),
               "id": "tiny"},
        flavor={"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1},
        instances_path=str(tmp_path / "instances"), virt_type="qemu",
        libvirt_uri="test:///default",   # no libvirtd needed; its "test" domain runs
        image_roots=[ROOT])
    values.update(over)
    for key in ("image", "kernel", "ramdisk"):
        given = values.get(key)
        if given and not given.get("checksum") and "allow_unverified" not in given:
            values[key] = dict(given, allow_unverified=True)   # test images made on the spot
    return VmImageParams(**values)


def tree(root: Path) -> dict:
    """Every path under root with its size and mtime: what 'writes nothing' compares."""
    if not root.exists():
        return {}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def qemu_info(path: str) -> dict:
    out = subprocess.run(["qemu-img", "info", "--force-share", "--output=json", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# ----------------------------------------------------------------------------- decisions

def test_config_drive_is_built_when_asked_or_mandatory():
    assert config_drive_wanted(True, {})
    assert config_drive_wanted(False, {"img_config_drive": "mandatory"})
    assert config_drive_wanted(False, {"img_config_drive": "Mandatory"})
    assert not config_drive_wanted(False, {"img_config_drive": "optional"})
    assert not config_drive_wanted(False, {})


def test_disk_info_follows_image_properties_and_flavor(tmp_path, image):
    plan = plan_present(params(tmp_path, image, flavor={
        "name": "f", "vcpus": 1, "ram_mb": 128, "root_gb": 1, "ephemeral_gb": 1, "swap_mb": 64},
        config_drive=True))
    mapping = plan.disk_info.to_dict()["mapping"]
    assert [(n, m["bus"], m["dev"], m["type"]) for n, m in mapping.items()] == [
        ("root", "virtio", "vda", "disk"), ("disk", "virtio", "vda", "disk"),
        ("disk.local", "virtio", "vdb", "disk"), ("disk.swap", "virtio", "vdc", "disk"),
        ("disk.config", "ide", "hda", "cdrom")]
    assert mapping["disk"]["boot_index"] == "1"
    # the EC2 block-device-mapping on the drive names the same devices
    assert plan.metadata.instance.ephemeral_device == "/dev/vdb"
    assert plan.metadata.instance.swap_device == "/dev/vdc"

    scsi = dict(params(tmp_path, image).image,
                properties={"hw_disk_bus": "scsi", "hw_machine_type": "q35",
                            "img_config_drive": "mandatory"})
    plan = plan_present(params(tmp_path, image, image=scsi))
    mapping = plan.disk_info.to_dict()
    assert mapping["disk_bus"] == "scsi" and mapping["cdrom_bus"] == "sata"
    assert mapping["mapping"]["disk"]["dev"] == "sda"
    assert mapping["mapping"]["disk.config"] == {"bus": "sata", "dev": "sdb", "type": "cdrom"}

    vfat = plan_present(params(tmp_path, image, config_drive=True, config_drive_format="vfat"))
    assert vfat.disk_info.to_dict()["mapping"]["disk.config"] == \
        {"bus": "virtio", "dev": "vdb", "type": "disk"}


@pytest.mark.parametrize("over, message", [
    ({"uuid": "{0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11}"}, "canonical form"),
    ({"uuid": "../../etc"}, "invalid instance uuid"),
    ({"instance": {"uuid": "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"}}, "instance.name is required"),
    ({"backend": "lvm"}, "backend must be one of qcow2, flat"),
    ({"backend": "flat", "force_raw": False}, "the flat backend needs a raw base"),
    ({"flavor": {"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": -1}}, "root_gb cannot be negative"),
    ({"config_drive": True, "keypairs": [{"name": "ops", "public_key": "a\nb"}]}, "one line"),
    ({"image": {"url": "/x", "disk_format": "vhd"}}, "disk_format 'vhd' is not supported"),
    ({"image": {"url": "/x", "disk_format": "raw", "properties": {"hw_cdrom_bus": "virtio"}},
      "config_drive": True}, "cannot carry a cdrom"),
])
def test_bad_inputs_are_refused_before_anything_is_written(tmp_path, image, over, message):
    with pytest.raises(VirtopsError, match=message):
        ensure_present(params(tmp_path, image, **over))
    assert not (tmp_path / "instances").exists()


def test_min_ram_and_min_disk_are_checked_before_the_download(tmp_path):
    missing = tmp_path / "not-there.qcow2"   # never read: the flavor is refused first
    small_ram = {"url": str(missing), "disk_format": "qcow2", "min_ram": 256}
    with pytest.raises(VirtopsError, match="FlavorMemoryTooSmall"):
        ensure_present(params(tmp_path, missing, image=small_ram))
    big_disk = {"url": str(missing), "disk_format": "qcow2", "min_disk": 2}
    with pytest.raises(VirtopsError, match="FlavorDiskSmallerThanMinDisk"):
        ensure_present(params(tmp_path, missing, image=big_disk))
    assert not (tmp_path / "instances").exists()


def test_image_larger_than_root_disk_is_refused_before_conversion(tmp_path):
    huge = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(huge), "3G"], check=True)
    with pytest.raises(VirtopsError) as refused:
        ensure_present(params(tmp_path, huge, image={"url": str(huge), "disk_format": "qcow2"}))
    assert "FlavorDiskSmallerThanImage" in refused.value.msg
    assert "exceeds the maximum of 1073741824 bytes" in refused.value.msg
    assert refused.value.details["reason"] == "FlavorDiskSmallerThanImage"
    assert os.listdir(tmp_path / "instances" / "_base") == []   # no .part, no .converted
    assert not (tmp_path / "instances" / "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11").exists()
    # root_gb 0: no flavor size check, as in Nova
    result = ensure_present(params(tmp_path, huge, image={"url": str(huge), "disk_format": "qcow2"},
                                   flavor={"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 0}))
    assert result.disks[0]["virtual_size"] == 3 * GIB


# ----------------------------------------------------------------------------- present

def test_check_run_check_run(tmp_path, image):
    p = params(tmp_path, image, config_drive=True, admin_pass=PASSWORD,
               keypairs=[{"name": "ops", "public_key": KEY}],
               flavor={"name": "f", "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                       "ephemeral_gb": 1, "swap_mb": 32})
    instances = tmp_path / "instances"

    preview = ensure_present(p, check_mode=True)
    assert preview.changed and not instances.exists()
    assert preview.base["action"] == "would fetch" and preview.base["virtual_size"] is None
    assert [d["action"] for d in preview.disks] == ["would create"] * 3
    assert preview.config_drive["action"] == "would create"

    real = ensure_present(p)
    assert real.changed and real.base["fetched"] and real.base["format"] == "raw"
    assert real.base["virtual_size"] == 64 * MIB
    assert os.path.basename(real.base["path"]) == hashlib.sha1(b"tiny").hexdigest()
    assert [(d["name"], d["action"], d["virtual_size"]) for d in real.disks] == [
        ("disk", "created", GIB), ("disk.local", "created", GIB),
        ("disk.swap", "created", 32 * MIB)]
    inst = instances / "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
    info = qemu_info(str(inst / "disk"))
    assert info["format"] == "qcow2" and info["virtual-size"] == GIB
    assert info["backing-filename"] == real.base["path"]
    assert info["backing-filename-format"] == "raw"
    assert json.loads((inst / "disk.info").read_text()) == {
        str(inst / "disk"): "qcow2", str(inst / "disk.config"): "raw",
        str(inst / "disk.local"): "qcow2", str(inst / "disk.swap"): "qcow2"}
    assert real.disk_formats == {"disk": "qcow2", "disk.local": "qcow2", "disk.swap": "qcow2",
                                 "disk.config": "raw"}
    fmt, files = read_config_drive(inst / "disk.config")
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert fmt == "iso9660" and meta["uuid"] == "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
    assert meta["admin_pass"] == PASSWORD and meta["public_keys"] == {"ops": KEY}
    assert meta["meta"] == {"role": "web"} and meta["availability_zone"] == "az1"
    assert set(real.timings) == {"lock_wait", "fetch", "inspect", "convert", "checksum_wait",
                                 "create", "config_drive", "total"}
    assert real.timings["fetch"] >= 0 and real.timings["convert"] > 0

    before = tree(instances)
    again = ensure_present(p, check_mode=True)
    assert not again.changed and again.base["action"] == "reused"
    assert [d["action"] for d in again.disks] == ["unchanged"] * 3
    assert again.before == again.after
    assert tree(instances) == before   # check mode touches nothing, not even the base's mtime

    second = ensure_present(p)
    assert not second.changed and not second.base["fetched"]
    assert second.config_drive["action"] == "unchanged"


def test_config_drive_is_rebuilt_only_when_its_content_changes(tmp_path, image):
    p = params(tmp_path, image, config_drive=True, admin_pass=PASSWORD)
    first = ensure_present(p)
    new_password = ensure_present(params(tmp_path, image, config_drive=True, admin_pass="other"))
    assert not new_password.changed   # the value of a password alone never rebuilds it
    renamed = dict(p.instance, hostname="web-one")
    result = ensure_present(params(tmp_path, image, config_drive=True, instance=renamed))
    assert result.changed and result.config_drive["action"] == "rebuilt"
    assert result.before["disk.config"]["content_digest"] == first.config_drive["content_digest"]
    assert result.after["disk.config"]["content_digest"] != first.config_drive["content_digest"]
    vfat = ensure_present(params(tmp_path, image, config_drive=True, instance=renamed,
                                 config_drive_format="vfat"))
    assert vfat.config_drive["action"] == "rebuilt" and vfat.config_drive["format"] == "vfat"


def test_the_config_drive_of_a_running_domain_is_never_replaced(tmp_path, image):
    p = params(tmp_path, image, uuid=TEST_DRIVER_RUNNING_UUID, config_drive=True,
               libvirt_uri="test:///default")
    ensure_present(p)   # first build: the domain cannot have started from it yet
    drive = tmp_path / "instances" / TEST_DRIVER_RUNNING_UUID / "disk.config"
    built = drive.read_bytes()
    renamed = dict(p.instance, hostname="web-one")
    preview = ensure_present(params(tmp_path, image, uuid=TEST_DRIVER_RUNNING_UUID,
                                    config_drive=True, instance=renamed,
                                    libvirt_uri="test:///default"), check_mode=True)
    assert preview.config_drive["action"] == "would rebuild"
    with pytest.raises(VirtopsError, match="the domain is running: stop it first"):
        ensure_present(params(tmp_path, image, uuid=TEST_DRIVER_RUNNING_UUID, config_drive=True,
                              instance=renamed, libvirt_uri="test:///default"))
    assert drive.read_bytes() == built


def test_root_disk_grows_with_the_flavor_and_never_shrinks(tmp_path, image):
    ensure_present(params(tmp_path, image))
    bigger = {"name": "m1.small", "vcpus": 1, "ram_mb": 128, "root_gb": 2}
    preview = ensure_present(params(tmp_path, image, flavor=bigger), check_mode=True)
    assert preview.disks[0]["action"] == "would grow"
    assert preview.before["disk"]["virtual_size"] == GIB
    assert preview.after["disk"]["virtual_size"] == 2 * GIB
    grown = ensure_present(params(tmp_path, image, flavor=bigger))
    assert grown.changed and grown.disks[0]["action"] == "grown"
    assert qemu_info(grown.disks[0]["path"])["virtual-size"] == 2 * GIB
    smaller = ensure_present(params(tmp_path, image))
    assert not smaller.changed and smaller.disks[0]["virtual_size"] == 2 * GIB


def test_flat_backend_copies_the_base(tmp_path, image):
    result = ensure_present(params(tmp_path, image, backend="flat",
                                   flavor={"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1,
                                           "ephemeral_gb": 1}))
    assert [(d["format"], d["backing_file"]) for d in result.disks] == [("raw", None)] * 2
    assert qemu_info(result.disks[0]["path"])["virtual-size"] == GIB
    assert not ensure_present(params(tmp_path, image, backend="flat", flavor={
        "name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1, "ephemeral_gb": 1})).changed


def test_an_iso_image_is_a_cdrom_root_of_its_own_size(tmp_path, corpus):
    iso = corpus["good_iso"]
    result = ensure_present(params(tmp_path, iso.path, image={
        "url": str(iso.path), "disk_format": "iso", "checksum": iso.declared_checksum}))
    assert result.disk_info["mapping"]["disk"] == {"bus": "ide", "dev": "hda", "type": "cdrom",
                                                   "boot_index": "1"}
    assert result.disks[0]["virtual_size"] == iso.virtual_size


def test_every_hostile_image_is_refused_and_leaves_nothing(tmp_path, corpus):
    for name, item in corpus.items():
        if item.good:
            continue
        instances = tmp_path / name
        p = params(tmp_path, item.path, instances_path=str(instances),
                   image={"url": str(item.path), "disk_format": item.declared_format,
                          "checksum": item.declared_checksum})
        with pytest.raises(VirtopsError) as refused:
            ensure_present(p)
        assert item.reason.lower() in refused.value.msg.lower(), (name, refused.value.msg)
        base = instances / "_base"
        assert not base.exists() or os.listdir(base) == [], name
        # refused before the fetch (unsupported format) or after it: no trace either way
        assert not instances.exists() or sorted(os.listdir(instances)) == ["_base", "locks"], name


def test_a_failure_removes_what_the_run_made_and_keeps_the_base(tmp_path, image):
    # A real late failure: injected files too big for a 64 MiB vfat drive, found only when
    # the drive is written, after the disks and disk.info exist.
    too_big = [{"path": "/big", "content": "x" * (63 * MIB)}]
    p = params(tmp_path, image, config_drive=True, config_drive_format="vfat",
               injected_files=too_big,
               flavor={"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1, "swap_mb": 16})
    with pytest.raises(VirtopsError, match="more than a 64 MiB vfat drive holds"):
        ensure_present(p)
    instances = tmp_path / "instances"
    assert not (instances / "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11").exists()
    base = instances / "_base" / hashlib.sha1(b"tiny").hexdigest()
    assert base.is_file() and (instances / "_base" / "swap_16").is_file()   # the cache stays

    # On an existing instance directory, only the files this run made go away.
    inst = instances / "7d1c1e4a-3a55-4c6e-9f51-0b0c3d1a2b3c"
    inst.mkdir()
    (inst / "instance.json").write_text("{}")
    (inst / "disk.config").mkdir()
    with pytest.raises(VirtopsError, match="not a regular file"):
        ensure_present(params(tmp_path, image, uuid=inst.name, config_drive=True))
    assert sorted(os.listdir(inst)) == ["disk.config", "instance.json"]


def test_concurrent_boots_of_one_image_fetch_it_once(tmp_path, image):
    results, errors = [], []

    def boot(index):
        try:
            results.append(ensure_present(params(tmp_path, image, uuid=str(uuid.uuid4()))))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r.base["fetched"] for r in results) == [False, False, False, True]
    assert len({r.base["path"] for r in results}) == 1


# ----------------------------------------------------------------------------- absent, ageing

def test_absent_removes_the_disks_and_never_a_base(tmp_path, image):
    p = params(tmp_path, image, config_drive=True,
               flavor={"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1, "swap_mb": 16})
    made = ensure_present(p)
    inst = Path(made.instance_dir)
    (inst / "instance.json").write_text("{}")
    absent = VmImageParams(instance={"uuid": p.instance["uuid"]}, state="absent",
                           instances_path=p.instances_path, libvirt_uri="test:///default")
    preview = ensure_absent(absent, check_mode=True)
    assert preview.changed and (inst / "disk").exists()
    result = ensure_absent(absent)
    assert sorted(os.path.basename(x) for x in result.removed) == [
        "disk", "disk.config", "disk.info", "disk.swap"]
    assert sorted(os.listdir(inst)) == ["instance.json"]
    assert os.path.isfile(made.base["path"])
    assert not ensure_absent(absent).changed
    (inst / "instance.json").unlink()
    ensure_present(p)
    assert ensure_absent(absent).removed[-1] == str(inst) and not inst.exists()


def test_absent_refuses_while_the_domain_runs(tmp_path):
    inst = tmp_path / "instances" / TEST_DRIVER_RUNNING_UUID
    inst.mkdir(parents=True)
    (inst / "disk").write_bytes(b"")
    absent = VmImageParams(instance={"uuid": TEST_DRIVER_RUNNING_UUID}, state="absent",
                           instances_path=str(tmp_path / "instances"),
                           libvirt_uri="test:///default")
    with pytest.raises(VirtopsError, match="is running: stop or delete it"):
        ensure_absent(absent)
    assert (inst / "disk").exists()


def test_ageing_keeps_what_instances_use_and_what_is_young(tmp_path, image, corpus):
    instances = tmp_path / "instances"
    overlay = ensure_present(params(tmp_path, image))                 # qcow2: backing file
    flat_image = corpus["good_raw"]
    flat = ensure_present(params(tmp_path, flat_image.path, uuid=str(uuid.uuid4()),
                                 backend="flat", image={"url": str(flat_image.path),
                                                        "disk_format": "raw", "id": "flat"}))
    atomic_write_json(os.path.join(flat.instance_dir, "instance.json"),
                      {"uuid": "x", "image": {"id": "flat"}})        # flat: the image id
    old_unused = ensure_present(params(tmp_path, corpus["good_qcow2"].path, uuid=str(uuid.uuid4()),
                                       image={"url": str(corpus["good_qcow2"].path),
                                              "disk_format": "qcow2", "id": "old"}))
    young_unused = ensure_present(params(tmp_path, corpus["good_vmdk_sparse"].path,
                                         uuid=str(uuid.uuid4()),
                                         image={"url": str(corpus["good_vmdk_sparse"].path),
                                                "disk_format": "vmdk", "id": "young"}))
    for result in (old_unused, young_unused):
        ensure_absent(VmImageParams(instance={"uuid": os.path.basename(result.instance_dir)},
                                    state="absent", instances_path=str(instances),
                                    libvirt_uri="test:///default"))
    two_days_ago = time.time() - 2 * 86400
    for result in (overlay, flat, old_unused):
        os.utime(result.base["path"], (two_days_ago, two_days_ago))

    ageing = VmImageParams(state="cache_cleaned", instances_path=str(instances))
    preview = clean_cache(ageing, check_mode=True)
    assert preview.changed and preview.cache["removed"] == [old_unused.base["path"]]
    assert os.path.exists(old_unused.base["path"])
    result = clean_cache(ageing)
    assert result.cache["removed"] == [old_unused.base["path"]]
    assert sorted(result.cache["kept_in_use"]) == sorted([overlay.base["path"], flat.base["path"]])
    assert result.cache["kept_young"] == [young_unused.base["path"]]
    assert not os.path.exists(old_unused.base["path"])
    assert os.stat(overlay.base["path"]).st_mtime > two_days_ago + 86400   # touched
    assert not clean_cache(ageing).changed


# ----------------------------------------------------------------------------- the module

def run_module(tmp_path: Path, module_args: dict, check: bool = False, diff: bool = False):
    return run_module_file(vm_image_module, tmp_path, module_args, check, diff)


def test_the_module_keeps_the_password_out_of_its_output(tmp_path, image):
    args = {"instance": {"uuid": "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11", "name": "web1"},
            "image": {"url": str(image), "disk_format": "qcow2", "allow_unverified": True},
            "flavor": {"vcpus": 1, "ram_mb": 64, "root_gb": 1},
            "config_drive": True, "admin_pass": PASSWORD, "virt_type": "qemu",
            "instances_path": str(tmp_path / "instances"), "image_roots": [ROOT]}
    raw, result = run_module(tmp_path, args, diff=True)
    assert result["changed"] is True and result["config_drive"]["action"] == "created"
    assert PASSWORD not in raw
    assert result["config_drive_path"].endswith("/disk.config")
    assert result["diff"]["before"]["disk"] is None
    raw, again = run_module(tmp_path, args, check=True, diff=True)
    assert again["changed"] is False and PASSWORD not in raw


def test_the_module_reports_refusals_as_messages(tmp_path, image):
    args = {"instance": {"uuid": "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11", "name": "web1"},
            "image": {"url": str(image), "disk_format": "raw", "allow_unverified": True},
            "flavor": {"vcpus": 1, "ram_mb": 64, "root_gb": 1}, "virt_type": "qemu",
            "instances_path": str(tmp_path / "instances"), "image_roots": [ROOT]}
    _raw, result = run_module(tmp_path, args)
    assert result["failed"] is True
    assert "detected format qcow2 but declared raw" in result["msg"]
    _raw, result = run_module(tmp_path, {"state": "present"})
    assert result["failed"] is True and "instance, image, flavor" in result["msg"]


def boot_file(directory: Path, name: str, data: bytes) -> dict:
    path = directory / name
    path.write_bytes(data)
    return {"url": str(path), "checksum": sha256(path), "id": name}


def test_kernel_and_ramdisk_are_fetched_once_and_copied_for_a_direct_kernel_boot(tmp_path, image):
    kernel = boot_file(tmp_path, "vmlinuz", b"\x4d\x5a kernel" * 50000)
    ramdisk = boot_file(tmp_path, "initrd.gz", b"\x1f\x8b ramdisk" * 1000)
    ami = {"url": str(image), "disk_format": "qcow2", "checksum": sha256(image), "id": "tiny",
           "properties": {"kernel_id": "vmlinuz", "ramdisk_id": "initrd.gz"}}
    wanted = params(tmp_path, image, image=ami, kernel=kernel, ramdisk=ramdisk)
    instances = tmp_path / "instances"

    planned = ensure_present(wanted, check_mode=True)
    assert planned.changed and not instances.exists()
    assert {n: f["action"] for n, f in planned.boot_files.items()} == {
        "kernel": "would fetch and copy", "ramdisk": "would fetch and copy"}

    made = ensure_present(wanted)
    inst = instances / "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
    assert (inst / "kernel").read_bytes() == Path(kernel["url"]).read_bytes()
    assert (inst / "ramdisk").read_bytes() == Path(ramdisk["url"]).read_bytes()
    assert (inst / "kernel").stat().st_mode & 0o777 == qemu_access().file_mode
    assert {n: (f["action"], f["fetched"]) for n, f in made.boot_files.items()} == {
        "kernel": ("copied", True), "ramdisk": ("copied", True)}
    assert Path(made.boot_files["kernel"]["base"]).read_bytes() == (inst / "kernel").read_bytes()

    again = ensure_present(wanted)
    assert not again.changed
    assert {f["action"] for f in again.boot_files.values()} == {"unchanged"}
    assert not ensure_present(wanted, check_mode=True).changed

    # A damaged copy in the instance directory is put right from the cache.
    (inst / "kernel").write_bytes(b"damaged")
    repaired = ensure_present(wanted)
    assert repaired.changed and repaired.boot_files["kernel"]["action"] == "copied"
    assert (inst / "kernel").read_bytes() == Path(kernel["url"]).read_bytes()


def test_a_kernel_image_without_its_kernel_or_with_a_wrong_checksum_is_refused(tmp_path, image):
    ami = {"url": str(image), "disk_format": "qcow2", "checksum": sha256(image), "id": "tiny",
           "properties": {"kernel_id": "vmlinuz"}}
    with pytest.raises(VirtopsError, match="has kernel_id=vmlinuz: give kernel"):
        ensure_present(params(tmp_path, image, image=ami))
    assert not (tmp_path / "instances").exists()
    kernel = boot_file(tmp_path, "vmlinuz", b"kernel bytes")
    with pytest.raises(VirtopsError, match="a ramdisk is only used with a kernel"):
        ensure_present(params(tmp_path, image, ramdisk=kernel))
    bad = dict(kernel, checksum="sha256:" + "0" * 64)
    with pytest.raises(VirtopsError, match="checksum mismatch for image %s" % kernel["url"]):
        ensure_present(params(tmp_path, image, image=ami, kernel=bad))
    # Nothing of the instance is left, and no kernel entered the cache; the disk image's base
    # (fetched before) stays, as after any failed build.
    instances = tmp_path / "instances"
    assert [p.name for p in instances.iterdir() if p.name not in ("_base", "locks")] == []
    assert [p for p in (instances / "_base").iterdir() if "part" in p.name] == []
    assert len([p for p in (instances / "_base").iterdir() if p.suffix != ".info"]) == 1


def test_the_running_domain_check_raises_a_libvirt_error_instead_of_reading_it_as_no_domain():
    """Removing disks needs a sure "not running": a lookup libvirt refuses (here a malformed
    uuid) must stop the removal, not count as "no such domain"."""
    pytest.importorskip("libvirt")
    from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import (
        _domain_running)
    assert _domain_running("test:///default", TEST_DRIVER_RUNNING_UUID) is True
    assert _domain_running("test:///default", str(uuid.uuid4())) is False
    with pytest.raises(VirtopsError, match="libvirt lookup of not-a-uuid failed"):
        _domain_running("test:///default", "not-a-uuid")


# --- images_type rbd (a scripted rbd; the real cluster is tests/integration/test_boot_rbd.py) --

def rbd_params(tmp_path: Path, image_path: Path, **over) -> VmImageParams:
    return params(tmp_path, image_path, backend="rbd", rbd=RBD_SETTINGS.to_dict(), **over)


def test_rbd_imports_the_inspected_raw_base_grows_it_and_moves_the_config_drive_into_the_pool(tmp_path, image):
    cluster = FakeCluster()
    p = rbd_params(tmp_path, image, config_drive=True)
    planned = ensure_present(p, check_mode=True, rbd_cli=rbd_cli(cluster))
    assert planned.changed and [d["action"] for d in planned.disks] == ["would import"]
    assert planned.config_drive["action"] == "would create" and cluster.images == {}
    done = ensure_present(p, rbd_cli=rbd_cli(cluster))
    uuid = p.instance["uuid"]
    root, config = "%s_disk" % uuid, "%s_disk.config" % uuid
    assert sorted(cluster.images) == [root, config] and cluster.images[root]["size"] == GIB
    assert done.disks[0]["made"] == "import" and "not raw" in done.disks[0]["reason"]
    assert done.base["format"] == "raw" and done.disk_formats == {"disk": "raw", "disk.config": "raw"}
    imported = [call[-2] for call in cluster.calls if call[5] == "import"]
    assert imported[0] == done.base["path"]
    # The config drive was built locally and is gone from the instance directory.
    assert not os.path.exists(os.path.join(done.instance_dir, "disk.config"))
    again = ensure_present(p, rbd_cli=rbd_cli(cluster))
    assert not again.changed and [d["action"] for d in again.disks] == ["unchanged"]


def test_an_rbd_build_that_fails_removes_the_images_it_made_and_only_those(tmp_path, image):
    cluster = FakeCluster(images={"other_disk": MIB})
    fails = FailingImport(cluster, "_disk.config")
    with pytest.raises(VirtopsError, match="import failed"):
        ensure_present(rbd_params(tmp_path, image, config_drive=True), rbd_cli=rbd_cli(fails))
    assert sorted(cluster.images) == ["other_disk"]


def test_hostile_images_never_reach_the_pool(tmp_path, corpus):
    cluster = FakeCluster()
    for name, item in corpus.items():
        if item.good:
            continue
        p = rbd_params(tmp_path, item.path, instances_path=str(tmp_path / name),
                       image={"url": str(item.path), "disk_format": item.declared_format,
                              "checksum": item.declared_checksum})
        with pytest.raises(VirtopsError):
            ensure_present(p, rbd_cli=rbd_cli(cluster))
    assert cluster.images == {} and "import" not in cluster.verbs()


def test_rbd_refuses_ephemeral_disks_and_settings_without_rbd(tmp_path, image):
    with pytest.raises(VirtopsError, match="ephemeral or swap"):
        with_ephemeral = {"name": "m1.e", "vcpus": 1, "ram_mb": 128, "root_gb": 1, "ephemeral_gb": 1}
        ensure_present(rbd_params(tmp_path, image, flavor=with_ephemeral), rbd_cli=rbd_cli(FakeCluster()))
    with pytest.raises(VirtopsError, match="images_type is qcow2"):
        ensure_present(params(tmp_path, image, rbd=RBD_SETTINGS.to_dict()))


class FailingImport:
    """The scripted rbd, whose import of a name ending in ``suffix`` fails."""

    def __init__(self, cluster, suffix: str) -> None:
        self.cluster, self.suffix = cluster, suffix

    def __call__(self, argv, **kwargs):
        if argv[5] == "import" and argv[-1].endswith(self.suffix):
            return Result(tuple(argv), 1, "", "import failed")
        return self.cluster(argv, **kwargs)


def rbd_cli(runner) -> RbdCli:
    return RbdCli(RBD_SETTINGS, binary="/usr/bin/rbd", ceph_binary="/usr/bin/ceph", runner=runner)


def test_an_rbd_clone_that_cannot_grow_is_removed_and_an_existing_larger_disk_is_kept(tmp_path, image):
    raw = tmp_path / "img.raw"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "raw", str(image), str(raw)], check=True)
    url = "rbd://%s/images/%s/snap" % (RBD_FSID, RBD_IMAGE_ID)
    cluster = FakeCluster(images={"other_disk": MIB}, snapshots=("images/%s@snap" % RBD_IMAGE_ID,))
    p = rbd_params(tmp_path, raw, image={"url": str(raw), "disk_format": "raw", "allow_unverified": True,
                                         "locations": [url]})
    refuses_resize = FailingVerb(cluster, "resize")
    with pytest.raises(VirtopsError, match="resize failed"):
        ensure_present(p, rbd_cli=rbd_cli(refuses_resize))
    assert sorted(cluster.images) == ["other_disk"]
    done = ensure_present(p, rbd_cli=rbd_cli(cluster))
    assert done.disks[0]["made"] == "clone" and done.disks[0]["parent"] == "images/%s@snap" % RBD_IMAGE_ID
    root = "%s_disk" % p.instance["uuid"]
    cluster.images[root]["size"] = 2 * GIB       # grown by someone else: kept, never shrunk
    again = ensure_present(p, rbd_cli=rbd_cli(cluster))
    assert not again.changed and cluster.images[root]["size"] == 2 * GIB


class FailingVerb:
    """The scripted rbd, whose ``verb`` fails."""

    def __init__(self, cluster, verb: str) -> None:
        self.cluster, self.verb = cluster, verb

    def __call__(self, argv, **kwargs):
        if argv[5] == self.verb:
            return Result(tuple(argv), 1, "", "%s failed" % self.verb)
        return self.cluster(argv, **kwargs)
