# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real config drive images, read back by pycdlib, xorriso, mtools, blkid and cloud-init.

cloud-init's own ConfigDrive reader runs in a child interpreter (Debian's python3, where the
``cloud-init`` package lives) so its logging and globals stay out of this process, and only
its reader and network converter run: nothing is written to this host.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    VFAT_SIZE_BYTES,
    ConfigDriveResult,
    build_config_drive,
    detect_format,
    inspect_config_drive,
    read_config_drive,
)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    InstanceMetadata,
    config_drive_tree,
    content_digest,
)

UUID = "6f0c7a52-3d5e-4b1a-9f2c-1a2b3c4d5e6f"
PASSWORD = "Cfg-Drive-S3cret!"
SEED = os.urandom(512)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm3xq8Y2x0K6f7gJH3d2pLw9nVt4sQe1rZ5uT0aBcDe ops@ctl"
USER_DATA = "#cloud-config\nwrite_files:\n- path: /tmp/x\n  content: hi\n"
MAC = "fa:16:3e:12:34:56"
NETWORK_INFO = [{
    "id": "3b7d9e10-aaaa-4bbb-8ccc-ddddeeeeffff",
    "address": MAC,
    "type": "bridge",
    "network": {
        "id": "net-private", "label": "private", "bridge": "br-private",
        "meta": {"mtu": 1500},
        "subnets": [{"cidr": "10.10.0.0/24", "gateway": {"address": "10.10.0.1"},
                     "dns": [{"address": "10.10.0.1"}],
                     "ips": [{"address": "10.10.0.50"}]}],
    },
}]
FORMATS = ("iso9660", "vfat")


def make_md(**overrides) -> InstanceMetadata:
    params = {
        "instance": {"uuid": UUID, "name": "web1", "availability_zone": "az1",
                     "meta": {"role": "web"}},
        "keypairs": [{"name": "ops", "public_key": KEY}],
        "user_data": USER_DATA,
        "admin_pass": PASSWORD,
        "files": {"/etc/motd": "welcome\n"},
        "vendor_data": {"cloud-init": "#cloud-config\n{}\n"},
        "network_info": NETWORK_INFO,
    }
    params.update(overrides)
    return dataclasses.replace(InstanceMetadata.from_params(**params), random_seed=SEED)


@pytest.fixture
def instance_dir(tmp_path):
    path = tmp_path / "instances" / UUID
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(str(tmp_path / "instances"), ignore_errors=True)


def tree_of_dir(root: Path) -> dict:
    tree = {}
    for dirpath, _dirs, files in os.walk(str(root)):
        for name in files:
            full = Path(dirpath) / name
            tree[full.relative_to(root).as_posix()] = full.read_bytes()
    return tree


