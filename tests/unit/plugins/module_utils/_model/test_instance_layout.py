# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The instance layout: every path of an instance and of the image cache, spelled once."""
from __future__ import annotations

import ast
from pathlib import Path

from ansible_collections.virtops.compute.plugins.module_utils._model import instance_layout
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DEFAULT_INSTANCES_PATH, InstanceDir, InstanceLayout)

UUID = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
PLUGINS = Path(__file__).resolve().parents[5] / "plugins"


def test_the_layout_places_instances_the_cache_and_locks_under_the_instances_path():
    layout = InstanceLayout("/srv/instances")
    assert layout.instance_dir(UUID) == "/srv/instances/" + UUID
    assert layout.instance_dir(UUID, resize=True) == "/srv/instances/%s_resize" % UUID
    assert layout.base_dir == "/srv/instances/_base"
    assert layout.base_path("ephemeral_1_ext4") == "/srv/instances/_base/ephemeral_1_ext4"
    assert layout.lock_path("migrate-%s" % UUID) == \
        "/srv/instances/locks/virtops-migrate-%s.lock" % UUID
    assert layout.is_base("/srv/instances/_base/abc")
    assert not layout.is_base("/srv/instances/_base/abc/def")
    assert InstanceLayout().instances_path == DEFAULT_INSTANCES_PATH == "/var/lib/virtops/instances"


def test_an_instance_directory_names_nova_s_files():
    files = InstanceLayout("/i").instance(UUID)
    assert isinstance(files, InstanceDir)
    names = ("disk", "disk.info", "disk.config", "libvirt.xml", "console.log", "instance.json")
    assert (files.root_disk, files.disk_info, files.config_drive, files.domain_xml,
            files.console_log, files.record) == tuple("/i/%s/%s" % (UUID, n) for n in names)
    assert instance_layout.DISK_NAMES == ("disk", "disk.local", "disk.swap", "disk.config")


def _string_constants(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_no_plugin_code_spells_out_the_default_instances_path_or_an_instance_file_name():
    """Docstrings and documentation may name them; code takes them from the layout."""
    spelled = {DEFAULT_INSTANCES_PATH, "disk.info", "disk.config", "disk.local", "disk.swap",
               "libvirt.xml", "console.log", "instance.json", "nvram.fd", "_base"}
    layout_file = PLUGINS / "module_utils" / "_model" / "instance_layout.py"
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        if path == layout_file or "doc_fragments" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        docs = {id(node.body[0].value) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                and node.body and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in spelled and id(node) not in docs:
                found.append("%s:%d %r" % (path.relative_to(PLUGINS), node.lineno, node.value))
    assert found == []
