# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layers of plugins/ and which may import which (docs/architecture.md, "Layers").

Every import of the collection's own code is read from the source (ast) and checked against
LAYERS: a layer may import only itself and the layers listed for it, so the folder names tell
a reader what depends on what, and the controller never pulls in host-only code.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "ansible_collections.virtops.compute.plugins."

_BASE = ("module_utils._common", "module_utils._model")
_HOST = _BASE + ("module_utils._libvirt",)
_PARTS = _HOST + ("module_utils._storage", "module_utils._network", "module_utils._guest")
_CONTROLLER = _BASE + ("plugin_utils._scheduler", "plugin_utils._network", "plugin_utils._boot",
                       "plugin_utils._store", "plugin_utils._power")

# layer -> the other layers it may import (itself is always allowed).
LAYERS: Dict[str, Tuple[str, ...]] = {
    # Building blocks and the shared model: no libvirt, no host state, safe on the controller.
    "module_utils._common": (),
    "module_utils._model": ("module_utils._common",),
    # The libvirt access layer: connections, lookups, power states, capabilities.
    "module_utils._libvirt": _BASE,
    # Three peers that never import each other: disks and images, host networking, the guest
    # definition (domain XML, config drive).
    "module_utils._storage": _HOST,
    "module_utils._network": _HOST,
    "module_utils._guest": _HOST,
    # The compute host: claims and records, an instance's storage, domain lifecycle, the build
    # of an instance (Nova's compute manager), host facts and preparation.
    "module_utils._compute": _PARTS,
    # Cold migration and resize, over everything a host has.
    "module_utils._migration": _PARTS + ("module_utils._compute",),
    # Controller side: the scheduler, port allocation, the boot plan. Never host-only code.
    "plugin_utils._scheduler": _BASE,
    "plugin_utils._network": _BASE,
    "plugin_utils._boot": _BASE + ("plugin_utils._scheduler", "plugin_utils._network"),
    # The fleet store: placement's candidates, allocations, port reservations, leases.
    "plugin_utils._store": _BASE + ("plugin_utils._scheduler", "plugin_utils._network"),
    # Power actions by name: Nova's API checks over the fleet listing of _boot.
    "plugin_utils._power": _BASE + ("plugin_utils._boot",),
    # The inventory of servers: reads the compute hosts' libvirt remotely (read-only) and the
    # domains' metadata with the guest definition's own parser, so it alone of the controller
    # layers needs libvirt-python and lxml; playbooks never load it.
    "plugin_utils._inventory": _HOST + ("module_utils._guest",),
    # Plugins: modules run on hosts; filters and lookups run on the controller.
    "modules": _PARTS + ("module_utils._compute", "module_utils._migration"),
    "filter": _CONTROLLER,
    "lookup": _CONTROLLER,
    "action": _CONTROLLER,
    # The inventory plugin: thin, over plugin_utils._inventory.
    "inventory": _BASE + ("plugin_utils._inventory",),
}


def layer_of(dotted: str) -> str:
    """'module_utils._storage.image_cache' -> 'module_utils._storage'; 'modules.vm_xml' -> 'modules'."""
    parts = dotted.split(".")
    return ".".join(parts[:2]) if parts[0] in ("module_utils", "plugin_utils") else parts[0]


def own_imports(path: Path) -> List[Tuple[int, str]]:
    """(line, 'module_utils._storage.image_cache') for each import of the collection's code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            base = node.module[len(PREFIX):]
            if base.count(".") == 1:            # from ...module_utils._storage import image_cache
                found.extend((node.lineno, base + "." + alias.name) for alias in node.names)
            else:
                found.append((node.lineno, base))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name[len(PREFIX):]) for alias in node.names
                         if alias.name.startswith(PREFIX))
    return found


def plugin_files() -> List[Path]:
    return sorted(p for p in (ROOT / "plugins").rglob("*.py")
                  if p.name != "__init__.py" and "doc_fragments" not in p.parts)


def dotted_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT / "plugins").with_suffix("").parts)


def violations() -> List[str]:
    found = []
    for path in plugin_files():
        source = dotted_name(path)
        layer = layer_of(source)
        if layer not in LAYERS:
            found.append("%s: in no layer; add its folder to LAYERS and docs/architecture.md"
                         % source)
            continue
        for line, target in own_imports(path):
            target_layer = layer_of(target)
            if target_layer == "doc_fragments":
                continue
            if target_layer == layer:
                continue
            if target_layer not in LAYERS[layer]:
                found.append("%s:%d imports %s: %s may not import %s"
                             % (source, line, target, layer, target_layer))
    return found


def test_every_plugin_file_imports_only_the_layers_its_own_layer_may_import():
    assert violations() == []


def test_every_package_of_module_utils_and_plugin_utils_is_a_declared_layer():
    packages = ["%s.%s" % (kind, d.name) for kind in ("module_utils", "plugin_utils")
                for d in (ROOT / "plugins" / kind).iterdir() if d.is_dir()
                and d.name != "__pycache__"]
    assert sorted(set(packages) - set(LAYERS)) == []
    stray = [p.name for kind in ("module_utils", "plugin_utils")
             for p in (ROOT / "plugins" / kind).glob("*.py") if p.name != "__init__.py"]
    assert stray == [], "module_utils and plugin_utils hold packages only, one per layer"


@pytest.mark.parametrize("source, target, allowed", [
    ("module_utils._model.flavor", "module_utils._libvirt.connection", False),
    ("plugin_utils._boot.plan", "module_utils._guest.metadata", False),
    ("module_utils._storage.image_cache", "module_utils._network.vif", False),
    ("module_utils._migration.migrate", "module_utils._storage.image_cache", True),
    ("filter.boot", "plugin_utils._boot.plan", True),
    ("inventory.servers", "plugin_utils._inventory.servers", True),
    ("inventory.servers", "module_utils._libvirt.connection", False),
    ("plugin_utils._inventory.servers", "module_utils._guest.config", True),
    ("plugin_utils._inventory.servers", "module_utils._compute.host_facts", False),
])
def test_the_rule_table_reads_as_documented(source, target, allowed):
    assert (layer_of(target) in LAYERS[layer_of(source)]) is allowed
