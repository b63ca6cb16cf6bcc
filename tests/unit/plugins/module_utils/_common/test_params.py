# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module parameters reach the drivers one way: by option name into the driver's dataclass.

The last test reads each module's documented options (ansible-doc, doc fragments included)
and the fields of its parameter class, so an option renamed on one side only fails here
instead of silently taking the driver's default."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from typing import Optional

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.params import (
    params_from_module, without_none)
from ansible_collections.virtops.compute.plugins.module_utils._compute.build import BuildParams
from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import VmImageParams
from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import DomainParams
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import HostConfig
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import (
    ReadinessConfig)
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import VmXmlParams
from ansible_collections.virtops.compute.plugins.module_utils._migration.migrate import MigrateParams
from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec


@dataclasses.dataclass(frozen=True)
class Params:
    name: str
    size: int = 1
    spec: Optional[dict] = None


def test_each_field_comes_from_the_option_of_its_name_and_other_options_stay_behind():
    assert params_from_module(Params, {"name": "web", "size": 2, "plug": True}) == \
        Params("web", 2)


def test_unset_suboptions_are_left_out_only_where_asked_and_computed_values_win():
    given = {"name": "web", "spec": {"a": 1, "b": None, "c": [{"d": None, "e": 2}]}}
    assert params_from_module(Params, given, sparse=("spec",), size=3) == \
        Params("web", 3, {"a": 1, "c": [{"e": 2}]})
    assert params_from_module(Params, given).spec["b"] is None
    assert without_none(None) is None


# module -> (its parameter class, options the module keeps, fields the module computes)
MODULES = {
    "vm_build": (BuildParams, set(), set()),
    "vm_domain": (DomainParams, {"plug_vifs"}, set()),
    "vm_xml": (VmXmlParams, {"state"}, set()),
    "vm_image": (VmImageParams, set(), set()),
    "vm_migrate": (MigrateParams, set(), set()),
    "vm_host_facts": (HostConfig, set(), set()),
    "vm_host_readiness": (ReadinessConfig, {"networks"}, {"bridges", "python_libraries"}),
    "vm_host_network": (NetworkSpec, set(), {"allocation_pools", "cidr", "dns", "gateway",
                                             "id", "port_security", "routes"}),
}


def test_every_documented_option_is_a_field_of_the_modules_parameter_class():
    ansible_doc = pathlib.Path(sys.executable).with_name("ansible-doc")
    if not ansible_doc.exists():
        pytest.skip("ansible-doc is not beside this Python")
    out = subprocess.run([str(ansible_doc), "-j"] + ["virtops.compute.%s" % m for m in MODULES],
                         capture_output=True, text=True, check=True, env=dict(os.environ))
    docs = json.loads(out.stdout)
    for module, (cls, kept, computed) in MODULES.items():
        options = set(docs["virtops.compute.%s" % module]["doc"]["options"])
        fields = {f.name for f in dataclasses.fields(cls)}
        assert (options - fields, fields - options) == (kept, computed), module
