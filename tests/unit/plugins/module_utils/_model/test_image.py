# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One image model: the controller's catalog entry and the host's vm_image option agree."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.image import (
    ImageProperties, ImageSource)

SUM = "sha256:" + "a" * 64
ENTRY = {"url": "http://images/cirros.qcow2", "disk_format": "qcow2", "checksum": SUM,
         "min_disk": "1", "min_ram": 64, "properties": {"hw_disk_bus": "virtio"}}


def test_the_host_reads_what_the_controller_sends_as_the_same_image():
    sent = ImageSource.from_catalog("cirros", ENTRY).to_dict()
    on_host = ImageSource.from_dict(sent)
    assert on_host.to_dict() == sent
    assert (on_host.id, on_host.min_disk, on_host.min_ram) == (sent["id"], 1, 64)
    assert on_host.base_name == ImageSource.from_catalog("cirros", ENTRY).base_name


def test_an_entry_without_id_gets_one_id_on_both_sides_and_a_new_one_for_new_data():
    controller = ImageSource.from_catalog("cirros", ENTRY)
    host = ImageSource.from_dict(ENTRY)
    assert controller.id == host.id and controller.base_name == host.base_name
    changed = ImageSource.from_dict(dict(ENTRY, checksum="sha256:" + "b" * 64))
    assert changed.id != host.id and changed.base_name != host.base_name
    assert ImageSource.from_dict(dict(ENTRY, id="cirros-0.6")).id == "cirros-0.6"


@pytest.mark.parametrize("change, message", [
    ({"min_disk": -1}, "min_disk cannot be negative"),
    ({"min_ram": 1.5}, "min_ram must be an integer, got 1.5"),
    ({"min_ram": True}, "min_ram must be an integer, got True"),
    ({"allow_unverified": "yes"}, "allow_unverified must be true or false"),
    ({"properties": ["hw_disk_bus"]}, "properties must be a mapping"),
])
def test_controller_and_host_refuse_the_same_entries_with_the_same_words(change, message):
    with pytest.raises(VirtopsError, match=message):
        ImageSource.from_catalog("cirros", dict(ENTRY, **change))
    with pytest.raises(VirtopsError, match=message):
        ImageSource.from_dict(dict(ENTRY, **change))


@pytest.mark.parametrize("change, message", [
    ({"disk_format": "vhd"}, "disk_format must be one of raw, qcow2, vmdk, iso, aki, ari"),
    ({"checksum": None}, "has no checksum"),
    ({"size": 3}, r"unknown key\(s\) size"),
])
def test_the_controller_also_refuses_what_the_catalog_may_not_hold(change, message):
    with pytest.raises(VirtopsError, match=message):
        ImageSource.from_catalog("cirros", dict(ENTRY, **change))


def test_an_unverified_entry_is_taken_only_when_it_says_so():
    bare = {k: v for k, v in ENTRY.items() if k != "checksum"}
    with pytest.raises(VirtopsError, match="has no checksum"):
        ImageSource.from_dict(bare).require_verifiable()
    allowed = ImageSource.from_catalog("cirros", dict(bare, allow_unverified=True))
    assert allowed.to_dict()["allow_unverified"] is True and "checksum" not in allowed.to_dict()


@pytest.mark.parametrize("written, read", [("yes", True), ("True", True), ("off", False),
                                           (False, False), ("1", True)])
def test_a_guest_agent_property_reads_as_glance_writes_booleans(written, read):
    assert ImageProperties.from_dict({"hw_qemu_guest_agent": written}).hw_qemu_guest_agent is read


def test_a_guest_agent_property_that_is_not_a_boolean_is_refused():
    with pytest.raises(VirtopsError, match="hw_qemu_guest_agent must be a boolean"):
        ImageProperties.from_dict({"hw_qemu_guest_agent": "maybe"})
