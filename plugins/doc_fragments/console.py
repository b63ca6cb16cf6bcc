# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Where the guest's VNC console listens (argument spec: module_utils/_model/console.py
    # VNC_LISTEN_ARGS).
    DOCUMENTATION = r"""
options:
  vnc_listen:
    description:
      - The address of this compute host on which QEMU's VNC server listens for the guest's
        console (C(<graphics type='vnc' autoport='yes' listen=...>); libvirt picks the port,
        5900 and up, when the domain starts). Nova's C([vnc] server_listen), default
        V(127.0.0.1); Nova's C([vnc] server_proxyclient_address) is the address a console
        proxy connects to, which is this one here.
      - An IPv4 or IPv6 address; anything else (a host name, an interface name) is refused
        before anything is changed.
      - V(0.0.0.0) or V(::) puts every guest's console on every address of the host, reachable
        by anyone who can reach the host, without a password. Use an address of a management
        network instead.
      - The roles pass the compute host's C(virtops_vnc_listen). The value is written into the
        domain definition when it is made (a build, the finish of a migration or resize on the
        destination); a changed value applies to a server when it is next built or moved.
    type: str
    default: 127.0.0.1
"""
