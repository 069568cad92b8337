#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint, types, unit and integration tests,
# then the container image and compose formation under podman.
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
echo "==> promtool (docs/alerts.yml)"
promtool check rules docs/alerts.yml
promtool test rules tests/unit/alerts_test.yml
echo "==> hadolint"
hadolint Dockerfile tests/container/etcd.Containerfile
echo "==> pytest"
# The partition drill (tests/integration/test_partition.py) needs root for ip netns, and the alert rules
# and metrics tests need Debian's prometheus (promtool, the server): fail, not skip.
PATRONI_CITUS_REQUIRE_NETNS=1 PATRONI_CITUS_REQUIRE_PROMETHEUS=1 pytest -p no:cacheprovider --ignore=tests/container "$@"
# The image and compose.yaml, for real under rootful podman (docs/container.md): host setup and
# the stand-in build first, then the drill; here a missing prerequisite fails instead of skipping.
echo "==> container image (scripts/container-setup.sh)"
bash scripts/container-setup.sh
echo "==> pytest tests/container"
PATRONI_CITUS_REQUIRE_CONTAINERS=1 pytest -p no:cacheprovider -s tests/container
