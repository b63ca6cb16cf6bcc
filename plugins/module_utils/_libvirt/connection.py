# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt connection: opened once, errors turned into VirtopsError."""
from __future__ import annotations

import traceback
from contextlib import contextmanager
from typing import Iterator

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

try:
    import libvirt
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

DEFAULT_URI = "qemu:///system"


def _silence(_ctx, _err):
    """libvirt prints every error to stderr by default; we raise them instead."""


@contextmanager
def connect(uri: str = DEFAULT_URI) -> Iterator["libvirt.virConnect"]:
    if not HAS_LIBVIRT:
        raise VirtopsError("the libvirt Python binding is missing on this host: install "
                           "python3-libvirt (or run playbooks/prepare_hosts.yml)")
    libvirt.registerErrorHandler(_silence, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise VirtopsError("cannot connect to libvirt at %s: %s. Is libvirtd running "
                           "(systemctl start libvirtd, or libvirtd -d)?" % (uri, exc))
    try:
        yield conn
    finally:
        try:
            conn.close()
        except libvirt.libvirtError:
            pass
