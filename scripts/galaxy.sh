#!/usr/bin/env bash
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Galaxy's own importer on the tarball we would publish: the checks Galaxy and Automation Hub
# run on upload (metadata, docs of every plugin via ansible-doc, role READMEs, ansible-lint).
# Its ansible-test step runs in a container Galaxy provides; `make sanity` runs those tests here,
# so that step is switched off. Any ERROR or WARNING line fails the check.
# Then ansible-builder, as an AWX admin runs it: what the installed collection asks of an
# Execution Environment must be exactly its controller-side needs, and `ansible-builder create`
# must accept docs/examples/execution-environment.yml with the collection taken from the tarball.
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

EE="$OUT/ee"
mkdir -p "$EE"
"$ROOT/.venv/bin/ansible-galaxy" collection install --force -p "$EE/collections" "$tarball" >/dev/null 2>&1
"$TOOLS/bin/ansible-builder" introspect --sanitize "$EE/collections" > "$EE/introspect.yml"
"$TOOLS/bin/python" - "$EE/introspect.yml" <<'PY'
import sys, yaml
found = yaml.safe_load(open(sys.argv[1]))
def names(entries):
    return sorted(entry.split("#")[0].strip() for entry in entries or [])
expected = {"python": ["psycopg[binary]>=3.1"],
            "system": ["openssh-client [platform:dpkg]", "openssh-clients [platform:rpm]"]}
got = {"python": names(found.get("python")), "system": names(found.get("system"))}
if got != expected:
    sys.exit("ansible-builder introspect: the collection asks an EE for %r, expected %r" % (got, expected))
print("ansible-builder introspect: the EE gets %s and %s" % (", ".join(got["python"]), ", ".join(got["system"])))
PY
"$TOOLS/bin/python" - "$ROOT/docs/examples/execution-environment.yml" "$tarball" "$EE/execution-environment.yml" <<'PY'
import sys, yaml
definition = yaml.safe_load(open(sys.argv[1]))
definition["dependencies"]["galaxy"] = {"collections": [{"name": sys.argv[2], "type": "file"}]}
yaml.safe_dump(definition, open(sys.argv[3], "w"), sort_keys=False)
PY
"$TOOLS/bin/ansible-builder" create -f "$EE/execution-environment.yml" -c "$EE/context" \
  --output-filename Containerfile > "$EE/create.log" 2>&1 \
  || { cat "$EE/create.log"; echo "ansible-builder create failed" >&2; exit 1; }
test -s "$EE/context/Containerfile"
echo "ansible-builder create: $(realpath --relative-to="$ROOT" "$EE/context/Containerfile") written"
