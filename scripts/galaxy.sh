#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Galaxy's own importer on the tarball we would publish: the checks Galaxy and Automation Hub
# run on upload (metadata, docs of every plugin via ansible-doc, role READMEs, ansible-lint).
# Its ansible-test step runs in a container Galaxy provides; `make sanity` runs those tests here,
# so that step is switched off. Any ERROR or WARNING line fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/.cache/tools"
bash scripts/tools.sh
OUT="$ROOT/.cache/galaxy"
rm -rf "$OUT" && mkdir -p "$OUT"
"$ROOT/.venv/bin/ansible-galaxy" collection build --force --output-path "$OUT" . >/dev/null
cat > "$OUT/galaxy-importer.cfg" <<CFG
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
CHECK_REQUIRED_TAGS = False
LOG_LEVEL_MAIN = INFO
CFG
tarball=$(ls "$OUT"/virtops-compute-*.tar.gz)
# Run it from the output folder: ansible-lint must not pick up this checkout's configuration.
cd "$OUT"
status=0
PATH="$TOOLS/bin:$PATH" GALAXY_IMPORTER_CONFIG="$OUT/galaxy-importer.cfg" \
  ANSIBLE_LOCAL_TEMP="$OUT/tmp" \
  "$TOOLS/bin/python" -m galaxy_importer.main "$tarball" > "$OUT/importer.log" 2>&1 || status=$?
problems=$(grep -E '^(ERROR|WARNING)' "$OUT/importer.log" || true)
if [ "$status" -ne 0 ] || [ -n "$problems" ] \
   || ! grep -q 'Importer processing completed successfully' "$OUT/importer.log"; then
  cat "$OUT/importer.log"
  echo "galaxy-importer: the tarball would not import cleanly (exit $status); see above" >&2
  exit 1
fi
echo "galaxy-importer: $(basename "$tarball") imports cleanly"
