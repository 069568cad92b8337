# patroni-citus: PostgreSQL + Patroni + Citus, one Patroni member per container.
#
#   docker build -t patroni-citus .                                # Citus from Citus's packages
#   docker build -t patroni-citus --build-arg CITUS_FLAVOR=standin .   # TEST STAND-IN, NOT Citus
#
# Stages: `base` (Debian bookworm, the versions, the postgres user, PostgreSQL and Python: what
# every later stage runs on), `setup` (compilers, Citus, this package's venv) and `runtime` (base
# plus only the finished artefacts of setup; the default target).
# The image builds offline from a wheelhouse when docker/wheelhouse/ holds wheels (CI does this:
# scripts/container-setup.sh), otherwise pip installs from the package index.

ARG PG_MAJOR=15
ARG CITUS_VERSION=13.2
ARG PATRONI_VERSION=4.1.5
# packages: real Citus from Citus's official deb repository (repos.citusdata.com).
# standin:  the patroni-citus test stand-in (NOT Citus), for machines that cannot reach Citus's
#           repository; it models Citus's node metadata only and distributes no data.
ARG CITUS_FLAVOR=packages

FROM docker.io/library/debian:bookworm-slim AS base
ARG PG_MAJOR
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV LANG=C.UTF-8
# A fixed uid/gid, created before any package can pick one, so volumes keep their owner across
# image versions. Debian's postgresql-common must not create its own "main" cluster: Patroni
# runs initdb itself in the data directory below.
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --no-create-home \
      --shell /bin/bash --comment "PostgreSQL administrator" postgres \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf
# postgresql-${PG_MAJOR} comes from Debian, which ships 15 only in bookworm (another major would
# need PostgreSQL's own apt repository here); Citus's packages install on top of it.
# Versions are chosen by package name (PostgreSQL major, Citus series), not pinned exactly:
# Debian stable's archive carries only the current point/security release of each package, so an
# exact pin would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "postgresql-${PG_MAJOR}" python3 pgbouncer \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log


FROM base AS setup
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PG_MAJOR
ARG CITUS_VERSION
ARG PATRONI_VERSION
ARG CITUS_FLAVOR
# Build-only tools. The stand-in needs PostgreSQL's server headers: they are taken out of the
# postgresql-server-dev package with dpkg -x, because installing it would pull clang and
# llvm-dev (several hundred MB) that nothing here uses.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-venv ca-certificates curl gnupg gcc libc6-dev
WORKDIR /build
COPY patroni_citus/local/standin/ /build/standin/
# /artefacts/root mirrors / : runtime copies it over its own root as it is.
# hadolint ignore=DL3008
RUN mkdir -p /artefacts/root /artefacts/debs \
 && case "${CITUS_FLAVOR}" in \
    packages) \
      curl -fsSL https://repos.citusdata.com/community/gpgkey \
        | gpg --dearmor -o /usr/share/keyrings/citusdata-community.gpg \
      && echo "deb [signed-by=/usr/share/keyrings/citusdata-community.gpg] https://repos.citusdata.com/community/debian/ bookworm main" \
        > /etc/apt/sources.list.d/citusdata-community.list \
      && apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
           "postgresql-${PG_MAJOR}-citus-${CITUS_VERSION}" \
      && apt-get download "postgresql-${PG_MAJOR}-citus-${CITUS_VERSION}" \
      && mv postgresql-*-citus-*.deb /artefacts/debs/ \
      ;; \
    standin) \
      apt-get download "postgresql-server-dev-${PG_MAJOR}" \
      && dpkg -x postgresql-server-dev-*.deb /build/pgdev \
      && libdir="/artefacts/root/usr/lib/postgresql/${PG_MAJOR}/lib" \
      && extdir="/artefacts/root/usr/share/postgresql/${PG_MAJOR}/extension" \
      && mkdir -p "${libdir}" "${extdir}" \
      && gcc -shared -fPIC -O2 -Wall -Werror \
           -I"/build/pgdev/usr/include/postgresql/${PG_MAJOR}/server" \
           -o "${libdir}/citus.so" /build/standin/citus_standin.c \
      && install -m 0644 /build/standin/citus.control /build/standin/citus--*.sql "${extdir}/" \
      && grep -q "NOT Citus" "${extdir}/citus.control" \
      ;; \
    *) echo "CITUS_FLAVOR=${CITUS_FLAVOR} is invalid: use packages or standin" >&2; exit 2 ;; \
    esac
# This package and its dependencies, in a venv made from Debian's python3 outside /root so the
# postgres user (Patroni, the callbacks) can read it. Patroni's extras bring the clients of the
# DCSs the settings render (etcd3, ZooKeeper); its Consul and Kubernetes clients need none.
# setup.py copies the top-level patroni.yml.j2 into the package as it builds (MANIFEST.in: the sdist).
COPY pyproject.toml setup.py MANIFEST.in README.md patroni.yml.j2 /build/src/
COPY patroni_citus/ /build/src/patroni_citus/
COPY docker/wheelhouse/ /build/wheelhouse/
RUN python3 -m venv /opt/patroni-citus/venv \
 && if find /build/wheelhouse -maxdepth 1 -name "*.whl" -print -quit | grep -q .; then \
      echo "installing from the wheelhouse (offline)" \
      && /opt/patroni-citus/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
           --no-index --find-links /build/wheelhouse "patroni-citus" "patroni[etcd3,zookeeper]==${PATRONI_VERSION}"; \
    else \
      /opt/patroni-citus/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
           /build/src "patroni[etcd3,zookeeper]==${PATRONI_VERSION}"; \
    fi \
 && /opt/patroni-citus/venv/bin/patroni --version \
 && /opt/patroni-citus/venv/bin/patroni-citus --version \
 && /opt/patroni-citus/venv/bin/pip uninstall -y --disable-pip-version-check pip setuptools \
 && chmod -R a+rX,go-w /opt/patroni-citus


