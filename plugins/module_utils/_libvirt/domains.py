# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domains on a libvirt connection: lookup, power state, undefine (Nova's ``guest.py``).

- :func:`find_domain` is Nova's ``Host._get_domain``: "no such domain" is an answer (None),
  every other libvirt error (a dropped connection, a denied call) is raised, never mistaken
  for an absent domain.
- :data:`POWER_STATE_NAMES` maps libvirt's ``virDomainState`` to Nova's power_state names
  (``nova/virt/libvirt/guest.py`` LIBVIRT_POWER_STATE); :func:`power_state` reads one domain.
- :func:`live_graphics` reads the graphical consoles of a domain from its live XML (libvirt fills
  in the port of an ``autoport`` console at start), as Nova's ``get_vnc_console`` does;
  :func:`graphics_of` reads them from a domain XML already parsed.
- :func:`undefine` is Nova's ``Guest.delete_configuration``: managed save image, snapshot and
  checkpoint metadata and the UEFI NVRAM go with the definition; drivers that know none of
  these flags (libvirt's test driver, old libvirt) get a plain undefine.
"""
from __future__ import annotations

from typing import List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _connection
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import parse_xml
from ansible_collections.virtops.compute.plugins.module_utils._model.console import Graphics

# libvirt's numbers (virDomainState), so the names work without the binding (unit tests, docs).
VIR_NOSTATE, VIR_RUNNING, VIR_BLOCKED, VIR_PAUSED = 0, 1, 2, 3
VIR_SHUTDOWN, VIR_SHUTOFF, VIR_CRASHED, VIR_PMSUSPENDED = 4, 5, 6, 7
# Nova's power_state names for them.
POWER_STATE_NAMES = {
    VIR_NOSTATE: "pending", VIR_RUNNING: "running", VIR_BLOCKED: "running",
    VIR_PAUSED: "paused", VIR_SHUTDOWN: "shutdown", VIR_SHUTOFF: "shutdown",
    VIR_CRASHED: "crashed", VIR_PMSUSPENDED: "suspended",
}
ABSENT = "absent"          # the power state of a domain libvirt does not have


def _no_domain(exc) -> bool:
    return exc.get_error_code() == _connection.libvirt.VIR_ERR_NO_DOMAIN


def find_domain(conn, uuid: Optional[str] = None, name: Optional[str] = None):
    """The domain with this uuid (or, without one, this name); None when libvirt has none.

    Any libvirt error other than VIR_ERR_NO_DOMAIN raises VirtopsError with the libvirt
    error code, so an unreachable or refusing libvirtd is never read as "no domain".
    """
    if (uuid is None) == (name is None):
        raise VirtopsError("find_domain needs exactly one of uuid and name")
    lv = _connection.libvirt
    key, lookup = (uuid, conn.lookupByUUIDString) if uuid is not None else (name, conn.lookupByName)
    try:
        return lookup(key)
    except lv.libvirtError as exc:
        if _no_domain(exc):
            return None
        raise VirtopsError("libvirt lookup of %s failed: %s" % (key, exc),
                           lookup="uuid" if uuid is not None else "name", key=key,
                           libvirt_error_code=exc.get_error_code())


def power_state(dom) -> str:
    """Nova's power state name of ``dom``; ``absent`` for None or a domain that just vanished."""
    if dom is None:
        return ABSENT
    lv = _connection.libvirt
    try:
        return POWER_STATE_NAMES.get(dom.state()[0], "pending")
    except lv.libvirtError as exc:
        if _no_domain(exc):
            return ABSENT
        raise VirtopsError("reading the state of domain %s failed: %s" % (_label(dom), exc),
                           libvirt_error_code=exc.get_error_code())


def _port(value: Optional[str]) -> Optional[int]:
    """libvirt's port attribute: a number once the domain runs, ``-1`` (or none) before."""
    try:
        port = int(value) if value is not None else None
    except ValueError:
        return None
    return port if port is not None and port > 0 else None


def graphics_of(root) -> List[Graphics]:
    """The ``<graphics>`` devices of a parsed domain XML: type, listen address (the
    ``listen`` attribute, else the first ``<listen address=...>``) and port."""
    found = []
    for el in root.findall("devices/graphics"):
        listen = el.get("listen")
        if not listen:
            for child in el.findall("listen"):
                if child.get("address"):
                    listen = child.get("address")
                    break
        found.append(Graphics(type=el.get("type") or "", listen=listen or None,
                              port=_port(el.get("port"))))
    return found


def live_graphics(dom) -> List[Graphics]:
    """The graphical consoles of ``dom`` as libvirt runs it (its live XML, where the port of an
    autoport console is filled in); ``[]`` for a domain that just vanished.

    Nova's ``get_vnc_console`` reads the port the same way: ``./devices/graphics[@type='vnc']``
    of ``guest.get_xml_desc()``.
    """
    lv = _connection.libvirt
    try:
        text = dom.XMLDesc(0)
    except lv.libvirtError as exc:
        if _no_domain(exc):
            return []
        raise VirtopsError("reading the definition of domain %s failed: %s" % (_label(dom), exc),
                           libvirt_error_code=exc.get_error_code())
    return graphics_of(parse_xml(text, "the live XML of domain %s" % _label(dom)))


def undefine(dom) -> bool:
    """Remove the definition with its NVRAM, managed save and snapshot/checkpoint metadata.

    Returns False when the domain was already gone, True when it was undefined now.
    """
    lv = _connection.libvirt
    flags = (lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
             | lv.VIR_DOMAIN_UNDEFINE_NVRAM | lv.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    try:
        dom.undefineFlags(flags)
        return True
    except lv.libvirtError as exc:
        if _no_domain(exc):
            return False
        try:
            dom.undefine()    # drivers without the flags (the test driver, old libvirt)
            return True
        except lv.libvirtError as plain:
            if _no_domain(plain):     # such drivers refuse the flags before the lookup
                return False
            raise VirtopsError("undefining domain %s failed: %s" % (_label(dom), exc),
                               libvirt_error_code=exc.get_error_code())


def _label(dom) -> str:
    """The domain's name for a message, its uuid when even that cannot be read."""
    lv = _connection.libvirt
    try:
        return dom.name()
    except lv.libvirtError:
        try:
            return dom.UUIDString()
        except lv.libvirtError:
            return "(unknown)"
