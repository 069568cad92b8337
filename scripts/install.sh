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
    echo "!!! Citus's package repository is not reachable from this machine, so Citus is NOT installed." >&2
    echo "!!! The local formation below runs with the test STAND-IN (not real Citus)." >&2
  fi
fi
install_python_package ""
export PATH="${PATRONI_CITUS_VENV}/bin:${PATH}"

citus_choice=auto
if [ ! -f "/usr/share/postgresql/${PG_MAJOR}/extension/citus.control" ]; then citus_choice=standin; fi
as_root "${PATRONI_CITUS_VENV}/bin/patroni-citus" local up --citus "${citus_choice}" "$@"
as_root "${PATRONI_CITUS_VENV}/bin/patroni-citus" local status
echo "==> stop it with: ${PATRONI_CITUS_VENV}/bin/patroni-citus local down"
