# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one XML parser for text we did not write ourselves (libvirt's answers, files on disk).

A domain definition, libvirt capabilities or a metadata element is data, not a program: the
parser expands no entities (no XXE, no billion laughs), loads no DTD, never touches the
network and keeps lxml's limits on huge documents. Every ``fromstring`` of such text in
plugins/ goes through :func:`parse_xml`.
"""
from __future__ import annotations

import traceback

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test sanity only
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = traceback.format_exc()


def safe_parser(remove_blank_text: bool = False):
    """An lxml parser that expands no entities and reads nothing but the text it is given."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False,
                           remove_blank_text=remove_blank_text)


def parse_xml(text, source: str, remove_blank_text: bool = False):
    """The root element of ``text`` (str or bytes); VirtopsError naming ``source`` if invalid."""
    if not HAS_LXML:
        raise VirtopsError("the lxml Python library is missing on this host: install "
                           "python3-lxml")
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        return etree.fromstring(data, safe_parser(remove_blank_text))
    except etree.XMLSyntaxError as exc:
        raise VirtopsError("cannot parse %s: %s" % (source, exc), source=source)
