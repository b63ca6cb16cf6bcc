# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  libvirt_uri:
    description:
      - libvirt connection URI on the compute host.
    type: str
    default: qemu:///system
  instances_path:
    description:
      - Directory holding one sub-directory per instance (Nova's C(instances_path)) and the
        image cache C(_base).
    type: path
    default: /var/lib/virtops/instances
requirements:
  - libvirt-python (Debian C(python3-libvirt)) on the compute host
"""
