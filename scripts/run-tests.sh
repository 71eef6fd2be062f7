#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs and starts what the tests
# need (docker.io, haproxy, openssh-server, the offline base images), then runs tox:
# unit tests on every installed Python 3.10-3.13, ruff + mypy, the package (python -m build and
# twine check of the sdist and the wheel), and the end-to-end suite.
# Arguments go to tox instead, e.g. `bash scripts/run-tests.sh -e e2e -- -k rollback`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-env.sh

# pyenv keeps python3.X off PATH unless selected, and tox queries interpreters with a clean
# environment: link every installed 3.10-3.13 as python3.X into a directory at the front of PATH.
PYBIN=/var/cache/bgci/pythons
mkdir -p "$PYBIN"
for exe in /usr/bin/python3.1[0-3] "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[0-3].*/bin/python3.1[0-3]; do
    [ -x "$exe" ] && ln -sf "$exe" "$PYBIN/$(basename "$exe")"
done
export PATH="$PYBIN:$PATH"
# tox in a venv of its own: Debian's python3 refuses `pip install` into the system (PEP 668)
TOX_VENV=/var/cache/bgci/tox-venv
if [ ! -x "$TOX_VENV/bin/tox" ]; then
    python3 -m venv "$TOX_VENV"
    "$TOX_VENV/bin/pip" install --quiet --disable-pip-version-check "tox>=4"
fi
tox() { "$TOX_VENV/bin/tox" "$@"; }

if [ "$#" -gt 0 ]; then
    tox "$@"
    exit $?
fi
rm -f .tox/junit-*.xml
status=0
tox run-parallel -e py310,py311,py312,py313,lint,package --parallel 2 --parallel-no-spinner \
    --parallel-live || status=$?
tox run -e e2e || status=$?
shopt -s nullglob
reports=(.tox/junit-*.xml)
python3 scripts/junit-total.py "${reports[@]}" || status=$?
exit "$status"
