#!/usr/bin/env bash
# Prepare THIS machine to build and run the image with rootful podman, then build it.
#
# Everything host-specific lives here, never in the Dockerfile (see docs/container.md):
#   1. podman, runc, netavark, debootstrap and docker-compose from Debian;
#   2. a containers.conf drop-in: runc (Debian's crun fails on hybrid cgroups), cgroupfs, file
#      events, and default ulimits no higher than this host allows (else "error setting rlimits");
#   3. debian:bookworm-slim made locally with debootstrap (no image registry is reachable);
#   4. a wheelhouse built on the host (HTTPS from inside a build does not trust this host's CAs);
#   5. compose.yaml's TLS files in docker/demo-tls (docker/make-demo-certs.py; never committed),
#      unless they exist (the container tests make their own per formation);
#   6. the test etcd image (Debian's etcd) and the patroni-citus image, stand-in flavour;
#   7. the runtime image's size, checked against its budget.
# Usage: scripts/container-setup.sh [--no-build]    (env: see the variables below)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

IMAGE=${PATRONI_CITUS_IMAGE:-localhost/patroni-citus:standin}
ETCD_IMAGE=${PATRONI_CITUS_ETCD_IMAGE:-localhost/patroni-citus-etcd:test}
CITUS_FLAVOR=${CITUS_FLAVOR:-standin}
BASE_IMAGE=docker.io/library/debian:bookworm-slim
IMAGE_BUDGET_MB=${PATRONI_CITUS_IMAGE_BUDGET_MB:-500}
CONTAINERS_CONF=/etc/containers/containers.conf.d/50-patroni-citus.conf
WHEELHOUSE=docker/wheelhouse
DEMO_TLS=${PATRONI_CITUS_TLS_DIR:-docker/demo-tls}
PATRONI_VERSION=$(sed -n 's/^ARG PATRONI_VERSION=//p' Dockerfile)
# What the image installs beside patroni-citus: Patroni with the DCS clients it needs (etcd3, ZooKeeper).
PATRONI_REQUIREMENT="patroni[etcd3,zookeeper]==${PATRONI_VERSION}"
BUILD=1
[ "${1:-}" = "--no-build" ] && BUILD=0

started=$SECONDS
step_started=$SECONDS
step() {
  echo "==> [container-setup +$((SECONDS - started))s] $*"
  step_started=$SECONDS
}
step_done() {
  echo "    done in $((SECONDS - step_started))s"
}

step "system packages: podman, runc, netavark, debootstrap, docker-compose"
CONTAINER_PACKAGES=(podman runc netavark aardvark-dns iptables debootstrap docker-compose uidmap)
missing=()
for package in "${CONTAINER_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
podman --version
step_done

step "containers.conf: ${CONTAINERS_CONF}"
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
nofile=$((hard_nofile < 1048576 ? hard_nofile : 1048576))
pid_max=$(cat /proc/sys/kernel/pid_max)
hard_nproc=$(ulimit -Hu)
[ "$hard_nproc" = unlimited ] && hard_nproc=$pid_max
nproc=$((hard_nproc < pid_max ? hard_nproc : pid_max))
as_root mkdir -p "$(dirname "$CONTAINERS_CONF")"
as_root tee "$CONTAINERS_CONF" > /dev/null <<EOF
# Written by patroni-citus scripts/container-setup.sh for this host; see docs/container.md.
[containers]
# Podman's defaults exceed what this host lets a container have; cap both at the host's limits.
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
# Debian's crun fails on this host's hybrid cgroup layout; runc works.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
echo "    runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}') nofile=${nofile} nproc=${nproc}"
step_done

step "base image ${BASE_IMAGE}"
if podman image exists "$BASE_IMAGE"; then
  echo "    present (made earlier; podman rmi ${BASE_IMAGE} to make it again)"
