#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ansible-test must run from an ansible_collections/<ns>/<name> tree: copy the files git knows
# (tracked, and untracked but not ignored) there and run sanity for this machine's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# One run at a time per checkout: each run rebuilds the shared copy below.
mkdir -p "$ROOT/.cache"
exec 9>"$ROOT/.cache/sanity.lock"
flock 9
DEST="$ROOT/.cache/sanity/ansible_collections/virtops/compute"
PY=$("$ROOT/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
rm -rf "$DEST"
mkdir -p "$DEST"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$DEST/$(dirname "$f")"
  cp -a "$f" "$DEST/$f"
done
cd "$DEST"
# A git repo so ansible-test lists exactly these files.
git init -q . && git add -A && git -c user.email=ci@virtops -c user.name=ci commit -qm sanity
export PATH="$ROOT/.venv/bin:$PATH"
# Offline pip bootstrap for ansible-test's per-test virtualenvs (see scripts/get_pip_offline.py).
pip_version=$("$ROOT/.venv/bin/python" - <<'PYEOF'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PYEOF
)
mkdir -p "$HOME/.ansible/test/cache"
cp "$ROOT/scripts/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
exec ansible-test sanity --requirements --python "$PY" --color no "$@"
