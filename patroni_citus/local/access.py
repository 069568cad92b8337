"""How tools reach a local formation: the address status and reconcile use, shell variables, pgpass."""

from __future__ import annotations

from pathlib import Path

from patroni_citus import convergence
from patroni_citus.local.layout import (
    DATABASE,
    ETCD_CLI_USER,
    LOOPBACK,
    SUPERUSER,
    FormationLayout,
    FormationState,
)
from patroni_citus.member_config import load_member_config
from patroni_citus.template import write_private_file
from patroni_citus.topology import FormationAddress


def formation_address(layout: FormationLayout) -> FormationAddress:
    """How status/reconcile reach this formation (by config in callbacks mode, by name in built-in mode)."""
    config = load_member_config(layout.member(0, 0).config_path)
    if layout.mode == "callbacks":
        return convergence.member_address(config)
    endpoints = tuple((m.host, m.postgres_port) for m in layout.group_members(0))
    return FormationAddress(
        dcs=config.dcs,
        credentials=config.superuser,
        database=DATABASE,
        name=layout.name,
        coordinator_endpoints=endpoints,
        rest_auth=config.rest_auth,
        standalone=layout.workers == 0,
    )


def shell_environment(base_dir: Path) -> dict[str, str]:
    """libpq and patroni-citus variables that point a shell at this formation's coordinator.

    A --tls formation gets the CLI's own etcd login (read-only user, its client certificate) and
    PATRONI_CITUS_DCS / PATRONI_CITUS_FORMATION instead of PATRONI_CITUS_CONFIG: a member's patroni.yml holds
    Patroni's read-write etcd login and the superuser's password, more than status and reconcile need.
    """
    layout = FormationState.load_existing(base_dir).layout
    coordinators = layout.group_members(0)
    variables = {
        "PGHOST": ",".join(m.host for m in coordinators),
        "PGPORT": ",".join(str(m.postgres_port) for m in coordinators),
        "PGUSER": SUPERUSER,
        "PGDATABASE": DATABASE,
        "PGPASSFILE": str(layout.pgpass_path),
        "PGTARGETSESSIONATTRS": "read-write",
    }
    if not layout.tls:
        return {"PATRONI_CITUS_CONFIG": str(layout.member(0, 0).config_path), **variables}
    client = layout.client_tls(ETCD_CLI_USER)
    return {
        "PATRONI_CITUS_DCS": layout.dcs_url,
        "PATRONI_CITUS_FORMATION": layout.name,
        "PATRONI_ETCD3_CACERT": str(layout.ca.cert),
        "PATRONI_ETCD3_CERT": str(client.cert),
        "PATRONI_ETCD3_KEY": str(client.key),
        "PATRONI_ETCD3_USERNAME": ETCD_CLI_USER,
        "PATRONI_ETCD3_PASSWORD_FILE": str(layout.password_file(f"etcd-{ETCD_CLI_USER}")),
        **variables,
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(layout.ca.cert),
    }


def pgpass_escape(value: str) -> str:
    r"""A pgpass field: backslash and colon escaped with a backslash.

    >>> pgpass_escape("a:b\\c")
    'a\\:b\\\\c'
    """
    return value.replace("\\", "\\\\").replace(":", "\\:")


def write_operator_pgpass(layout: FormationLayout) -> None:
    """The operator's pgpass: every member's PostgreSQL and (with --pooler) PgBouncer, as the superuser."""
    password = pgpass_escape(layout.password("superuser"))
    lines = [f"{m.host}:{m.postgres_port}:*:{SUPERUSER}:{password}" for m in layout.all_members()]
    if layout.pooler:
        lines.append(f"{LOOPBACK}:{layout.pooler_port}:*:{SUPERUSER}:{password}")
    write_private_file(layout.pgpass_path, "\n".join(lines) + "\n")
