"""What each member of a local formation runs with: its settings, rendered patroni.yml and clean environment.

Each member is configured by the same settings and template an operator's container uses, so the
local formation exercises the product itself.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import yaml

from patroni_citus.local import pooler, processes
from patroni_citus.local.layout import (
    DATABASE,
    ETCD_PATRONI_USER,
    REST_USER,
    SUPERUSER,
    FormationLayout,
    MemberLayout,
)
from patroni_citus.settings import load_settings
from patroni_citus.template import default_scripts_dir, render_config, write_private_file


def dcs_environment(layout: FormationLayout) -> dict[str, str]:
    """A member's DCS settings: ZooKeeper's hosts, or etcd's (--tls: https, Patroni's certificate, user)."""
    if layout.dcs == "zookeeper":
        return {"PATRONI_ZOOKEEPER_HOSTS": layout.dcs_hosts}
    variables = {"PATRONI_ETCD3_HOSTS": layout.dcs_hosts}
    if layout.tls:
        client = layout.client_tls(ETCD_PATRONI_USER)
        variables |= {
            "PATRONI_ETCD3_PROTOCOL": "https",
            "PATRONI_ETCD3_CACERT": str(layout.ca.cert),
            "PATRONI_ETCD3_CERT": str(client.cert),
            "PATRONI_ETCD3_KEY": str(client.key),
            "PATRONI_ETCD3_USERNAME": ETCD_PATRONI_USER,
            "PATRONI_ETCD3_PASSWORD_FILE": str(layout.secret(f"etcd-{ETCD_PATRONI_USER}")),
        }
    return variables


def tls_environment(layout: FormationLayout, member: MemberLayout) -> dict[str, str]:
    """--tls: the member's own server certificate, hostssl on the formation's network, verified node links."""
    if not layout.tls:
        return {}
    return {
        "PG_SSL_CERT_FILE": str(member.server_tls.cert),
        "PG_SSL_KEY_FILE": str(member.server_tls.key),
        "PG_SSL_CA_FILE": str(layout.ca.cert),
        "PG_HBA_HOSTSSL": "true",
        "CITUS_NODE_SSLMODE": "verify-full",
        "CITUS_NODE_SSLROOTCERT": str(layout.ca.cert),
    }


def member_environment(layout: FormationLayout, member: MemberLayout, bindir: Path) -> dict[str, str]:
    """The settings a member's container would get, as environment variables."""
    return {
        "PATRONI_SCOPE": member.scope,
        "PATRONI_NAME": member.name,
        **dcs_environment(layout),
        "PATRONI_RESTAPI_LISTEN": f"{member.host}:{member.rest_port}",
        "PATRONI_RESTAPI_CONNECT_ADDRESS": f"{member.host}:{member.rest_port}",
        "PATRONI_RESTAPI_USERNAME": REST_USER,
        "PATRONI_RESTAPI_PASSWORD_FILE": str(layout.secret("restapi")),
        "PATRONI_POSTGRESQL_LISTEN": f"{member.host}:{member.postgres_port}",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"{member.host}:{member.postgres_port}",
        "PATRONI_POSTGRESQL_DATA_DIR": str(member.data_dir),
        "PATRONI_POSTGRESQL_BIN_DIR": str(bindir),
        "PATRONI_POSTGRESQL_PGPASS": str(Path(member.directory) / "pgpass"),
        "PATRONI_SUPERUSER_USERNAME": SUPERUSER,
        "PATRONI_SUPERUSER_PASSWORD_FILE": str(layout.secret("superuser")),
        "PATRONI_REPLICATION_PASSWORD_FILE": str(layout.secret("replication")),
        "PATRONI_TTL": "20",
        "PATRONI_LOOP_WAIT": "2",
        "PATRONI_RETRY_TIMEOUT": "5",
        "PATRONI_SYNCHRONOUS_MODE": "true" if layout.synchronous else "false",
        "PG_SOCKET_DIR": str(member.socket_dir),
        "PG_ALLOWED_NETWORKS": layout.allowed_networks,
        "CITUS_ENABLE": "true",
        "CITUS_ROLE": "coordinator" if member.group == 0 else "worker",
        "CITUS_GROUP": str(member.group),
        "CITUS_COORDINATOR_HOST": layout.coordinator_hosts(),
        "CITUS_DATABASE": DATABASE,
        "CITUS_STANDALONE": "true" if layout.workers == 0 else "false",
        **tls_environment(layout, member),
        **pooler.member_variables(layout, member.group),
    }


def daemon_environment(bindir: Path, home: Path) -> dict[str, str]:
    """A clean environment: no PATRONI_* variables, so the rendered file is the only source of truth."""
    return {
        "PATH": f"{default_scripts_dir()}:{bindir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
    }


def prepare_member(
    layout: FormationLayout, member: MemberLayout, bindir: Path, user: pwd.struct_passwd
) -> None:
    """The member's directories (the service user's) and its patroni.yml, rendered again from its settings."""
    directory = Path(member.directory)
    directory.mkdir(parents=True, exist_ok=True)
    member.socket_dir.mkdir(exist_ok=True)
    for path in (directory, member.socket_dir):
        processes.hand_over(path, user)
    os.chmod(member.socket_dir, 0o700)
    environment = member_environment(layout, member, bindir)
    if layout.mode == "builtin":
        environment["CITUS_ENABLE"] = "false"
    text = render_config(load_settings(environment), member.config_path, default_scripts_dir())
    if layout.mode == "builtin":
        text = builtin_mode_config(text, member.group)
    owner = (user.pw_uid, user.pw_gid) if os.geteuid() == 0 else None
    write_private_file(member.config_path, text, owner=owner)


def builtin_mode_config(text: str, group: int) -> str:
    """Turn a rendered Citus-disabled config into one for Patroni's built-in Citus mode (comparison only).

    The product's template refuses this mode; the local formation builds it so drills can compare.
    """
    config = yaml.safe_load(text)
    config["citus"] = {"group": group, "database": DATABASE}
    parameters = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    parameters["max_prepared_transactions"] = 200
    return str(yaml.safe_dump(config, sort_keys=False))
