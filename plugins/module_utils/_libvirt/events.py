# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain lifecycle events: a sleep that ends as soon as libvirt says the domain changed.

Nova's libvirt driver listens to libvirt: ``nova/virt/libvirt/host.py`` registers libvirt's
default event loop before it opens its connection (``_init_events``), runs it in a native
thread, and takes ``VIR_DOMAIN_EVENT_ID_LIFECYCLE`` callbacks. Our waits (for RUNNING after a
start, for the guest to power off after the ACPI button) still look at the domain's state every
0.5 s, as Nova's ``_wait_for_boot`` and ``_clean_shutdown`` do, but they sleep on
:class:`EventSleep`: a lifecycle event of the domain ends the sleep at once, so a guest that
powers off is seen when it does, not up to half a second later.

``connection.start_event_loop`` runs once per process, before a connection is opened
(``connection.open_connection`` calls it). Without an event loop, or when libvirt refuses the
callback, :class:`EventSleep` is a plain ``time.sleep``: the waits are as before.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _libvirt


class EventSleep:
    """``sleep(seconds)`` that a lifecycle event of domain ``uuid`` on ``conn`` cuts short.

    The callback is registered at the first sleep (a wait that never sleeps costs nothing)
    and removed by :meth:`close`. An event that comes while the caller looks at the state
    leaves the flag set, so the next sleep returns at once and the caller looks again.
    """

    def __init__(self, conn, uuid: str):
        self.conn = conn
        self.uuid = uuid
        self.woken = threading.Event()
        self._callback_id: Optional[int] = None
        self._tried = False

    def _callback(self, _conn, dom, _event, _detail, _opaque) -> None:
        try:
            if dom.UUIDString() == self.uuid:
                self.woken.set()
        except Exception:  # pylint: disable=broad-except
            self.woken.set()   # a domain we cannot read: look again rather than miss it

    def _register(self) -> None:
        self._tried = True
        libvirt = _libvirt.libvirt
        if libvirt is None or not _libvirt.event_loop_running():
            return
        try:
            self._callback_id = self.conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._callback, None)
        except (libvirt.libvirtError, AttributeError):
            self._callback_id = None

    @property
    def listening(self) -> bool:
        return self._callback_id is not None

    def __call__(self, seconds: float) -> None:
        if not self._tried:
            self._register()
        if self._callback_id is None:
            time.sleep(seconds)
            return
        self.woken.wait(seconds)
        self.woken.clear()

    def close(self) -> None:
        if self._callback_id is None:
            return
        try:
            self.conn.domainEventDeregisterAny(self._callback_id)
        except _libvirt.libvirt.libvirtError:
            pass
        self._callback_id = None
