"""Read a member's rendered patroni.yml: how the callbacks and `status -c` find their settings.

Patroni passes callbacks no settings, so each callback is given --config and reads the file the
template wrote; its Citus settings travel as Patroni tags, validated by the same rules as the env.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from patroni_citus.errors import ConfigurationError
from patroni_citus.patroni_dcs import DCS_KINDS, DcsConfig, dcs_config
from patroni_citus.settings import CitusSettings, Credentials, load_citus_settings

_TAG_TO_SETTING = {
    "citus_role": "CITUS_ROLE",
    "citus_group": "CITUS_GROUP",
    "citus_database": "CITUS_DATABASE",
    "citus_coordinator_host": "CITUS_COORDINATOR_HOST",
    "citus_coordinator_port": "CITUS_COORDINATOR_PORT",
    "citus_standalone": "CITUS_STANDALONE",
    "citus_registration_timeout": "CITUS_REGISTRATION_TIMEOUT",
    "citus_hold_timeout": "CITUS_HOLD_TIMEOUT",
    "citus_secondary": "CITUS_SECONDARIES",
    "citus_poolers": "CITUS_POOLERS",
    "citus_pooler_admin_user": "CITUS_POOLER_ADMIN_USER",
    "citus_pooler_admin_password_file": "CITUS_POOLER_ADMIN_PASSWORD_FILE",
}


@dataclass(frozen=True)
class MemberConfig:
    """What a callback needs to know about the member it runs for."""

    path: Path
    scope: str
    name: str
    dcs: DcsConfig
    rest_url: str
    rest_auth: Credentials | None
    superuser: Credentials
    postgres_host: str
    postgres_port: int
    socket_dir: str | None
    citus: CitusSettings


def _section(config: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = config.get(key)
    if not isinstance(value, dict):
        raise ConfigurationError(
            "--config", str(path), f"the file has no '{key}' section; is it a patroni.yml?"
        )
    return value


def _optional_section(parent: dict[str, Any], key: str, where: str, path: Path) -> dict[str, Any]:
    """A nested mapping that may be absent (then empty); anything else than a mapping is refused."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError("--config", str(path), f"'{where}' must be a mapping; is it a patroni.yml?")
    return value


def _credentials(section: Any) -> Credentials | None:
    if (
        isinstance(section, dict)
        and section.get("username") is not None
        and section.get("password") is not None
    ):
        return Credentials(str(section["username"]), str(section["password"]))
    return None


def load_member_config(path: Path) -> MemberConfig:
    """Parse and check a patroni.yml; any problem is a ConfigurationError naming the file."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError("--config", str(path), f"cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigurationError("--config", str(path), "not UTF-8 text; is it a patroni.yml?") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigurationError("--config", str(path), f"not valid YAML{line}") from None
    if not isinstance(config, dict):
        raise ConfigurationError("--config", str(path), "not a YAML mapping; is it a patroni.yml?")
    restapi = _section(config, "restapi", path)
    postgresql = _section(config, "postgresql", path)
    authentication = _optional_section(postgresql, "authentication", "postgresql.authentication", path)
    superuser = _credentials(authentication.get("superuser"))
    if superuser is None:
        raise ConfigurationError("--config", str(path), "postgresql.authentication.superuser is missing")
    connect_address = str(postgresql.get("connect_address") or postgresql.get("listen") or "")
    host, _, port = connect_address.rpartition(":")
    if not (port.isascii() and port.isdigit()):
        raise ConfigurationError("--config", str(path), "postgresql.connect_address must be host:port")
    rest_address = str(restapi.get("connect_address") or "")
    tags = _optional_section(config, "tags", "tags", path)
    citus_environment = {"CITUS_ENABLE": "true" if "citus_role" in tags else "false"}
    citus_environment |= {name: str(tags[tag]) for tag, name in _TAG_TO_SETTING.items() if tag in tags}
    # Not a tag: the template puts it in the bootstrap DCS parameters, so read it back from there.
    bootstrap_parameters, where = config, []
    for key in ("bootstrap", "dcs", "postgresql", "parameters"):
        where.append(key)
        bootstrap_parameters = _optional_section(bootstrap_parameters, key, ".".join(where), path)
    if bootstrap_parameters.get("max_prepared_transactions") is not None:
        citus_environment["CITUS_MAX_PREPARED_TRANSACTIONS"] = str(
            bootstrap_parameters["max_prepared_transactions"]
        )
    node_conninfo = str(bootstrap_parameters.get("citus.node_conninfo") or "")
    if node_conninfo:
        keywords = dict(part.partition("=")[::2] for part in node_conninfo.split())
        citus_environment["CITUS_NODE_SSLMODE"] = keywords.get("sslmode", "")
        citus_environment["CITUS_NODE_TCP_USER_TIMEOUT"] = keywords.get("tcp_user_timeout", "0")
        if keywords.get("sslrootcert"):
            citus_environment["CITUS_NODE_SSLROOTCERT"] = keywords["sslrootcert"]
    for kind in DCS_KINDS:
        _optional_section(config, kind, kind, path)
    if not any(kind in config for kind in DCS_KINDS):
        raise ConfigurationError(
            "--config",
            str(path),
            f"the file names no DCS (one of {', '.join(DCS_KINDS)}); is it a patroni.yml?",
        )
    return MemberConfig(
        path=path,
        scope=str(config.get("scope", "")),
        name=str(config.get("name", "")),
        dcs=dcs_config(config),
        rest_url=f"http://{rest_address}",
        rest_auth=_credentials(restapi.get("authentication")),
        superuser=superuser,
        postgres_host=host,
        postgres_port=int(port),
        socket_dir=_optional_section(postgresql, "parameters", "postgresql.parameters", path).get(
            "unix_socket_directories"
        ),
        citus=load_citus_settings(citus_environment),
    )
