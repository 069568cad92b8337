"""Network namespaces for a local formation: each member a host of its own, so its traffic can be cut.

With ``--network netns`` every member runs in its own network namespace, joined to the machine by a
veth pair on a bridge that carries the formation's /24 (etcd listens on the bridge's address). Taking
the machine-side end of one member's veth down cuts that member off from etcd, the coordinator and its
own replicas at once, as a failed switch port would: a real partition, not a simulated one.
Needs root (``ip netns``); everything here is removed again by ``local down``.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
from collections.abc import Callable, Sequence

from patroni_citus.errors import PatroniCitusError
from patroni_citus.local.layout import FormationLayout, MemberLayout

Reporter = Callable[[str], None]
PREFIX = "pcz"  # every interface and namespace name starts with it, then the formation's port base


class NetworkError(PatroniCitusError):
    """A namespace, veth pair or bridge of the local formation could not be set up or changed."""


def bridge(layout: FormationLayout) -> str:
    return f"{PREFIX}{layout.port_base}"


def namespace(layout: FormationLayout, member: MemberLayout) -> str:
    return f"{PREFIX}{layout.port_base}-{member.group}-{member.index}"


def machine_link(layout: FormationLayout, member: MemberLayout) -> str:
    """The machine-side end of the member's veth pair (interface names are at most 15 characters)."""
    return f"{PREFIX}{layout.port_base}g{member.group}m{member.index}"


def _member_link(layout: FormationLayout, member: MemberLayout) -> str:
    return f"pcy{layout.port_base}g{member.group}m{member.index}"


def _ip_binary() -> str:
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        raise NetworkError("the ip command is missing; apt-get install iproute2")
    return ip


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([_ip_binary(), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def exists(layout: FormationLayout) -> bool:
    return _ip("link", "show", bridge(layout), check=False).returncode == 0


def ensure_free(layout: FormationLayout) -> None:
    """Refuse before anything starts: the bridge's name (from the port base) belongs to another formation."""
    if exists(layout):
        raise NetworkError(
            f"bridge {bridge(layout)} already exists: another formation with port base {layout.port_base} "
            "is up, or one was not brought down (`local down`)"
        )


def create(layout: FormationLayout, report: Reporter) -> None:
    """The bridge on the machine, then per member a namespace with its address on a veth into it."""
    _ip("link", "add", bridge(layout), "type", "bridge")
    _ip("addr", "add", f"{layout.host_address}/24", "dev", bridge(layout))
    _ip("link", "set", bridge(layout), "up")
    for member in layout.all_members():
        name, inner = namespace(layout, member), _member_link(layout, member)
        _ip("netns", "add", name)
        _ip("link", "add", machine_link(layout, member), "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("link", "set", machine_link(layout, member), "master", bridge(layout), "up")
        _ip("-n", name, "addr", "add", f"{member.host}/24", "dev", inner)
        _ip("-n", name, "link", "set", inner, "up")
        _ip("-n", name, "link", "set", "lo", "up")
    report(f"network: bridge {bridge(layout)} {layout.host_address}/24, one namespace per member")


def remove(layout: FormationLayout, report: Reporter) -> None:
    """Delete every namespace, veth pair and the bridge; whatever is already gone is skipped."""
    namespaces = set(_ip("netns", "list", check=False).stdout.split())
    for member in layout.all_members():
        if namespace(layout, member) in namespaces:
            _ip("netns", "delete", namespace(layout, member))
        _ip("link", "delete", machine_link(layout, member), check=False)  # gone with its namespace
    if exists(layout):
        _ip("link", "delete", bridge(layout))
        report(f"network: removed bridge {bridge(layout)} and the members' namespaces")


def set_connected(layout: FormationLayout, member: MemberLayout, connected: bool) -> None:
    """Cut (or restore) all of a member's traffic: its veth's machine-side end goes down (or up)."""
    _ip("link", "set", machine_link(layout, member), "up" if connected else "down")


def run_inside(
    layout: FormationLayout, member: MemberLayout, user: pwd.struct_passwd, argv: Sequence[str]
) -> list[str]:
    """argv run inside the member's namespace as the service user (ip netns exec needs root first)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise NetworkError("the setpriv command is missing; apt-get install util-linux")
    return [
        _ip_binary(),
        "netns",
        "exec",
        namespace(layout, member),
        setpriv,
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--",
        *argv,
    ]