FROM base AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG PG_MAJOR
ARG CITUS_VERSION
ARG PATRONI_VERSION
ARG CITUS_FLAVOR
LABEL org.opencontainers.image.title="patroni-citus" \
      org.opencontainers.image.description="PostgreSQL ${PG_MAJOR} + Patroni ${PATRONI_VERSION} + Citus (${CITUS_FLAVOR}), kept correct under HA by patroni-citus" \
      io.patroni-citus.postgresql-major="${PG_MAJOR}" \
      io.patroni-citus.patroni-version="${PATRONI_VERSION}" \
      io.patroni-citus.citus-version="${CITUS_VERSION}" \
      io.patroni-citus.citus-flavor="${CITUS_FLAVOR}"
COPY --from=setup /opt/patroni-citus/ /opt/patroni-citus/
COPY docker/healthcheck.py /usr/local/lib/patroni-citus/healthcheck.py
# Real Citus: its .deb from setup, with its few library dependencies from Debian.
# Stand-in: its files, plus a loud marker so nobody mistakes the image for one with Citus.
# setup's artefacts are mounted, not copied, so no layer keeps the .deb.
# hadolint ignore=DL3008
RUN --mount=type=bind,from=setup,source=/artefacts,target=/tmp/artefacts \
    if find /tmp/artefacts/debs -maxdepth 1 -name "*.deb" -print -quit | grep -q .; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/artefacts/debs/*.deb \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log; \
    fi \
 && cp -a /tmp/artefacts/root/. / \
 && if [ "${CITUS_FLAVOR}" = standin ]; then \
      echo "This image carries the patroni-citus TEST STAND-IN for Citus (NOT Citus): citus_version() says so." \
        > /etc/patroni-citus-CITUS-STANDIN-NOT-CITUS; \
    fi \
 && test -f "/usr/share/postgresql/${PG_MAJOR}/extension/citus.control" \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data \
 && chmod 2775 /var/run/postgresql

# The settings' defaults (docs/configuration.md); PATRONI_SCOPE and the two passwords are
# required and have none. CITUS_GROUP (workers), CITUS_STANDALONE (derived from the coordinator
# hosts) and PATRONI_NAME / *_CONNECT_ADDRESS (derived from the host name) are left unset on
# purpose, so their own defaults and checks apply. PATRONI_CITUS_CONFIG and PATRONICTL_CONFIG_FILE
# name the patroni.yml the entrypoint writes, so `docker exec ... patroni-citus status` and
# `patronictl list` need no -c. No password is ever set in the image: they come
# from PATRONI_*_PASSWORD or PATRONI_*_PASSWORD_FILE (secrets) at run time.
# DL3064 flags the role-name defaults (*_USERNAME) and PATRONI_POSTGRESQL_PGPASS (the path Patroni
# writes its pgpass file to) by their names; none of them is a secret.
# hadolint ignore=DL3064
ENV PATH="/opt/patroni-citus/venv/bin:${PATH}" \
    PATRONI_CITUS_CONFIG=/var/lib/postgresql/patroni.yml \
    PATRONICTL_CONFIG_FILE=/var/lib/postgresql/patroni.yml \
    CITUS_ENABLE=false \
    CITUS_ROLE=coordinator \
    CITUS_COORDINATOR_PORT=5432 \
    CITUS_DATABASE=citus \
    CITUS_MAX_PREPARED_TRANSACTIONS=200 \
    CITUS_REGISTRATION_TIMEOUT=60 \
    CITUS_NODE_SSLMODE=require \
    CITUS_NODE_TCP_USER_TIMEOUT=30000 \
    PATRONI_NAMESPACE=/service/ \
    PATRONI_RESTAPI_LISTEN=0.0.0.0:8008 \
    PATRONI_RESTAPI_USERNAME=patroni \
    PATRONI_POSTGRESQL_LISTEN=0.0.0.0:5432 \
    PATRONI_POSTGRESQL_DATA_DIR=/var/lib/postgresql/data \
    PATRONI_POSTGRESQL_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin \
    PATRONI_POSTGRESQL_PGPASS=/tmp/pgpass \
    PATRONI_SUPERUSER_USERNAME=postgres \
    PATRONI_REPLICATION_USERNAME=replicator \
    PATRONI_TTL=30 \
    PATRONI_LOOP_WAIT=10 \
    PATRONI_RETRY_TIMEOUT=10 \
    PATRONI_SYNCHRONOUS_MODE=false \
    PG_SOCKET_DIR=/var/run/postgresql \
    PG_ALLOWED_NETWORKS=samenet \
    PG_SHARED_PRELOAD_LIBRARIES=

# Numeric, so orchestrators can verify it is not root (runAsNonRoot); 999 is postgres above.
USER 999:999
WORKDIR /var/lib/postgresql
# Citus metadata (pg_dist_node, ...) lives in the database, so on this volume with the data.
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432 8008
# Patroni's REST API: 200 once PostgreSQL runs (any role). Patroni itself retries etcd forever.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/patroni-citus/venv/bin/python", "/usr/local/lib/patroni-citus/healthcheck.py"]
# `patroni-citus entrypoint` validates the environment (a bad value: one line, exit 2), renders
# patroni.yml (0600) and execs Patroni, so Patroni is PID 1 and gets docker stop's SIGTERM.
# Other subcommands run in its place: `docker run --rm IMAGE render-config`.
ENTRYPOINT ["/opt/patroni-citus/venv/bin/patroni-citus"]
CMD ["entrypoint", "--config", "/var/lib/postgresql/patroni.yml"]
