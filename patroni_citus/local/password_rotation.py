"""`local rotate-password`: the superuser's new password in every group, then in every file that holds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from patroni_citus import patroni_api, rotation
from patroni_citus.errors import UnreachableError
from patroni_citus.local import access, pooler, processes
from patroni_citus.local.layout import FormationState
from patroni_citus.local.member_setup import prepare_member
from patroni_citus.member_config import load_member_config
from patroni_citus.template import write_private_file


@dataclass(frozen=True)
class LocalRotation:
    """What `local rotate-password` did (or would do): per group in SQL, per member in its config."""

    groups: list[rotation.GroupRotation]
    files: list[str]
    members: list[str]
    dry_run: bool
    unreloaded: list[str]

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "groups": [group.as_dict() for group in self.groups],
            "files": self.files,
            "members": self.members,
            "unreloaded": self.unreloaded,
        }


def rotate_password(base_dir: Path, new_password: str, dry_run: bool) -> LocalRotation:
    """Rotate the superuser password in every group, then in the secret, pgpass and every member's config.

    The SQL part comes first: until it is done the old password must keep working for Patroni and
    the callbacks. Re-running after any failure completes the rotation.
    """
    state = FormationState.load_existing(base_dir)
    layout = state.layout
    address = access.formation_address(layout)
    groups = rotation.rotate_password(address, new_password, dry_run)
    secret = layout.password_file("superuser")
    verb = "would" if dry_run else "did"
    files = [f"{verb} rewrite {path}" for path in (secret, layout.pgpass_path)]
    members: list[str] = []
    unreloaded: list[str] = []
    user = processes.service_user()
    if not dry_run:
        write_private_file(secret, new_password + "\n")
        access.write_operator_pgpass(layout)
        if layout.pooler:  # PgBouncer logs in to the coordinator with the client's password
            files.append(pooler.refresh(state, user, new_password))
    for member in layout.all_members():
        if dry_run:
            members.append(f"{member.name}: would re-render {member.config_path} and reload Patroni")
            continue
        prepare_member(layout, member, Path(state.bindir), user)
        if not processes.is_alive(state.member_pids.get(member.name)):
            members.append(f"{member.name}: did re-render its config; not running, it reads it at start")
            continue
        # REST credentials did not change: the re-rendered config carries the same ones.
        try:
            patroni_api.reload(member.rest_url, load_member_config(member.config_path).rest_auth)
        except UnreachableError as exc:
            unreloaded.append(member.name)
            members.append(f"{member.name}: did re-render its config; reload FAILED ({exc}): reload it")
            continue
        members.append(f"{member.name}: did re-render its config and reload Patroni")
    return LocalRotation(groups, files, members, dry_run, unreloaded)
