# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disk builder's one qcow2-or-raw decision and its growing, with real qemu-img."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import ImageCache
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_disks import (
    DiskBuilder, DiskPlan, backend_for_format, plan_disk)

MIB = 1024 ** 2


def test_the_qcow2_backend_makes_an_overlay_with_its_backing_format_pinned():
    assert plan_disk("disk.local", "qcow2", 5, "/i/_base/ephemeral_1_ext4", "raw") == DiskPlan(
        "disk.local", "qcow2", 5, backing="/i/_base/ephemeral_1_ext4", backing_format="raw")


def test_the_flat_backend_makes_a_raw_copy_and_needs_a_raw_base():
    assert plan_disk("disk", "flat", 5, "/i/_base/x", "raw") == DiskPlan(
        "disk", "raw", 5, copy_of="/i/_base/x")
    with pytest.raises(VirtopsError, match="flat backend needs a raw base"):
        plan_disk("disk", "flat", 5, "/i/_base/x", "qcow2")
    with pytest.raises(VirtopsError, match="backend must be one of qcow2, flat"):
        plan_disk("disk", "lvm", 5, "/i/_base/x", "raw")


def test_a_disk_s_format_tells_which_backend_made_it():
    assert [backend_for_format(f) for f in ("qcow2", "raw")] == ["qcow2", "flat"]


@pytest.mark.parametrize("backend, fmt", [("qcow2", "qcow2"), ("flat", "raw")])
def test_swap_is_planned_and_built_from_its_formatted_base(tmp_path, backend, fmt):
    builder = DiskBuilder(ImageCache(str(tmp_path / "instances")))
    plan = builder.swap_plan(16, backend, check_mode=False)
    assert (plan.name, plan.format, plan.size) == ("disk.swap", fmt, 16 * MIB)
    assert (tmp_path / "instances" / "_base" / "swap_16").is_file()
    instance = tmp_path / "instances" / "u"
    instance.mkdir()
    state = builder.ensure(str(instance), plan, check_mode=False)
    assert state.action == "created" and state.format == fmt
    assert (state.backing_file is not None) == (backend == "qcow2")


def test_growing_never_shrinks_and_check_mode_only_says_so(tmp_path):
    builder = DiskBuilder(ImageCache(str(tmp_path / "instances")))
    builder.qemu_img.create(str(tmp_path / "disk"), "qcow2", 8 * MIB)
    would = builder.grow(str(tmp_path), "disk", "qcow2", 16 * MIB, check_mode=True)
    assert (would.action, would.previous_size) == ("would grow", 8 * MIB)
    assert builder.qemu_img.info(str(tmp_path / "disk"), "qcow2").virtual_size == 8 * MIB
    grown = builder.grow(str(tmp_path), "disk", "qcow2", 16 * MIB, check_mode=False)
    assert (grown.action, grown.previous_size, grown.virtual_size) == ("grown", 8 * MIB, 16 * MIB)
    kept = builder.grow(str(tmp_path), "disk", "qcow2", 4 * MIB, check_mode=False)
    assert (kept.action, kept.previous_size, kept.virtual_size) == ("unchanged", None, 16 * MIB)