def extract(image: Path, fmt: str, dest: Path) -> Path:
    """Extract with the format's standard tool (not with our own reader)."""
    dest.mkdir()
    if fmt == "iso9660":
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(image),
                        "-extract", "/", str(dest)], check=True, capture_output=True)
        # xorriso restores the read-only modes recorded on the ISO
        for dirpath, dirs, _files in os.walk(str(dest)):
            for name in dirs:
                os.chmod(os.path.join(dirpath, name), 0o755)
        os.chmod(str(dest), 0o755)
    else:
        subprocess.run(["mcopy", "-s", "-n", "-i", str(image), "::/*", str(dest)], check=True,
                       capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    return dest


def blkid(image: Path) -> dict:
    out = subprocess.run(["blkid", "-p", "-o", "export", str(image)], check=True,
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# ---------------------------------------------------------------- the image itself

@pytest.mark.parametrize("fmt", FORMATS)
def test_image_holds_exactly_the_tree(instance_dir, tmp_path, fmt):
    md = make_md()
    target = instance_dir / "disk.config"
    result = build_config_drive(target, md, fmt)
    assert isinstance(result, ConfigDriveResult)
    assert result.path == str(target) and result.format == fmt
    assert result.size_bytes == target.stat().st_size
    assert result.content_digest == content_digest(md)
    assert 0 < result.seconds < 10
    expected = config_drive_tree(md)
    assert extract(target, fmt, tmp_path / "extracted").exists()
    assert tree_of_dir(tmp_path / "extracted") == expected
    read_fmt, tree = read_config_drive(target)
    assert read_fmt == fmt and tree == expected
    assert detect_format(target) == fmt
    assert sorted(p.name for p in instance_dir.iterdir()) == ["disk.config"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_iso9660_label_rock_ridge_and_joliet(instance_dir):
    import pycdlib
    target = instance_dir / "disk.config"
    build_config_drive(target, make_md(), "iso9660")
    ids = blkid(target)
    assert ids["TYPE"] == "iso9660" and ids["LABEL"] == "config-2"
    with open(str(target), "rb") as handle:
        handle.seek(32808)  # the primary volume descriptor's volume identifier
        assert handle.read(32).rstrip(b" ") == b"config-2"
    iso = pycdlib.PyCdlib()
    iso.open(str(target))
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        import io
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path="/openstack/latest/meta_data.json")
        assert json.loads(buf.getvalue())["uuid"] == UUID
    finally:
        iso.close()


def test_vfat_is_64_mib_labelled_and_clean(instance_dir):
    target = instance_dir / "disk.config"
    build_config_drive(target, make_md(), "vfat")
    assert target.stat().st_size == VFAT_SIZE_BYTES == 64 * 1024 * 1024
    ids = blkid(target)
    assert ids["TYPE"] == "vfat" and ids["LABEL"] == "config-2"
    fsck = subprocess.run(["fsck.vfat", "-n", str(target)], capture_output=True, text=True,
                          check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


# ---------------------------------------------------------------- cloud-init reads it

CLOUD_INIT_READER = r"""
import json, sys
from cloudinit.sources.DataSourceConfigDrive import read_config_drive
from cloudinit.sources.helpers import openstack
from cloudinit.net import eni, network_state

root, mac, target = sys.argv[1], sys.argv[2], sys.argv[3]
res = read_config_drive(root)
md = res["metadata"]
net = openstack.convert_net_json(res["networkdata"], known_macs={mac: "eth0"})
ns = network_state.parse_net_config_data(net)
eni.Renderer({"eni_path": "etc/network/interfaces", "netrules_path": None}
             ).render_network_state(ns, target=target)
with open(target + "/etc/network/interfaces") as handle:
    rendered = handle.read()
print(json.dumps({
    "version": res["version"],
    "instance_id": md["instance-id"],
    "uuid": md["uuid"],
    "local_hostname": md["local-hostname"],
    "public_keys": md["public_keys"],
    "random_seed_len": len(md["random_seed"]),
    "userdata": res["userdata"].decode(),
    "files": {k: v.decode() for k, v in res["files"].items()},
    "vendordata": res.get("vendordata"),
    "ec2_instance_id": res["ec2-metadata"].get("instance-id"),
    "network_config": net,
    "eni": rendered,
}))
"""


def cloud_init_python() -> str:
    """An interpreter that can import cloud-init: ours (system site-packages) or Debian's."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(candidate):
            continue
        probe = subprocess.run([candidate, "-c", "import cloudinit.sources.DataSourceConfigDrive"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    pytest.skip("cloud-init cannot be imported (apt-get install --no-install-recommends "
                "cloud-init): its ConfigDrive reader is the one to satisfy")


@pytest.mark.parametrize("fmt", FORMATS)
def test_cloud_init_reads_the_drive(instance_dir, tmp_path, fmt):
    python = cloud_init_python()
    target = instance_dir / "disk.config"
    build_config_drive(target, make_md(), fmt)
    root = extract(target, fmt, tmp_path / "mnt")
    render_root = tmp_path / "guest-root"
    render_root.mkdir()
    proc = subprocess.run([python, "-c", CLOUD_INIT_READER, str(root), MAC, str(render_root)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["version"] == 2
    assert seen["instance_id"] == seen["uuid"] == UUID
    assert seen["local_hostname"] == "web1"
    assert seen["public_keys"] == {"ops": KEY}
    assert seen["random_seed_len"] == 512
    assert seen["userdata"] == USER_DATA
    assert seen["files"] == {"/etc/motd": "welcome\n"}
    assert seen["vendordata"] == {"cloud-init": "#cloud-config\n{}\n"}
    assert seen["ec2_instance_id"] == "i-6f0c7a52"
    physical = [c for c in seen["network_config"]["config"] if c["type"] == "physical"]
    assert len(physical) == 1
    assert physical[0]["name"] == "eth0" and physical[0]["mac_address"] == MAC
    assert physical[0]["mtu"] == 1500
    subnet = physical[0]["subnets"][0]
    assert (subnet["type"], subnet["address"], subnet["netmask"]) == \
        ("static", "10.10.0.50", "255.255.255.0")
    assert {"type": "nameserver", "address": "10.10.0.1"} in seen["network_config"]["config"]
    # what an ifupdown guest would apply
    assert "iface eth0 inet static" in seen["eni"]
    assert "address 10.10.0.50/24" in seen["eni"]
    assert "default gw 10.10.0.1" in seen["eni"]


# ---------------------------------------------------------------- idempotency

@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_tells_whether_a_rebuild_is_needed(instance_dir, fmt):
    target = instance_dir / "disk.config"
    assert inspect_config_drive(target) is None
    md = make_md()
    result = build_config_drive(target, md, fmt)
    info = inspect_config_drive(target)
    assert (info.format, info.content_digest, info.size_bytes) == \
        (fmt, result.content_digest, result.size_bytes)
    # a new random seed and another password value: same digest, nothing to do
    again = dataclasses.replace(make_md(admin_pass="other"), random_seed=None)
    assert content_digest(again) == info.content_digest
    # new content: the digest says rebuild
    assert content_digest(make_md(user_data="#!/bin/sh\n")) != info.content_digest


def test_rebuild_replaces_the_image_atomically(instance_dir):
    target = instance_dir / "disk.config"
    build_config_drive(target, make_md(), "iso9660")
    before = target.stat().st_ino
    build_config_drive(target, make_md(user_data="#!/bin/sh\necho v2\n"), "vfat")
    assert target.stat().st_ino != before
    fmt, tree = read_config_drive(target)
    assert fmt == "vfat"
    assert tree["openstack/latest/user_data"] == b"#!/bin/sh\necho v2\n"
    assert sorted(p.name for p in instance_dir.iterdir()) == ["disk.config"]


# ---------------------------------------------------------------- failures leave nothing behind

def test_vfat_overflow_is_refused_and_leaves_nothing(instance_dir):
    big = {"/srv/blob%d" % i: os.urandom(16 * 1024 * 1024) for i in range(4)}
    target = instance_dir / "disk.config"
    with pytest.raises(VirtopsError, match="more than a 64 MiB vfat drive holds"):
        build_config_drive(target, make_md(files=big), "vfat")
    assert list(instance_dir.iterdir()) == []


def test_failed_build_keeps_the_previous_image(instance_dir):
    target = instance_dir / "disk.config"
    build_config_drive(target, make_md(), "iso9660")
    good = target.read_bytes()
    big = {"/srv/blob%d" % i: b"\0" * (16 * 1024 * 1024) for i in range(4)}
    with pytest.raises(VirtopsError):
        build_config_drive(target, make_md(files=big), "vfat")
    assert target.read_bytes() == good
    assert sorted(p.name for p in instance_dir.iterdir()) == ["disk.config"]


def test_stale_tmp_symlink_is_not_followed(instance_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    (instance_dir / "disk.config.tmp").symlink_to(victim)
    with pytest.raises(VirtopsError, match="not a regular file"):
        build_config_drive(instance_dir / "disk.config", make_md(), "iso9660")
    assert victim.read_bytes() == b"do not touch"
    (instance_dir / "disk.config.tmp").unlink()
    # a stale regular .tmp from a crashed run is simply replaced
    (instance_dir / "disk.config.tmp").write_bytes(b"half an image")
    build_config_drive(instance_dir / "disk.config", make_md(), "iso9660")
    assert sorted(p.name for p in instance_dir.iterdir()) == ["disk.config"]


def test_bad_requests_are_refused(instance_dir, tmp_path):
    with pytest.raises(VirtopsError, match="format must be one of iso9660, vfat"):
        build_config_drive(instance_dir / "disk.config", make_md(), "udf")
    with pytest.raises(VirtopsError, match="instance directory .* does not exist"):
        build_config_drive(tmp_path / "missing" / "disk.config", make_md())
    (instance_dir / "disk.config").mkdir()
    with pytest.raises(VirtopsError, match="not a regular file"):
        build_config_drive(instance_dir / "disk.config", make_md())
    not_an_image = tmp_path / "junk"
    not_an_image.write_bytes(b"\0" * 40000)
    with pytest.raises(VirtopsError, match="neither an iso9660 nor a vfat image"):
        read_config_drive(not_an_image)


# ---------------------------------------------------------------- the password

@pytest.mark.parametrize("fmt", FORMATS)
def test_admin_pass_is_only_in_the_image(instance_dir, fmt):
    target = instance_dir / "disk.config"
    result = build_config_drive(target, make_md(), fmt)
    for text in (repr(result), str(result), json.dumps(result.to_dict()),
                 repr(inspect_config_drive(target))):
        assert PASSWORD not in text
    _fmt, tree = read_config_drive(target)
    assert json.loads(tree["openstack/latest/meta_data.json"])["admin_pass"] == PASSWORD
    for path, content in tree.items():
        if PASSWORD.encode() in content:
            assert path.endswith("/meta_data.json"), path
    # failures report what went wrong, never the secret
    with pytest.raises(VirtopsError) as info:
        build_config_drive(instance_dir / "nope" / "disk.config", make_md(), fmt)
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.details)
