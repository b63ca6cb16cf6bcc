# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type of the driver layer.

module_utils raise VirtopsError with a message that says what failed and what to do;
modules turn it into fail_json(msg=...) at the edge. Nothing else is caught broadly.
"""
from __future__ import annotations


class VirtopsError(Exception):
    """A failure the operator can act on. ``details`` go into the module result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details
