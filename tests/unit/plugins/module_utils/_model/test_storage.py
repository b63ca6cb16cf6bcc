# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's images_type and its rbd settings, read strictly."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import HostStorage, RbdSettings

SECRET = "5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10"


def test_local_images_types_need_no_settings_and_are_not_shared_storage():
    for images_type in ("qcow2", "flat"):
        storage = HostStorage.from_values(images_type)
        assert storage.rbd is None and not storage.shared


def test_rbd_takes_nova_defaults_for_pool_and_ceph_conf_and_is_shared_storage():
    storage = HostStorage.from_values("rbd", {"user": "nova", "secret_uuid": SECRET.upper()})
    assert storage.shared
    assert storage.rbd == RbdSettings(user="nova", secret_uuid=SECRET, pool="vms", ceph_conf="/etc/ceph/ceph.conf")
    assert RbdSettings.from_dict(storage.rbd.to_dict()) == storage.rbd


@pytest.mark.parametrize("images_type, rbd, message", [
    ("lvm", None, "images_type must be one of qcow2, flat, rbd"),
    ("rbd", None, "images_type rbd needs rbd settings"),
    ("qcow2", {"user": "nova"}, "rbd settings are given but images_type is qcow2"),
    ("rbd", {"user": "client.nova", "secret_uuid": SECRET}, "without 'client.'"),
    ("rbd", {"user": "nova", "secret_uuid": "not-a-uuid"}, "UUID of the libvirt secret"),
    ("rbd", {"user": "nova", "secret_uuid": SECRET, "pool": "vms/x"}, "a Ceph pool name"),
    ("rbd", {"user": "nova", "secret_uuid": SECRET, "ceph_conf": "ceph.conf"}, "absolute path"),
    ("rbd", {"user": "nova", "secret_uuid": SECRET, "images_rbd_pool": "vms"}, "unknown key"),
])
def test_a_wrong_storage_setting_is_refused_with_what_to_write(images_type, rbd, message):
    with pytest.raises(VirtopsError, match=message.replace("(", r"\(")):
        HostStorage.from_values(images_type, rbd)


def test_instance_disks_in_rbd_have_novas_names_and_the_monitors_are_address_port_pairs():
    from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdDisks, rbd_image_name
    settings = RbdSettings(user="nova", secret_uuid="5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10", pool="vms")
    assert rbd_image_name("u-1", "disk.config") == "u-1_disk.config"
    disks = RbdDisks.from_values(settings, ["192.0.2.2:6789", "[2001:db8::2]:3300"])
    assert disks.hosts == (("192.0.2.2", "6789"), ("2001:db8::2", "3300"))
    assert disks.source_name("u-1", "disk") == "vms/u-1_disk"
    for bad in (["192.0.2.2"], ["192.0.2.2:port"], []):
        with pytest.raises(VirtopsError):
            RbdDisks.from_values(settings, bad)
