# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a server request may carry, checked the same way on the controller and on the host.

Nova's API refuses an oversized ``user_data`` or too much metadata before it schedules; the
boot request (plugin_utils/_boot/request.py) does so with these checks before a host is
claimed, and the config drive builder (module_utils/_guest/metadata.py) again before it writes.
"""
from __future__ import annotations

from typing import Union

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

# Nova's API limit: user_data is at most 65535 characters once base64-encoded.
USER_DATA_B64_MAX = 65535
# Nova's default metadata_items quota, and its limit on a metadata key or value.
METADATA_MAX_ITEMS = 128
META_ITEM_MAX = 255


def as_bytes(value: Union[str, bytes, bytearray], what: str) -> bytes:
    """Text (UTF-8) or bytes, as bytes."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise VirtopsError("%s must be text or bytes, not %s" % (what, type(value).__name__))


def check_user_data(value: Union[str, bytes, bytearray], what: str = "user_data") -> bytes:
    """``value`` as bytes if it fits Nova's limit (the API refuses user_data longer than
    65535 characters once base64-encoded), else raise. The boot request checks it with this
    before scheduling; the config drive builder again before writing."""
    user_data = as_bytes(value, what)
    encoded_len = 4 * ((len(user_data) + 2) // 3)
    if encoded_len > USER_DATA_B64_MAX:
        raise VirtopsError("%s is %d bytes; Nova's limit is %d characters of base64 (about 48 "
                           "KiB of raw data)" % (what, len(user_data), USER_DATA_B64_MAX))
    return user_data
