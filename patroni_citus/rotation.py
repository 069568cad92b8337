"""Rotate the superuser password of a whole formation: every group's leader and its pg_dist_authinfo.

Citus connects between nodes as the superuser with the password each group's primary keeps in
pg_dist_authinfo, so both change together, on every group, in as short a window as possible:
every leader is connected to and checked first, each group's change runs in its own open
transaction, and only then are the transactions committed one right after the other. The server
receives a SCRAM-SHA-256 verifier that libpq computes on this client with the group's own
connection (as psql's ``\\password`` does), never the password itself; pg_dist_authinfo must hold
the password, so that statement runs with statement logging switched off for its transaction.
Re-running is safe: a group that already has the new password is recognised (patroni_citus.scram
checks its stored verifier against the password) and left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patroni_citus import dcs, metadata
from patroni_citus.errors import ConfigurationError, PatroniCitusError
from patroni_citus.planner import Endpoint
from patroni_citus.scram import verifier_matches
from patroni_citus.settings import Credentials
from patroni_citus.topology import FormationAddress, formation_clusters

PASSWORD_FILE_OPTION = "--new-password-file"  # noqa: S105 - an option name, not a password
MAX_PASSWORD_LENGTH = 1024


class RotationError(PatroniCitusError):
    """The rotation was refused or failed; the message says what was (not) changed and what to do."""

    exit_code = 2


def read_password_file(path: Path) -> str:
    """The new password: the file's one line. Refusals name the option and the file, never the content."""

    def refuse(reason: str) -> ConfigurationError:
        return ConfigurationError(PASSWORD_FILE_OPTION, str(path), reason)

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise refuse(f"the file cannot be read ({exc.strerror or 'unreadable'})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("the file is not UTF-8 text") from None
    password = text[:-1] if text.endswith("\n") else text
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise refuse("the file is empty; put the new password on its one line")
    if "\n" in password or "\r" in password:
        raise refuse("the file has more than one line; put the new password on its one line")
    if "\x00" in password:
        raise refuse("the file contains a NUL byte, which a PostgreSQL password cannot hold")
    if password != password.strip():
        raise refuse("the password starts or ends with white space; remove it")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise refuse(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    return password


@dataclass(frozen=True)
class GroupLeaderTarget:
    """One group's leader as the DCS names it: where its rotation runs."""

    group: int
    scope: str
    leader: str
    endpoint: Endpoint


def rotation_targets(clusters: dict[str, dcs.Cluster], address: FormationAddress) -> list[GroupLeaderTarget]:
    """Every group's running leader; refuses (before anything changes) if a group has none."""
    selected = dcs.select_formation(clusters, coordinator_hosts=address.coordinator_hosts, name=address.name)
    if not selected:
        raise RotationError("no group of this formation found in the DCS; nothing was changed")
    targets, problems = [], []
    for group, group_clusters in selected.items():
        if len(group_clusters) != 1:
            scopes = ", ".join(c.scope for c in group_clusters)
            problems.append(f"group {group} is claimed by several clusters ({scopes})")
            continue
        cluster = group_clusters[0]
        leader = cluster.running_leader
        if leader is None or leader.endpoint is None:
            problems.append(f"group {group} ({cluster.scope}) has no running leader")
            continue
        targets.append(GroupLeaderTarget(group, cluster.scope, leader.name, leader.endpoint))
    if 0 not in selected:
        problems.append("the coordinator group (0) is missing")
    if problems:
        raise RotationError(
            f"{'; '.join(problems)}: every group needs a running leader to rotate the password; "
            "nothing was changed, try again once `patroni-citus status` shows every leader"
        )
    return targets


@dataclass
class GroupRotation:
    """What the rotation does (or did) on one group's leader."""

    group: int
    scope: str
    leader: str
    endpoint: str
    logged_in_with: str  # "current password" or "new password" (a re-run after a partial rotation)
    set_password: bool
    update_authinfo: bool
    done: bool = False

    def describe(self) -> str:
        verb = "did" if self.done else "would"
        actions = []
        if self.set_password:
            actions.append("set the superuser password (as a SCRAM verifier)")
        if self.update_authinfo:
            actions.append("update pg_dist_authinfo")
        what = f"{verb}: " + " and ".join(actions) if actions else "already rotated: nothing to change"
        return f"group {self.group} ({self.scope}, leader {self.leader} at {self.endpoint}): {what}"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextmanager
def _leader_connections(
    targets: list[GroupLeaderTarget], address: FormationAddress, new: Credentials
) -> Iterator[list[tuple[metadata.Connection, str]]]:
    """One connection to every leader (opened before anything changes), closed on the way out."""
    opened: list[tuple[metadata.Connection, str]] = []
    try:
        for target in targets:
            opened.append(_connect_leader(target, address, new))
        yield opened
    finally:
        for connection, _ in opened:
            connection.close()  # an uncommitted rotation is rolled back


def _connect_leader(
    target: GroupLeaderTarget, address: FormationAddress, new: Credentials
) -> tuple[metadata.Connection, str]:
    endpoint = [(target.endpoint.host, target.endpoint.port)]
    try:
        return metadata.connect(endpoint, address.database, address.credentials, read_write=True), "current"
    except PatroniCitusError as first:
        try:  # a previous run may have rotated this group already
            return metadata.connect(endpoint, address.database, new, read_write=True), "new"
        except PatroniCitusError:
            raise RotationError(
                f"group {target.group} leader {target.leader}: {first}; nothing was changed"
            ) from None


def rotate_password(address: FormationAddress, new_password: str, dry_run: bool) -> list[GroupRotation]:
    """Set the superuser password and pg_dist_authinfo on every group's leader (replicas follow).

    Raises RotationError before anything changes if a group has no running leader or a leader
    cannot be logged in to; a failure while applying rolls every group back; only a failure
    between the commits leaves some groups rotated, which a re-run completes.
    """
    new = Credentials(address.credentials.username, new_password)
    targets = rotation_targets(formation_clusters(address), address)
    with _leader_connections(targets, address, new) as connections:
        plans = [
            GroupRotation(
                group=target.group,
                scope=target.scope,
                leader=target.leader,
                endpoint=f"{target.endpoint.host}:{target.endpoint.port}",
                logged_in_with=f"{used} password",
                set_password=not verifier_matches(
                    metadata.role_secret(connection, new.username), new_password
                ),
                update_authinfo=metadata.stored_authinfo(connection, new.username) != metadata.authinfo(new),
            )
            for target, (connection, used) in zip(targets, connections, strict=True)
        ]
        if dry_run:
            return plans
        pending = [(plan, connection) for plan, (connection, _) in zip(plans, connections, strict=True)]
        pending = [
            (plan, connection) for plan, connection in pending if plan.set_password or plan.update_authinfo
        ]
        try:
            for plan, connection in pending:
                metadata.begin(connection)
                metadata.quiet_rotation(connection)
                if plan.set_password:
                    metadata.set_role_password(connection, new.username, new_password)
                if plan.update_authinfo:
                    metadata.store_authinfo(connection, new)
        except PatroniCitusError as exc:
            raise RotationError(f"{exc}; every group was rolled back, nothing was changed") from None
        committed: list[str] = []
        for plan, connection in pending:
            try:
                metadata.commit(connection)
            except metadata.MetadataError as exc:
                done = ", ".join(committed) or "none"
                raise RotationError(
                    f"group {plan.group}: commit failed ({exc.reason}); groups already rotated: {done}; "
                    "run rotate-password again to finish"
                ) from None
            plan.done = True
            committed.append(str(plan.group))
        for plan in plans:
            plan.done = True
    return plans
