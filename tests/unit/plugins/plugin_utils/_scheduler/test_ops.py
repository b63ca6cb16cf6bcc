# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flavor extra-spec operators, Nova's extra_specs_ops semantics."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.filters import Requirement, match


@pytest.mark.parametrize("value, req, expected", [
    # no operator: exact string equality with the whole text
    ("1", "1", True),
    ("1", "2", False),
    ("x86_64", "x86_64", True),
    ("x86_64", "X86_64", False),
    ("a b", "a b", True),
    ("12", "012", False),
    # '=' means numerically at least
    ("123", "= 123", True),
    ("124", "= 123", True),
    ("122", "= 123", False),
    ("123.0", "= 123", True),
    ("abc", "= 123", False),          # a non-numeric host value never matches
    # numeric ==, !=, >=, <=
    ("123", "== 123", True),
    ("123.0", "== 123", True),
    ("124", "== 123", False),
    ("124", "!= 123", True),
    ("123", "!= 123", False),
    ("4", ">= 4", True),
    ("3", ">= 4", False),
    ("4", "<= 4", True),
    ("5", "<= 4", False),
    ("10", ">= 9", True),             # numbers, not strings: '10' < '9' as strings
    # string operators
    ("abc", "s== abc", True),
    ("abd", "s== abc", False),
    ("abd", "s!= abc", True),
    ("abc", "s!= abc", False),
    ("10", "s< 9", True),             # strings, not numbers
    ("abc", "s< abd", True),
    ("abc", "s<= abc", True),
    ("abd", "s<= abc", False),
    ("abd", "s> abc", True),
    ("abc", "s> abc", False),
    ("abc", "s>= abc", True),
    ("abb", "s>= abc", False),
    # <in>: substring
    ("avx avx2 sse", "<in> avx2", True),
    ("['sse4.2', 'avx']", "<in> avx", True),
    ("sse", "<in> avx", False),
    ("avx2", "<in> avx", True),       # substring, as Nova
    # <all-in>: every word is a substring
    ("['sse4.2', 'avx', 'avx2']", "<all-in> avx sse4.2", True),
    ("['sse4.2', 'avx']", "<all-in> avx aes", False),
    # <or>: equal to one of the choices
    ("kvm", "<or> kvm <or> qemu", True),
    ("qemu", "<or> kvm <or> qemu", True),
    ("xen", "<or> kvm <or> qemu", False),
    ("qem", "<or> kvm <or> qemu", False),
    ("b", "<or> a <or> b <or> c", True),
    ("c", "<or> a <or> b <or> c", True),
    # an operator without an operand matches nothing
    ("1", "=", False),
    ("", "<in>", False),
    ("x", "<or>", False),
    ("", "s==", False),
    # whitespace around the operator is free
    ("5", "  >=   4 ", True),
])
def test_operator_table(value, req, expected):
    assert match(value, req) is expected


def test_unknown_first_word_is_a_plain_string():
    req = Requirement("true")
    assert req.op is None
    assert req.matches("true") and not req.matches("True")


def test_operator_needs_separating_space():
    # '>=4' is not an operator: it is compared as a plain string
    assert Requirement(">=4").op is None
    assert match(">=4", ">=4") is True
    assert match("5", ">=4") is False


def test_numeric_operator_refuses_non_numeric_operand():
    with pytest.raises(VirtopsError, match=r"compares numbers, 'Intel' is not one"):
        Requirement("= Intel", "flavor extra spec capabilities:cpu_info:vendor:")


def test_non_string_host_values_compare_as_text():
    assert Requirement("s== true").matches(True)
    assert Requirement(">= 7000000").matches(7002000)
    assert Requirement("<in> avx2").matches(["sse", "avx2"])
    assert Requirement("1").matches(None) is False
