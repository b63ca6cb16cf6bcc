# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validators for names and free text that end up in paths, libvirt names or XML.

Refuse early, with the field name in the message, rather than let a value break a path,
a libvirt lookup or an XML document later.
"""
from __future__ import annotations

import re
import uuid as uuid_mod

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

INSTANCE_NAME_MAX = 63
# 1..63 of [A-Za-z0-9._-], not starting with '.' or '-': safe as a libvirt domain name, a file
# name and a host name label (the set has no path separator, no space, no shell meta).
_INSTANCE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}$")
# XML 1.0 characters minus the C0/C1 controls lxml refuses or that hide in a terminal.
_BAD_TEXT_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def validate_instance_name(name) -> str:
    """Return ``name`` if it is a safe instance (libvirt domain) name, else raise."""
    if not isinstance(name, str) or not _INSTANCE_NAME_RE.match(name):
        raise VirtopsError(
            "invalid instance name %r: use 1 to %d characters of A-Z a-z 0-9 . _ -, "
            "not starting with '.' or '-'" % (name, INSTANCE_NAME_MAX))
    return name


def validate_uuid(value, what: str = "instance uuid") -> str:
    """Return the canonical lower-case form of a UUID, else raise."""
    try:
        canonical = str(uuid_mod.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise VirtopsError("invalid %s %r: expected a UUID such as "
                           "'0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11'" % (what, value))
    if canonical != str(value).lower():
        # Braces, urn: prefixes or missing dashes would name a different directory.
        raise VirtopsError("invalid %s %r: write it in canonical form %s" % (what, value, canonical))
    return canonical


def validate_text(value, what: str, max_len: int = 255) -> str:
    """Free text that goes into XML (metadata, names): bounded and free of control characters."""
    if not isinstance(value, str):
        raise VirtopsError("%s must be a string, got %r" % (what, value))
    if not value or len(value) > max_len:
        raise VirtopsError("%s must be 1 to %d characters long, got %d"
                           % (what, max_len, len(value)))
    match = _BAD_TEXT_RE.search(value)
    if match:
        raise VirtopsError("%s contains a control character (U+%04X) that XML cannot carry"
                           % (what, ord(match.group(0))))
    return value
