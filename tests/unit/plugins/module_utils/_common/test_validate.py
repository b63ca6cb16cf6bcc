# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one strict-integer check and the one definition of the size units."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int

PLUGINS = Path(__file__).resolve().parents[5] / "plugins"


@pytest.mark.parametrize("value, text, floats, expected", [
    (2, "exact", False, 2),
    (" 2 ", "exact", False, 2),
    ("-3", "exact", False, -3),
    ("02", "loose", False, 2),
    ("+2", "loose", False, 2),
    (2.0, "exact", True, 2),
])
def test_an_integer_is_taken_in_each_form_its_caller_accepts(value, text, floats, expected):
    assert strict_int(value, "x", text=text, floats=floats) == expected


@pytest.mark.parametrize("value, text, floats", [
    (True, "loose", True),          # a bool is never a number
    (False, "loose", True),
    (1.5, "loose", True),           # a fraction is never truncated
    (2.0, "exact", False),
    ("02", "exact", False),
    ("+2", "exact", False),
    ("2", None, False),
    ("2.0", "loose", True),
    ("", "loose", True),
    ([2], "loose", True),
    (None, "loose", True),
])
def test_what_is_not_an_integer_in_that_form_is_refused_with_the_value_named(value, text, floats):
    with pytest.raises(VirtopsError, match=r"^size must be an integer, got %s; give 2$"
                       % re.escape(repr(value))):
        strict_int(value, "size", text=text, floats=floats, hint="2")


@pytest.mark.parametrize("value, minimum, maximum, words", [
    (-1, 0, None, "n cannot be negative, got -1"),
    (0, 1, None, "n must be at least 1, got 0"),
    (9, None, 8, "n must be at most 8, got 9"),
    (0, 1, 4094, "n must be between 1 and 4094, got 0"),
    (4095, 1, 4094, "n must be between 1 and 4094, got 4095"),
])
def test_a_number_out_of_range_is_refused_with_the_range(value, minimum, maximum, words):
    with pytest.raises(VirtopsError, match="^%s$" % words):
        strict_int(value, "n", minimum=minimum, maximum=maximum)
    assert strict_int(minimum if minimum is not None else maximum, "n", minimum, maximum) in (
        minimum, maximum)


def _own_integer_checks(path: Path):
    """Functions that read an integer themselves: a bool refusal beside an int() call."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            body = ast.unparse(node)
            if "isinstance(value, bool)" in body and "int(value)" in body:
                yield "%s:%s" % (path.relative_to(PLUGINS), node.name)


def test_every_strict_integer_check_of_the_model_boot_and_scheduler_is_the_common_one():
    scanned = [PLUGINS / "module_utils" / "_model" / "flavor.py",
               PLUGINS / "module_utils" / "_guest" / "designer.py",
               PLUGINS / "plugin_utils" / "_boot" / "request.py",
               PLUGINS / "plugin_utils" / "_boot" / "plan.py",
               PLUGINS / "plugin_utils" / "_boot" / "fleet.py",
               PLUGINS / "plugin_utils" / "_scheduler" / "request.py"]
    copies = [found for path in scanned for found in _own_integer_checks(path)]
    assert copies == []


def test_gib_and_mib_are_defined_once_in_common_units():
    defined = sorted(str(p.relative_to(PLUGINS)) for p in PLUGINS.rglob("*.py")
                     if re.search(r"^(GIB|MIB|GiB|MiB) = ", p.read_text(), re.M))
    assert defined == ["module_utils/_common/units.py"]
