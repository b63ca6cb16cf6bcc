# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The virtualenv whose ansible-core the integration tests drive.

``VIRTOPS_TEST_VENV`` names it (absolute, or relative to the repository); the default is
``.venv``, which has the highest ansible-core the collection supports. ``make test-core-lowest``
points it at ``.cache/venv-core-lowest`` to run the same tests with the lowest one
(CONTRIBUTING.md, Tests).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / os.environ.get("VIRTOPS_TEST_VENV", ".venv")
VENV_BIN = VENV / "bin"


def venv_tool(name: str) -> str:
    """The path of ``name`` (``ansible-playbook``, ``python``, ...) in the selected virtualenv."""
    path = VENV_BIN / name
    if not os.access(str(path), os.X_OK):
        raise AssertionError("%s is missing: VIRTOPS_TEST_VENV=%s names no virtualenv with %s "
                             "(run `make setup`, or point VIRTOPS_TEST_VENV at one)"
                             % (path, os.environ.get("VIRTOPS_TEST_VENV", ".venv"), name))
    return str(path)
