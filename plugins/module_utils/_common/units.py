# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Binary size units, as Nova's flavors count them: ``root_gb`` and ``ephemeral_gb`` are GiB,
``ram_mb`` and ``swap_mb`` MiB (Nova's ``units.Gi`` / ``units.Mi`` from oslo_utils)."""
from __future__ import annotations

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3