else
  rootfs=$(mktemp -d /var/tmp/patroni-citus-rootfs.XXXXXX)
  trap 'as_root rm -rf "$rootfs"' EXIT
  echo "    debootstrap --variant=minbase bookworm (about 30 s)"
  as_root debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian > "$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # Shape it like the official slim image: its sources (with security updates), no documentation,
  # no translations, no kept .deb files.
  as_root rm -f "$rootfs/etc/apt/sources.list" "$rootfs"/var/cache/apt/archives/*.deb
  as_root tee "$rootfs/etc/apt/sources.list.d/debian.sources" > /dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/docker" > /dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  as_root tee "$rootfs/etc/apt/apt.conf.d/docker-no-languages" > /dev/null <<<'Acquire::Languages "none";'
  as_root tee "$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests" > /dev/null \
    <<<'Apt::AutoRemove::SuggestsImportant "false";'
  as_root find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  as_root find "$rootfs/usr/share/man" "$rootfs/usr/share/info" -mindepth 1 -delete
  as_root find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
  as_root tar -C "$rootfs" --numeric-owner -c . \
    | podman import --change 'CMD ["bash"]' \
        --change 'LABEL io.patroni-citus.base="debootstrap --variant=minbase bookworm (local stand-in for debian:bookworm-slim)"' \
        - "$BASE_IMAGE"
  as_root rm -rf "$rootfs"
  trap - EXIT
fi
podman image ls --format '    {{.Repository}}:{{.Tag}} {{.Size}}' "$BASE_IMAGE"
step_done

step "wheelhouse ${WHEELHOUSE} (patroni-citus + ${PATRONI_REQUIREMENT})"
wheel_python="${PATRONI_CITUS_VENV}/bin/python"
if [ ! -x "$wheel_python" ]; then
  wheel_venv=$(mktemp -d /var/tmp/patroni-citus-wheel-venv.XXXXXX)
  /usr/bin/python3 -m venv "$wheel_venv"
  wheel_python="$wheel_venv/bin/python"
fi
find "$WHEELHOUSE" -name '*.whl' -delete
"$wheel_python" -m pip wheel -q --disable-pip-version-check --use-pep517 --wheel-dir "$WHEELHOUSE" \
  . "$PATRONI_REQUIREMENT" 2> >(grep -v "^WARNING: Location 'file:" >&2)
[ -n "${wheel_venv:-}" ] && rm -rf "$wheel_venv"
echo "    $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels"
step_done

step "demo TLS files ${DEMO_TLS} (docker/make-demo-certs.py: a private CA, etcd's and each member's certificate)"
if [ -f "${DEMO_TLS}/ca.crt" ]; then
  echo "    present (made earlier; delete ${DEMO_TLS} to make a new CA)"
else
  # The script imports patroni_citus.pki: the venv's (scripts/install.sh and test.sh install this
  # checkout there), else a throwaway venv from the wheelhouse just built. -P: the package as the
  # script sees it, not the checkout in the working directory.
  cert_python="${PATRONI_CITUS_VENV}/bin/python"
  if ! "$cert_python" -P -c "import patroni_citus.pki" 2> /dev/null; then
    cert_venv=$(mktemp -d /var/tmp/patroni-citus-cert-venv.XXXXXX)
    /usr/bin/python3 -m venv "$cert_venv"
    "$cert_venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" patroni-citus
    cert_python="$cert_venv/bin/python"
  fi
  as_root "$cert_python" docker/make-demo-certs.py "$DEMO_TLS" | sed 's/^/    /'
  [ -n "${cert_venv:-}" ] && rm -rf "$cert_venv"
fi
step_done

if [ "$BUILD" -eq 0 ]; then
  echo "==> [container-setup] --no-build: done in $((SECONDS - started))s"
  exit 0
fi

step "test etcd image ${ETCD_IMAGE} (Debian's etcd; compose.yaml defaults to the upstream image)"
podman build --quiet --format docker --tag "$ETCD_IMAGE" --file tests/container/etcd.Containerfile tests/container > /dev/null
step_done

step "patroni-citus image ${IMAGE} (CITUS_FLAVOR=${CITUS_FLAVOR}: the stand-in is NOT Citus)"
build_log=$(mktemp /var/tmp/patroni-citus-build.XXXXXX.log)
# --format docker: the OCI format has no SHELL or HEALTHCHECK, and podman would drop both.
if ! podman build --format docker --tag "$IMAGE" --target runtime --build-arg "CITUS_FLAVOR=${CITUS_FLAVOR}" . > "$build_log" 2>&1; then
  tail -40 "$build_log"
  echo "!!! image build failed; full log: $build_log" >&2
  exit 1
fi
grep -E '^(\[[0-9/]+\] )?STEP|^COMMIT' "$build_log" | cut -c1-120 | sed 's/^/    /'
rm -f "$build_log"
# Earlier builds of this image, untagged now, would pile up run after run; the layer cache stays.
podman image prune --force --filter "label=io.patroni-citus.citus-flavor" > /dev/null
step_done

step "image size (podman image inspect --format {{.Size}}: the runtime image's uncompressed size)"
size_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
size_mb=$((size_bytes / 1000000))
base_mb=$(($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") / 1000000))
echo "    ${IMAGE}: ${size_mb} MB (${size_bytes} bytes; base ${BASE_IMAGE} ${base_mb} MB; budget ${IMAGE_BUDGET_MB} MB)"
podman history --format '    {{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-150 | head -20
if [ "$size_mb" -ge "$IMAGE_BUDGET_MB" ]; then
  echo "!!! ${IMAGE} is ${size_mb} MB, over the ${IMAGE_BUDGET_MB} MB budget" >&2
  exit 1
fi
step_done
echo "==> [container-setup] ready in $((SECONDS - started))s: image ${IMAGE}, etcd ${ETCD_IMAGE}"
