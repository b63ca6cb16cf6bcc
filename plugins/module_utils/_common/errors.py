# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type of the driver layer.

module_utils raise VirtopsError with a message that says what failed and what to do;
modules turn it into fail_json(msg=...) at the edge. An OSError that no layer below turned into
one (a read-only or full filesystem, a vanished path) is reported at the same edge by
``host_os_error``, so the operator reads which path and why instead of a module traceback.
Nothing else is caught broadly.
"""
from __future__ import annotations


class VirtopsError(Exception):
    """A failure the operator can act on. ``details`` go into the module result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


def host_os_error(exc: OSError) -> str:
    """The message for an OSError that reached a module's edge."""
    where = ""
    if exc.filename is not None:
        where = " on %s" % exc.filename
        if exc.filename2 is not None:
            where += " -> %s" % exc.filename2
    return ("the host refused a file operation%s: %s (errno %s). Check that filesystem (free "
            "space, read-only mount, permissions) and run again"
            % (where, exc.strerror or exc, exc.errno))
