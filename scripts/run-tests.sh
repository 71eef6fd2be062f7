#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs and starts what the tests
# need (docker.io, haproxy, openssh-server, the offline base images), then runs tox:
# unit tests on every installed Python 3.10-3.13, ruff + mypy, and the end-to-end suite.
# Arguments go to tox instead, e.g. `bash scripts/run-tests.sh -e e2e -- -k rollback`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-env.sh

# pyenv keeps python3.X off PATH unless selected: select every 3.10-3.13 it has, current first.
if command -v pyenv >/dev/null 2>&1; then
    current=$(pyenv version-name | cut -d: -f1)
    others=$(pyenv versions --bare | grep -E '^3\.1[0-3]\.[0-9]+$' | grep -vx "$current" | tr '\n' ':')
    export PYENV_VERSION="${current}:${others%:}"
fi
python3 -m pip install --quiet --disable-pip-version-check "tox>=4"
export BGCI_SCHEMAS_DIR="${BGCI_SCHEMAS_DIR:-$(cd .. && pwd)/shared/schemas}"

if [ "$#" -gt 0 ]; then
    exec python3 -m tox "$@"
fi
rm -f .tox/junit-*.xml
status=0
python3 -m tox run-parallel -e py310,py311,py312,py313,lint --parallel 2 --parallel-no-spinner \
    --parallel-live || status=$?
python3 -m tox run -e e2e || status=$?
shopt -s nullglob
reports=(.tox/junit-*.xml)
python3 scripts/junit-total.py "${reports[@]}" || status=$?
exit "$status"
