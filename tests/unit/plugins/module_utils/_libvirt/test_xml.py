# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one safe XML parser: text from disk or libvirt is data, never a program (no XXE, no
entity expansion, no network), and every parser of such text in plugins/ is this one."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import cpu_info
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import parse_xml

pytest.importorskip("lxml")

PLUGINS = Path(__file__).resolve().parents[5] / "plugins"


def test_an_external_entity_is_not_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    root = parse_xml('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://%s">]>'
                     '<domain><name>&x;</name></domain>' % secret, "test")
    assert "TOP-SECRET" not in (root.findtext("name") or "")


def test_a_billion_laughs_is_refused_or_left_unexpanded_never_blown_up():
    laughs = ['<!ENTITY l0 "ha">'] + ['<!ENTITY l%d "%s">' % (i, "&l%d;" % (i - 1) * 10)
                                      for i in range(1, 9)]
    text = '<?xml version="1.0"?><!DOCTYPE d [%s]><d>&l8;</d>' % "".join(laughs)
    try:
        root = parse_xml(text, "test")
    except VirtopsError as exc:
        assert "cannot parse test: " in exc.msg
    else:
        assert len(root.xpath("string(.)")) < 100


def test_a_network_entity_is_not_fetched():
    """A SYSTEM entity on a port nothing listens on: fetching it would fail the parse."""
    doc = parse_xml('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
                    '"http://127.0.0.1:9/x.xml">]><d>&x;</d>', "test")
    assert (doc.text or "") == ""


def test_invalid_xml_is_a_virtops_error_naming_its_source():
    with pytest.raises(VirtopsError, match="cannot parse /x/libvirt.xml: ") as err:
        parse_xml("<domain><name>x</domain>", "/x/libvirt.xml")
    assert err.value.details["source"] == "/x/libvirt.xml"


def test_bytes_and_text_both_parse():
    assert parse_xml(b"<a><b/></a>", "bytes").find("b") is not None
    assert parse_xml("<a>\u00e9</a>", "text").text == "\u00e9"


def test_host_facts_do_not_expand_entities_in_the_capabilities(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    info = cpu_info('<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file://%s">]>'
                    '<capabilities><host><cpu><arch>x86_64</arch><model>&x;</model>'
                    '</cpu></host></capabilities>' % secret)
    assert info["arch"] == "x86_64"
    assert "TOP-SECRET" not in (info["model"] or "")


def test_no_code_in_plugins_builds_its_own_xml_parser_or_parses_text_without_one():
    """One parser: XMLParser( only in _libvirt/xml.py, and no fromstring/parse elsewhere."""
    pattern = re.compile(r"XMLParser\(|etree\.(fromstring|parse|XML)\(|(?<![\w.])xml\.etree|minidom")
    offenders = ["%s:%d" % (path.relative_to(PLUGINS), number)
                 for path in sorted(PLUGINS.rglob("*.py"))
                 if path != PLUGINS / "module_utils" / "_libvirt" / "xml.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
