"""Resolve the formation a command works on, from -c patroni.yml or from --dcs URL with --formation NAME.

Resolved once into one FormationAddress (DCS included), so every command gets the same view.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from patroni_citus import convergence
from patroni_citus.errors import ConfigurationError
from patroni_citus.member_config import load_member_config
from patroni_citus.patroni_dcs import DcsConfig
from patroni_citus.settings import Credentials, load_dcs_settings
from patroni_citus.topology import FormationAddress

_URL_HELP = (
    "use [http|https|etcd3|zookeeper]://HOST:PORT[,HOST:PORT...] (bare HOST:PORT means etcd3 over http)"
)


@dataclass(frozen=True)
class DcsLogin:
    """How the CLI logs in to the DCS given by --dcs (TLS files, RBAC user), all optional."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    username: str | None = None
    password_file: str | None = None
    password: str | None = None  # from PATRONI_ETCD3_PASSWORD, when no file is given


def dcs_variables(url: str, login: DcsLogin) -> dict[str, str]:
    """The Patroni variables --dcs and its options stand for, to be checked like the environment.

    >>> dcs_variables("https://e1:2379,e2:2379", DcsLogin(cacert="/ca.pem"))["PATRONI_ETCD3_PROTOCOL"]
    'https'
    >>> dcs_variables("zookeeper://z1:2181", DcsLogin())
    {'PATRONI_ZOOKEEPER_HOSTS': 'z1:2181'}
    """
    scheme, separator, hosts = url.strip().partition("://")
    if not separator:
        scheme, hosts = "http", url.strip()
    if not hosts:
        raise ConfigurationError("--dcs", url, _URL_HELP)
    hosts = hosts.rstrip("/")
    if scheme == "zookeeper":
        return {"PATRONI_ZOOKEEPER_HOSTS": hosts}
    if scheme not in ("http", "https", "etcd3"):
        raise ConfigurationError("--dcs", url, _URL_HELP)
    variables = {
        "PATRONI_ETCD3_HOSTS": hosts,
        "PATRONI_ETCD3_PROTOCOL": "https" if scheme == "https" else "http",
        "PATRONI_ETCD3_CACERT": login.cacert,
        "PATRONI_ETCD3_CERT": login.cert,
        "PATRONI_ETCD3_KEY": login.key,
        "PATRONI_ETCD3_USERNAME": login.username,
        "PATRONI_ETCD3_PASSWORD_FILE": login.password_file,
        "PATRONI_ETCD3_PASSWORD": None if login.password_file else login.password,
    }
    return {name: value for name, value in variables.items() if value}


def resolve_address(
    config_path: Path | None,
    dcs_url: str | None,
    formation_name: str | None,
    *,
    login: DcsLogin,
    namespace: str = "/service/",
    user: str = "postgres",
    database: str = "citus",
    dcs_timeout: float = 5.0,
) -> FormationAddress:
    """The formation from -c (everything from the member's file), or from --dcs with --formation."""
    if config_path is not None:
        config = load_member_config(config_path)
        if not config.citus.enabled:
            raise ConfigurationError(
                "--config", str(config_path), "Citus is not enabled in this member's config"
            )
        address = convergence.member_address(config)
        return replace(address, dcs=replace(address.dcs, timeout=dcs_timeout))
    if dcs_url and formation_name:
        dcs = load_dcs_settings(dcs_variables(dcs_url, login))
        # An empty password lets libpq use PGPASSWORD or PGPASSFILE, as psql would.
        return FormationAddress(
            DcsConfig(dcs.patroni_section(), namespace, dcs_timeout),
            Credentials(user, ""),
            database,
            name=formation_name,
        )
    raise ConfigurationError("--config", None, "give -c PATRONI_YML, or --dcs URL with --formation NAME")
