# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt connection: one opener, read-only or read-write, errors as VirtopsError.

Nova's ``nova/virt/libvirt/host.py`` keeps one connection per driver and opens it read-only
when the driver only reads. Here every caller opens through :func:`connect`: the ones that
only read (host facts, the disk-removal check) ask for ``read_only=True`` and get
``virConnectOpenReadOnly``; the ones that define, start, stop or read domain capabilities
(which libvirtd refuses on a read-only connection) get a read-write one.

:data:`DEFAULT_URI` and :data:`LIBVIRT_ARGS` are the one spelling of the URI option; the doc
fragment ``virtops.compute.libvirt`` documents the same option.
"""
from __future__ import annotations

import threading
import time
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

# The system libvirtd on the compute host (Nova's [libvirt] connection_uri for virt_type kvm/qemu).
DEFAULT_URI = "qemu:///system"

# The argument spec of the option documented by the doc fragment virtops.compute.libvirt.
LIBVIRT_ARGS = dict(
    libvirt_uri=dict(type="str", default=DEFAULT_URI),
)


_EVENT_LOOP = {"running": False}
_EVENT_LOOP_LOCK = threading.Lock()


def start_event_loop() -> bool:
    """Register libvirt's default event loop and run it in a daemon thread, once per process
    and before any connection is opened (Nova's ``host.py`` ``_init_events``), so that domain
    lifecycle events reach ``_libvirt.events.EventSleep``. False when libvirt refuses."""
    with _EVENT_LOOP_LOCK:
        if _EVENT_LOOP["running"]:
            return True
        try:
            libvirt.virEventRegisterDefaultImpl()
        except libvirt.libvirtError:
            return False
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _EVENT_LOOP["running"] = True
        return True


def event_loop_running() -> bool:
    return _EVENT_LOOP["running"]


def _run_event_loop() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            time.sleep(0.1)


def _silence(_ctx, _err):
    """libvirt prints every error to stderr by default; we raise them instead."""


def require_libvirt() -> None:
    """Refuse early, saying what to install, when the libvirt binding is missing."""
    if not HAS_LIBVIRT:
        raise VirtopsError("the libvirt Python binding is missing on this host: install "
                           "python3-libvirt (or run playbooks/prepare_hosts.yml)")


def open_connection(uri: str = DEFAULT_URI, read_only: bool = False):
    """A libvirt connection the caller closes; prefer :func:`connect`, which closes it."""
    require_libvirt()
    libvirt.registerErrorHandler(_silence, None)
    start_event_loop()
    try:
        return libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise VirtopsError("cannot connect to libvirt at %s%s: %s. %s"
                           % (uri, " (read-only)" if read_only else "", exc, _hint(uri)),
                           uri=uri, read_only=read_only)


def _hint(uri: str) -> str:
    """What to check when ``uri`` does not answer: the local daemon, or the way to a remote one
    (``qemu+ssh://host/system``, as the inventory plugin servers reads compute hosts)."""
    scheme, _sep, rest = uri.partition("://")
    if "+" in scheme or not rest.startswith("/"):
        return ("Can this machine reach the host (address, ssh key, the host's key in "
                "known_hosts) and is libvirtd running there?")
    return "Is libvirtd running (systemctl start libvirtd, or libvirtd -d)?"


@contextmanager
def connect(uri: str = DEFAULT_URI, read_only: bool = False) -> Iterator["libvirt.virConnect"]:
    """A connection to ``uri`` for the ``with`` block, closed after it.

    ``read_only`` opens with ``virConnectOpenReadOnly``: enough to list and look up domains,
    read their state and XML and the host capabilities, and refused by libvirtd for anything
    that changes the host (and for domain capabilities).
    """
    conn = open_connection(uri, read_only=read_only)
    try:
        yield conn
    finally:
        try:
            conn.close()
        except libvirt.libvirtError:
            pass
