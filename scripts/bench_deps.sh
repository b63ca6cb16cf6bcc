#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# community.libvirt for bench/bench_boot.py's baseline only (never a dependency of the
# collection): taken out of PyPI's `ansible` package (pinned; PyPI is reachable where Galaxy
# may not be) into .cache/bench/collections.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ANSIBLE_PACKAGE="ansible==11.13.0"
DEST="$ROOT/.cache/bench/collections"
[ -d "$DEST/ansible_collections/community/libvirt" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ROOT/.venv/bin/pip" download -q --no-deps "$ANSIBLE_PACKAGE" -d "$work"
mkdir -p "$DEST"
"$ROOT/.venv/bin/python" - "$work"/ansible-*.whl "$DEST" <<'PYEOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/community/libvirt/"
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith(prefix)]
    if not members:
        sys.exit("bench_deps: %s has no community.libvirt" % wheel)
    archive.extractall(dest, members)
print("bench_deps: community.libvirt in %s" % dest)
PYEOF
