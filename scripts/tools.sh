#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The ecosystem's judges (requirements-tools.txt) in a virtualenv of their own, .cache/tools:
# they pull their own ansible-core, which must not replace the one in .venv. Re-installed only
# when requirements-tools.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.cache/tools
stamp="$TOOLS/.requirements-tools.txt"
if [ -x "$TOOLS/bin/python" ] && cmp -s requirements-tools.txt "$stamp"; then
  exit 0
fi
echo "tools: installing requirements-tools.txt into $TOOLS"
rm -rf "$TOOLS"
/usr/bin/python3 -m venv "$TOOLS"
"$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r requirements-tools.txt
cp requirements-tools.txt "$stamp"
