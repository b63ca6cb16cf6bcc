# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domains for libvirt's test driver that look like servers (our metadata, written by the
collection's own ``GuestMetaInstance``), and ones that do not."""
from __future__ import annotations

from typing import Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._guest.config import (
    GuestMetaFlavor, GuestMetaImage, GuestMetaInstance, GuestMetaIP, GuestMetaPort)

CREATED_AT = "2026-01-02 03:04:05"
DOMAIN = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  {metadata}
  <memory unit='MiB'>{ram_mb}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type>hvm</type></os>{devices}{runstate}
</domain>
"""
# A node file of the test driver (test:///<path>): its domains, read afresh on every open.
NODE = """<node xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
  <cpu><mhz>2000</mhz><model>x86_64</model><active>4</active><nodes>1</nodes>
    <sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
{domains}</node>
"""
SHUTOFF = "\n  <test:runstate>5</test:runstate>"
# A VNC console as libvirt shows it in a running domain's live XML (the test driver keeps a
# port only when autoport is off; libvirt fills in an autoport one when QEMU starts).
VNC = ("\n  <devices><graphics type='vnc' port='{port}' autoport='no' listen='{listen}'>"
       "<listen type='address' address='{listen}'/></graphics></devices>")


def metadata(name: str, flavor: str = "m1.nano", ram_mb: int = 128, vcpus: int = 1,
             image: Optional[str] = "guest", ports: Sequence[tuple] = ()) -> GuestMetaInstance:
    """Our metadata as vm_xml writes it; ``ports`` are ``(mac, [ip, ...])``."""
    return GuestMetaInstance(
        name=name, hostname=name, creation_time=CREATED_AT,
        flavor=GuestMetaFlavor(name=flavor, memory=ram_mb, disk=1, swap=0, ephemeral=0,
                               vcpus=vcpus),
        image=None if image is None else GuestMetaImage(id="img-%s" % image, name=image),
        ports=[GuestMetaPort(id="port-%d-%s" % (index, name), mac=mac,
                             ips=[GuestMetaIP(address=ip, version=6 if ":" in ip else 4)
                                  for ip in ips])
               for index, (mac, ips) in enumerate(ports)])


def server_xml(name: str, uuid: str, shutoff: bool = False, meta_xml: Optional[str] = None,
               vnc: Optional[tuple] = None, **meta) -> str:
    """A domain that is a server; ``meta_xml`` replaces the metadata element (broken ones);
    ``vnc`` is the ``(listen, port)`` of its VNC console."""
    text = meta_xml if meta_xml is not None else metadata(name, **meta).to_xml()
    flavor = meta.get("ram_mb", 128), meta.get("vcpus", 1)
    return DOMAIN.format(name=name, uuid=uuid, metadata="<metadata>%s</metadata>" % text,
                         ram_mb=flavor[0], vcpus=flavor[1],
                         devices=VNC.format(listen=vnc[0], port=vnc[1]) if vnc else "",
                         runstate=SHUTOFF if shutoff else "")


def foreign_xml(name: str, uuid: str) -> str:
    """A domain someone else defined: metadata, but not ours."""
    return DOMAIN.format(name=name, uuid=uuid, ram_mb=64, vcpus=1, runstate="", devices="",
                         metadata="<metadata><app:owner xmlns:app='urn:example:app'>"
                                  "ops</app:owner></metadata>")


def node_xml(*domains: str) -> str:
    return NODE.format(domains="".join(domains))
