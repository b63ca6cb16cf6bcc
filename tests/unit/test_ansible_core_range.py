# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supported ansible-core range is stated in requirements.txt (``>=LOWEST,<NEXT``; the
development set-up tests both ends, CONTRIBUTING.md) and repeated, the same, wherever users,
Galaxy and ansible-core read it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Tuple

import yaml
from ansible.release import __version__ as ansible_core_version

ROOT = Path(__file__).resolve().parents[2]


def stated_range() -> Tuple[str, str]:
    """(lowest, next) minor versions of requirements.txt's ``ansible-core>=X.Y,<X.Z``."""
    found = re.search(r"^ansible-core>=(\d+\.\d+),<(\d+\.\d+)$",
                      (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert found, "requirements.txt must state ansible-core as 'ansible-core>=X.Y,<X.Z'"
    return found.group(1), found.group(2)


def minor(version: str) -> Tuple[int, int]:
    major_part, minor_part = version.split(".")[:2]
    return int(major_part), int(re.match(r"\d+", minor_part).group(0))


def test_requires_ansible_in_meta_runtime_is_the_range_of_requirements_txt():
    lowest, upper = stated_range()
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=%s.0,<%s.0" % (lowest, upper)


def test_the_readme_states_the_same_range_with_its_highest_minor():
    lowest, upper = stated_range()
    highest = "%d.%d" % (minor(upper)[0], minor(upper)[1] - 1)
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "ansible-core %s to %s (`>=%s,<%s`" % (lowest, highest, lowest, upper) in text


def test_the_example_execution_environment_installs_the_same_range():
    lowest, upper = stated_range()
    definition = yaml.safe_load((ROOT / "docs" / "examples" / "execution-environment.yml").read_text())
    assert definition["dependencies"]["ansible_core"]["package_pip"] == \
        "ansible-core>=%s,<%s" % (lowest, upper)


def test_every_role_asks_for_the_lowest_supported_ansible_core():
    lowest, _upper = stated_range()
    for meta in sorted((ROOT / "roles").glob("*/meta/main.yml")):
        info = yaml.safe_load(meta.read_text())["galaxy_info"]
        assert str(info["min_ansible_version"]) == lowest, meta


def test_the_ansible_core_running_the_tests_is_in_the_supported_range():
    lowest, upper = stated_range()
    running = minor(ansible_core_version)
    assert minor(lowest) <= running < minor(upper), (
        "ansible-core %s is outside requirements.txt's >=%s,<%s: re-run `make setup`"
        % (ansible_core_version, lowest, upper))
