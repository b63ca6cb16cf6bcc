# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The rbd settings of a compute host (argument spec: module_utils/_model/storage.py
    # RBD_ARGS; the model: RbdSettings).
    DOCUMENTATION = r"""
options:
  rbd:
    description:
      - With the rbd backend (C(backend=rbd), Nova's C(images_type = rbd)), where this host
        keeps instance disks in Ceph and how it reaches them; required then, refused with any
        other backend.
      - The roles pass the compute host's C(virtops_rbd). Host preparation
        (C(virtops.compute.compute_host)) writes the Ceph client files and defines the libvirt
        secret these settings name.
    type: dict
    suboptions:
      pool:
        description: The pool of instance disks (Nova's C(images_rbd_pool)).
        type: str
        default: vms
      ceph_conf:
        description: The Ceph configuration file (Nova's C(images_rbd_ceph_conf)).
        type: path
        default: /etc/ceph/ceph.conf
      user:
        description:
          - The Ceph user, without C(client.) (Nova's C(rbd_user)). Its keyring is read from
            the place C(ceph_conf) says (by default C(/etc/ceph/ceph.client.<user>.keyring)).
        type: str
        required: true
      secret_uuid:
        description:
          - The UUID of the libvirt secret that holds the user's cephx key (Nova's
            C(rbd_secret_uuid)), named in each disk's C(<auth>).
        type: str
        required: true
"""
