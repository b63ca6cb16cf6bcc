#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The collection's docsite as Ansible users read it, built with the ecosystem's tools (the
# tools venv, requirements-tools.txt):
# 1. docs/docsite/rst/*.rst from the docs/*.md pages docs/docsite/extra-docs.yml lists (the
#    Markdown is the one source; scripts/docs_rst.py). Under CI=true nothing is written: a
#    stale .rst fails, so the tarball never ships guides older than their pages.
# 2. antsibull-docs lint-collection-docs --plugin-docs: every plugin, role, extra doc and link.
# 3. antsibull-docs collection (the RST of every plugin and role page, as docs.ansible.com and
#    Galaxy render them); a "malformed documentation" page fails the build.
# 4. sphinx-build -W: the HTML site in .cache/docsite/html; a broken reference fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/.cache/tools"
OUT="$ROOT/.cache/docsite"
bash scripts/tools.sh
export PATH="$TOOLS/bin:$PATH"
# The checkout as the collection virtops.compute (scripts/setup.sh links it there).
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections"
if [ ! -e "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/virtops/compute/galaxy.yml" ]; then
  mkdir -p "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/virtops"
  ln -sfn ../../../.. "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/virtops/compute"
fi

if [ "${CI:-}" = "true" ]; then
  "$TOOLS/bin/python" scripts/docs_rst.py "$ROOT" --check
else
  "$TOOLS/bin/python" scripts/docs_rst.py "$ROOT"
fi

antsibull-docs lint-collection-docs --plugin-docs . \
  || { echo "docs: antsibull-docs lint-collection-docs found the problems above" >&2; exit 1; }

rm -rf "$OUT" && mkdir -p "$OUT/rst"
chmod og-w "$OUT/rst"
antsibull-docs collection --use-current --squash-hierarchy --fail-on-error \
  --dest-dir "$OUT/rst" virtops.compute > "$OUT/antsibull-docs.log" 2>&1 \
  || { cat "$OUT/antsibull-docs.log"; echo "docs: antsibull-docs collection failed" >&2; exit 1; }
malformed=$(grep -rl -i "malformed documentation" "$OUT/rst" || true)
if [ -n "$malformed" ]; then
  echo "docs: antsibull-docs wrote malformed documentation pages:" >&2
  echo "$malformed" >&2
  exit 1
fi

sphinx-build -b html -c scripts/docsite -W --keep-going -q -d "$OUT/doctrees" \
  "$OUT/rst" "$OUT/html" 2> "$OUT/sphinx.log" \
  || { cat "$OUT/sphinx.log"; echo "docs: sphinx-build failed (warnings are errors)" >&2; exit 1; }
pages=$(find "$OUT/rst" -name '*.rst' | wc -l)
guides=$(find "$ROOT/docs/docsite/rst" -name '*.rst' | wc -l)
echo "docs: $pages pages ($guides guides from docs/*.md), none malformed; HTML in" \
  "$(realpath --relative-to="$ROOT" "$OUT/html")/index.html"
