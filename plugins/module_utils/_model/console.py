# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest's graphical console: where QEMU listens for it, and how to write it down.

- :func:`valid_vnc_listen` is the check of ``virtops_vnc_listen`` (module option ``vnc_listen``),
  Nova's ``[vnc] server_listen`` (default ``127.0.0.1``): the address of the compute host
  QEMU's VNC server binds to, written into the domain XML (``<graphics listen=...>``). Nova
  types it ``HostAddressOpt``; here it must be an IP address (IPv4 or IPv6), since a host name
  is resolved by QEMU at every start and may change under the guest. ``0.0.0.0`` and ``::``
  are accepted: they put every guest's console on every address of the host.
- :class:`Graphics` is one ``<graphics>`` device of a live domain (libvirt fills in the port of
  an ``autoport`` console when the domain starts), and :meth:`Graphics.url` the address a
  client connects to, as Nova's ``get_vnc_console`` reads it
  (``nova/virt/libvirt/driver.py``: ``./devices/graphics[@type='vnc']`` port of the live XML,
  with ``[vnc] server_proxyclient_address`` as the host).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

DEFAULT_VNC_LISTEN = "127.0.0.1"
# The option of every module that writes a domain definition (doc fragment
# virtops.compute.console).
VNC_LISTEN_ARGS = dict(vnc_listen=dict(type="str", default=DEFAULT_VNC_LISTEN))
# Console types a URL is written for: the scheme is the type.
URL_TYPES = ("vnc", "spice")


def valid_vnc_listen(value, what: str = "vnc_listen") -> str:
    """``value`` if it is an IPv4 or IPv6 address (``0.0.0.0`` and ``::`` included), else a
    VirtopsError naming ``what`` and what to give."""
    text = value.strip() if isinstance(value, str) else value
    try:
        if not isinstance(text, str) or not text or "%" in text:
            raise ValueError(text)
        ipaddress.ip_address(text)
    except ValueError:
        raise VirtopsError(
            "%s must be an IP address of the compute host (IPv4 or IPv6, such as 127.0.0.1, "
            "192.0.2.11 or ::1; 0.0.0.0 or :: for every address), got %r"
            % (what, value), vnc_listen=value)
    return text


@dataclass(frozen=True)
class Graphics:
    """One graphical console of a domain: its type, listen address and port (None when libvirt
    has not given it one: the domain is not running)."""
    type: str
    listen: Optional[str] = None
    port: Optional[int] = None

    @property
    def url(self) -> Optional[str]:
        """``vnc://<listen>:<port>`` (an IPv6 address in brackets), None when the console has
        no address or port yet or is not a VNC or SPICE one."""
        if self.type not in URL_TYPES or not self.listen or not self.port or self.port < 0:
            return None
        host = "[%s]" % self.listen if ":" in self.listen else self.listen
        return "%s://%s:%d" % (self.type, host, self.port)

    def to_dict(self) -> dict:
        return {"type": self.type, "listen": self.listen, "port": self.port}

    @classmethod
    def from_dict(cls, data) -> "Graphics":
        port = data.get("port")
        return cls(type=str(data.get("type") or ""), listen=data.get("listen") or None,
                   port=port if isinstance(port, int) and not isinstance(port, bool) else None)


def console_url(graphics: Sequence) -> Optional[str]:
    """The URL of the first console of ``graphics`` (``Graphics`` or their dicts) that has
    one, VNC first: what ``servers.yml`` shows as CONSOLE."""
    consoles = [g if isinstance(g, Graphics) else Graphics.from_dict(g) for g in graphics or ()
                if isinstance(g, (Graphics, Mapping))]
    consoles.sort(key=lambda g: g.type != "vnc")
    for console in consoles:
        if console.url:
            return console.url
    return None
