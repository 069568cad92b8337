# Shared by install.sh and test.sh: system packages and the venv Patroni runs from.
# The venv lives outside /root and is built from Debian's /usr/bin/python3, because Patroni,
# PostgreSQL and the callbacks run as the unprivileged OS user `postgres`, which must read it.
set -euo pipefail

PATRONI_CITUS_VENV=${PATRONI_CITUS_VENV:-/opt/patroni-citus/venv}
PG_MAJOR=${PG_MAJOR:-15}
SYSTEM_PACKAGES=(
  "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" postgresql-client
  etcd-server etcd-client zookeeper pgbouncer
  prometheus  # promtool for docs/alerts.yml, and the real server the metrics test scrapes with
  python3 python3-venv python3-dev gcc make procps ca-certificates curl iproute2 util-linux
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_system_packages() {
  local missing=()
  for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "==> system packages present"
  fi
}

install_python_package() {
  # $1: pip extras, e.g. "[test]" or ""
  echo "==> Python venv at ${PATRONI_CITUS_VENV}"
  as_root mkdir -p "$(dirname "${PATRONI_CITUS_VENV}")"
  [ -x "${PATRONI_CITUS_VENV}/bin/python" ] || as_root /usr/bin/python3 -m venv "${PATRONI_CITUS_VENV}"
  as_root "${PATRONI_CITUS_VENV}/bin/pip" install -q --disable-pip-version-check ".$1"
  # Always replace the package itself, so the venv runs exactly this checkout.
  as_root "${PATRONI_CITUS_VENV}/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall .
  as_root chmod -R a+rX "${PATRONI_CITUS_VENV}"
}
