#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint, types, unit and integration tests.
# Uses real Citus where installed, else the clearly labelled stand-in (PATRONI_CITUS_TEST_CITUS=real|standin|auto).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

install_system_packages
install_python_package "[test]"
export PATH="${PATRONI_CITUS_VENV}/bin:${PATH}"

echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy"
mypy
echo "==> pytest"
pytest -p no:cacheprovider "$@"
