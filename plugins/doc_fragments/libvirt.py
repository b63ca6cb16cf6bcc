# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The libvirt connection URI (argument spec: module_utils/_libvirt/connection.py
    # LIBVIRT_ARGS), alone for modules that only ask virsh or document their own requirements.
    URI = r"""
options:
  libvirt_uri:
    description:
      - libvirt connection URI on the compute host.
    type: str
    default: qemu:///system
"""

    # The same option for modules that talk to libvirt through its Python binding.
    DOCUMENTATION = r"""
options:
  libvirt_uri:
    description:
      - libvirt connection URI on the compute host.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (Debian C(python3-libvirt)) on the compute host
"""

    # The instances path (Nova's instances_path; argument spec: module_utils/_model/
    # instance_layout.py INSTANCES_PATH_ARGS).
    INSTANCES_PATH = r"""
options:
  instances_path:
    description:
      - Directory holding one sub-directory per instance (Nova's C(instances_path)) and the
        image cache C(_base).
    type: path
    default: /var/lib/virtops/instances
"""

    # The host record's directory (argument spec: module_utils/_model/instance_layout.py
    # STATE_DIR_ARGS).
    STATE_DIR = r"""
options:
  state_dir:
    description:
      - Directory of the host record C(host.json), in which host preparation
        (M(virtops.compute.vm_virt_type)) records the virt type it probed; a module whose
        C(virt_type) is V(auto) reads it there.
    type: path
    default: /etc/virtops
"""
