#!/usr/bin/env bash
# Install patroni-citus and everything it runs on, then start a local formation and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

install_system_packages
if ! dpkg-query -W -f='${Status}' "postgresql-${PG_MAJOR}-citus-13.2" 2>/dev/null | grep -q "ok installed"; then
  echo "==> trying Citus's official packages (packagecloud.io)"
  if curl -fsS --max-time 20 https://install.citusdata.com/community/deb.sh -o /tmp/citus-deb.sh \
      && as_root bash /tmp/citus-deb.sh && as_root apt-get install -y -qq "postgresql-${PG_MAJOR}-citus-13.2"; then
    echo "==> Citus installed"
  else
    echo "!!! Citus's package repository is not reachable from this machine: no Citus package installed." >&2
    echo "!!! The formation below uses real Citus only if this PostgreSQL has it anyway; it says which." >&2
  fi
fi
install_python_package ""
export PATH="${PATRONI_CITUS_VENV}/bin:${PATH}"

# Real Citus wherever this PostgreSQL has it (the product's own probe), else the labelled stand-in.
citus_choice=standin
if "${PATRONI_CITUS_VENV}/bin/python" -c \
    'import sys; from patroni_citus.local import pgtree; sys.exit(not pgtree.citus_available(pgtree.find_system_bindir()))'
then
  citus_choice=real
fi
as_root "${PATRONI_CITUS_VENV}/bin/patroni-citus" local up --citus "${citus_choice}" "$@"
as_root "${PATRONI_CITUS_VENV}/bin/patroni-citus" local status || true
used=$(as_root "${PATRONI_CITUS_VENV}/bin/patroni-citus" local status --json \
  | "${PATRONI_CITUS_VENV}/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["citus"])' || true)
if [ "${used}" = "real" ]; then
  echo "==> the formation runs real Citus"
else
  echo "==> the formation runs the Citus STAND-IN (a test double, not real Citus): no data is distributed"
fi
echo "==> stop it with: ${PATRONI_CITUS_VENV}/bin/patroni-citus local down"
