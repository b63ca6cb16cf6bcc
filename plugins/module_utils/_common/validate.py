# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one strict-integer check, for every value a user gives as a number.

A size, a count or an id read wrong sizes a guest wrong, so a value is an integer only when
it is one: ``True`` is never ``1``, ``1.5`` is never ``1``. Callers differ only in what they
take besides an ``int``, and say so by parameter:

- ``text``: ``"exact"`` takes the text of an integer as Python writes it (``"2"``, ``" 2 "``,
  ``"-3"``; never ``"+2"``, ``"02"`` or ``"2_0"``), ``"loose"`` any text ``int()`` reads
  (``"+2"``, ``"02"``), ``None`` no text at all;
- ``floats``: a float that is a whole number (``2.0``, as a YAML or JSON tool may write it).

Every refusal names the value (``what``) and, given ``hint``, what to write instead.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

TEXT_MODES = ("exact", "loose", None)


def _read(value: Any, text: Optional[str], floats: bool) -> Optional[int]:
    """The integer ``value`` is, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if floats and value.is_integer() else None
    if isinstance(value, str) and text is not None:
        written = value.strip()
        try:
            number = int(written)
        except ValueError:
            return None
        if text == "exact" and str(number) != written:
            return None
        return number
    return None


def strict_int(value: Any, what: str, minimum: Optional[int] = None,
               maximum: Optional[int] = None, text: Optional[str] = "exact",
               floats: bool = False, hint: str = "") -> int:
    """``value`` as an int, or a VirtopsError that says what ``what`` must be.

    Messages: ``<what> must be an integer, got <value>``; ``<what> cannot be negative``
    (minimum 0), ``must be at least``, ``must be at most`` or ``must be between``; each
    followed by ``; give <hint>`` when a hint is given.
    """
    if text not in TEXT_MODES:
        raise ValueError("text must be one of %r" % (TEXT_MODES,))
    give = "; give %s" % hint if hint else ""
    number = _read(value, text, floats)
    if number is None:
        raise VirtopsError("%s must be an integer, got %r%s" % (what, value, give))
    low = minimum is not None and number < minimum
    high = maximum is not None and number > maximum
    if low or high:
        if minimum is not None and maximum is not None:
            rule = "must be between %d and %d" % (minimum, maximum)
        elif minimum == 0:
            rule = "cannot be negative"
        elif low:
            rule = "must be at least %d" % minimum
        else:
            rule = "must be at most %d" % maximum
        raise VirtopsError("%s %s, got %d%s" % (what, rule, number, give))
    return number


_TRUE = ("1", "yes", "true", "on", "y")
_FALSE = ("0", "no", "false", "off", "n")


def boolish(value: Any, what: str) -> bool:
    """A yes/no value as image properties and extra specs write it (``true``, ``yes``,
    ``on``, ``1`` and their opposites, any case), or a VirtopsError naming ``what``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise VirtopsError("%s must be a boolean (yes/no, true/false), got %r" % (what, value))


def catalog_entry(data: Any, where: str, known: Sequence[str], ignored: Sequence[str],
                  shape: str) -> Mapping:
    """A catalog entry (``flavors.<name>``, ``images.<name>``): a mapping of known keys only.
    ``ignored`` keys (Nova/Glance fields the collection does not use) pass; ``shape`` says what
    the mapping holds, for the message when it is not one."""
    if not isinstance(data, Mapping):
        raise VirtopsError("%s must be a mapping with %s" % (where, shape))
    unknown = sorted(str(k) for k in data if k not in tuple(known) + tuple(ignored))
    if unknown:
        raise VirtopsError("%s: unknown key(s) %s (known: %s)"
                           % (where, ", ".join(unknown), ", ".join(known)))
    return data
