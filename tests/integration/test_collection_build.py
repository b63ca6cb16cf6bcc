# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection builds into a tarball that installs, and ansible-doc reads its plugins."""
from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

from tests.integration.ansible_venv import VENV_BIN

REPO = Path(__file__).resolve().parents[2]
BIN = VENV_BIN


def run(argv, cwd, env=None):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_built_collection_installs_and_documents_every_module(tmp_path):
    run([BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path, REPO], cwd=tmp_path)
    tarballs = list(tmp_path.glob("virtops-compute-*.tar.gz"))
    assert len(tarballs) == 1
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert not [n for n in names if n.startswith((".venv", ".cache", ".ansible", "tests/lab/state"))]
    dev_only = ("tests/lab", "tests/integration", "tests/fixtures/guest", "bench",
                "requirements-dev.txt", "pytest.ini", ".gitignore", "docs/lab.md")
    assert not [n for n in names if n.startswith(dev_only)], "developer tooling is not shipped"
    assert "LICENSE" in names
    for role in sorted(p.name for p in (REPO / "roles").iterdir()):
        assert "roles/%s/README.md" % role in names, "Galaxy needs a README per role"

    collections = tmp_path / "collections"
    # A clean environment: with this checkout's ansible.cfg, galaxy would find the repository
    # itself (linked under .cache/collections) already "installed" and skip the tarball.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHONPATH"))}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    run([BIN / "ansible-galaxy", "collection", "install", "--force", "-p", collections, tarballs[0]],
        cwd=tmp_path, env=env)
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
    assert "vm_host_facts" in modules
    listed = run([BIN / "ansible-doc", "-t", "module", "-l", "virtops.compute"], cwd=tmp_path, env=env)
    for module in modules:
        assert "virtops.compute.%s" % module in listed
        doc = run([BIN / "ansible-doc", "virtops.compute.%s" % module], cwd=tmp_path, env=env)
        assert "EXAMPLES" in doc and "RETURN VALUES" in doc
