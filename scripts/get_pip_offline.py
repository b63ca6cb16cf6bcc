# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for get-pip.py, for ansible-test on machines that reach PyPI but not other hosts.

ansible-test bootstraps pip in its per-test virtualenvs by downloading get-pip.py from its own
CI host. This does the same job offline: pip from the interpreter's bundled wheel (ensurepip),
then the requested packages (e.g. ``pip==24.2``) from the configured package index.
scripts/sanity.sh places it where ansible-test looks for its cached copy.
"""
import ensurepip
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY_OPTIONS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
