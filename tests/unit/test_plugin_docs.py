# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every filter of ``plugins/filter/boot.py`` and ``power.py`` is documented in the YAML file of its name beside
it (``ansible-doc -t filter``, the docsite and galaxy-importer read it), and the documentation
names only parameters the filter has: a new filter without its YAML fails here."""
from __future__ import annotations

import inspect
import pathlib

import pytest
import yaml

from ansible_collections.virtops.compute.plugins.filter.boot import FilterModule

FILTER_DIR = pathlib.Path(__file__).resolve().parents[2] / "plugins" / "filter"
FILTERS = FilterModule().filters()
SECTIONS = ("DOCUMENTATION", "EXAMPLES", "RETURN")


def doc_problems(name: str, directory: pathlib.Path = FILTER_DIR) -> list:
    """What is wrong with the sidecar documentation of filter ``name`` (empty when nothing)."""
    path = directory / ("%s.yml" % name)
    if not path.is_file():
        return ["%s has no documentation: write %s with DOCUMENTATION, EXAMPLES and RETURN"
                % (name, path.relative_to(directory.parents[1]))]
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return ["%s: not YAML: %s" % (path.name, exc)]
    if not isinstance(doc, dict):
        return ["%s: must be a mapping with %s" % (path.name, ", ".join(SECTIONS))]
    problems = ["%s: no %s" % (path.name, key) for key in SECTIONS if not doc.get(key)]
    if problems:
        return problems
    documentation = doc["DOCUMENTATION"]
    if documentation.get("name") != name:
        problems.append("%s: DOCUMENTATION.name is %r, not %r"
                        % (path.name, documentation.get("name"), name))
    for key in ("short_description", "description", "version_added", "author", "options"):
        if not documentation.get(key):
            problems.append("%s: DOCUMENTATION has no %s" % (path.name, key))
    if "_input" not in (documentation.get("options") or {}):
        problems.append("%s: DOCUMENTATION.options has no _input (the value piped in)" % path.name)
    if "_value" not in doc["RETURN"]:
        problems.append("%s: RETURN has no _value" % path.name)
    try:
        examples = yaml.safe_load(doc["EXAMPLES"])
    except yaml.YAMLError as exc:
        problems.append("%s: EXAMPLES is not YAML: %s" % (path.name, exc))
    else:
        if not isinstance(examples, list) or "virtops.compute.%s" % name not in doc["EXAMPLES"]:
            problems.append("%s: EXAMPLES must be a list of tasks using virtops.compute.%s"
                            % (path.name, name))
    return problems


def implementation(name: str):
    """The function behind filter ``name`` (the wrappers keep it as __wrapped__)."""
    return FILTERS[name].__wrapped__


def test_boot_py_has_filters_to_document():
    assert {"server_table", "fleet_servers", "server_locations", "boot_request"} <= set(FILTERS)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_has_a_sidecar_doc_with_documentation_examples_and_return(name):
    assert doc_problems(name) == []


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_a_filter_doc_names_only_parameters_the_filter_has_and_all_it_requires(name):
    options = yaml.safe_load((FILTER_DIR / ("%s.yml" % name)).read_text())[
        "DOCUMENTATION"]["options"]
    parameters = list(inspect.signature(implementation(name)).parameters.values())
    by_doc_name = {"_input": parameters[0]}
    by_doc_name.update((p.name, p) for p in parameters[1:])
    unknown = sorted(set(options) - set(by_doc_name))
    assert unknown == [], "%s.yml documents options the filter does not take" % name
    undocumented = sorted(doc_name for doc_name, p in by_doc_name.items()
                          if p.default is inspect.Parameter.empty and doc_name not in options)
    assert undocumented == [], "%s.yml does not document required parameters" % name


def test_every_sidecar_doc_belongs_to_a_filter_that_exists():
    stale = sorted(p.stem for p in FILTER_DIR.glob("*.yml") if p.stem not in FILTERS)
    assert stale == [], "docs of filters FilterModule.filters() does not return"


def test_a_filter_without_a_sidecar_doc_is_reported_with_the_file_to_write(tmp_path):
    directory = tmp_path / "plugins" / "filter"
    directory.mkdir(parents=True)
    (directory / "half_done.yml").write_text("DOCUMENTATION:\n  name: half_done\n")
    assert doc_problems("undocumented", directory) == [
        "undocumented has no documentation: write plugins/filter/undocumented.yml with "
        "DOCUMENTATION, EXAMPLES and RETURN"]
    assert doc_problems("half_done", directory) == ["half_done.yml: no EXAMPLES",
                                                    "half_done.yml: no RETURN"]


def test_the_server_table_example_shows_what_the_filter_prints():
    doc = yaml.safe_load((FILTER_DIR / "server_table.yml").read_text())
    task = yaml.safe_load(doc["EXAMPLES"])[0]
    shown = [line.strip()[len('#   - "'):-1] for line in doc["EXAMPLES"].splitlines()
             if line.strip().startswith('#   - "')]
    assert FILTERS["server_table"](task["vars"]["servers"]) == shown
