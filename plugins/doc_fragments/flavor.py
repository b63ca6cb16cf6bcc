# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``flavor`` option, as every module that takes one declares it (``flavor_spec()`` of
module_utils/_model/flavor.py): one spec, one text."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  flavor:
    description:
      - The flavor (Nova's flavor, the size of the instance), as in the C(flavors) catalog.
      - The sizes are checked as integers; an extra spec value is a string, a YAML boolean
        reading as V(true) or V(false).
    type: dict
    suboptions:
      name:
        description: Flavor name, recorded with the instance (domain metadata, config drive, record).
        type: str
      vcpus:
        description: Number of virtual CPUs.
        type: int
        required: true
      ram_mb:
        description: Memory in MiB, checked against the image's C(min_ram).
        type: int
        required: true
      root_gb:
        description:
          - Root disk size in GiB. The root disk is grown to it; an image with a larger
            virtual size is refused. V(0) means the image's own size and no size check.
        type: int
        default: 0
      ephemeral_gb:
        description: Size of the ephemeral disk C(disk.local) (ext4) in GiB; V(0) for none.
        type: int
        default: 0
      swap_mb:
        description: Size of the swap disk C(disk.swap) in MiB; V(0) for none.
        type: int
        default: 0
      extra_specs:
        description:
          - Flavor extra specs. The domain definition reads C(hw:cpu_sockets),
            C(hw:cpu_cores), C(hw:cpu_threads) (CPU topology, whose product must equal
            O(flavor.vcpus)), C(hw_rng:allowed), C(hw_rng:rate_bytes) and
            C(hw_rng:rate_period). Other keys are left to the scheduler.
        type: dict
        default: {}
"""
