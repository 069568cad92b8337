"""Patroni's own DCS classes, opened read-only for one scope at a time: the only importer of `patroni`.

Patroni's `get_dcs` gives us its etcd/etcd3 (TLS, client certificates, users), ZooKeeper, Consul and
Kubernetes clients exactly as Patroni itself uses them. Two things they do not do for a command-line
tool are done here: they retry forever while the DCS is unreachable (so every call is bounded by the
configured timeout), and they log through `logging` (so their messages are captured, never printed,
and the last one explains a failure).
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from patroni_citus.errors import ConfigurationError, UnreachableError

#: The DCS sections Patroni knows, in the order Patroni's own loader tries them.
DCS_KINDS = ("consul", "etcd", "etcd3", "exhibitor", "kubernetes", "raft", "zookeeper")
#: Where a formation's scopes can be listed with Patroni's client (Patroni has no call for it).
LISTABLE_KINDS = ("etcd", "etcd3", "zookeeper", "exhibitor", "consul")
DEFAULT_TIMEOUT = 5.0
T = TypeVar("T")


_USERINFO = re.compile(r"(^|://|,)[^@/,]*@")  # user:password@ before a host


@dataclass(frozen=True)
class DcsConfig:
    """Patroni's DCS section(s) as patroni.yml spells them, e.g. {"etcd3": {"hosts": [...]}}.

    The sections can hold a password, so they never appear in a repr; `describe()` is safe to print.
    """

    sections: Mapping[str, Mapping[str, Any]] = field(repr=False)
    namespace: str = "/service/"
    timeout: float = DEFAULT_TIMEOUT

    @property
    def kind(self) -> str:
        return next(iter(self.sections))

    def describe(self) -> str:
        """Kind and hosts, e.g. 'etcd3 https://10.0.0.1:2379' (never credentials).

        >>> DcsConfig({"etcd3": {"hosts": ["e1:2379"], "protocol": "https", "password": "x"}}).describe()
        'etcd3 https://e1:2379'
        >>> DcsConfig({"etcd3": {"url": "https://root:s3cret@e1:2379"}}).describe()
        'etcd3 https://e1:2379'
        """
        section = self.sections[self.kind]
        hosts = section.get("hosts") or section.get("host") or section.get("url") or "(default hosts)"
        hosts = ",".join(hosts) if isinstance(hosts, list | tuple) else str(hosts)
        hosts = _USERINFO.sub(r"\1", hosts)  # user:password@ in a URL Patroni accepts
        protocol = section.get("protocol")
        return f"{self.kind} {protocol}://{hosts}" if protocol else f"{self.kind} {hosts}"

    def secrets(self) -> list[str]:
        """Every password in the sections, so error text can be scrubbed of them."""
        return [
            str(value)
            for section in self.sections.values()
            for key, value in section.items()
            if "password" in key and value
        ]


def dcs_config(
    config: Mapping[str, Any], namespace: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> DcsConfig:
    """The DCS part of a patroni.yml-shaped mapping; a mapping without one is a ConfigurationError."""
    sections = {kind: dict(config[kind]) for kind in DCS_KINDS if isinstance(config.get(kind), Mapping)}
    if not sections:
        raise ConfigurationError(
            "DCS",
            None,
            f"no DCS section ({', '.join(DCS_KINDS)}) in the configuration; name where Patroni's DCS is",
        )
    return DcsConfig(sections, namespace or str(config.get("namespace") or "/service/"), timeout)


class _LastMessage(logging.Handler):
    """Keeps Patroni's last warning, the best explanation of a DCS that does not answer."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip().splitlines()
        if message and message[0] != "waiting on etcd":
            self.text = message[0][:4000]


_patroni_log = _LastMessage()
for _name in ("patroni", "kazoo", "urllib3"):  # Patroni's retries, and its clients', are not ours to print
    _logger = logging.getLogger(_name)
    _logger.addHandler(_patroni_log)
    _logger.propagate = False
    _logger.setLevel(logging.WARNING)

#: The part of a client library's nested error text that says what went wrong, most telling first.
_REASONS = (
    re.compile(r"\[SSL: [A-Z_]+\] [^'\"()]+"),
    re.compile(r"(?i)authentication failed[^'\"()]*"),
    re.compile(r"(?i)permission denied[^'\"()]*"),
    re.compile(r"\[Errno -?\d+\] [^'\"()]+"),
)


#: What a TLS server closing the handshake usually means, said so an operator knows what to give.
_HINTS = (
    (
        re.compile(r"EOF occurred in violation of protocol|tlsv13 alert certificate required"),
        "the server ended the TLS handshake: it likely wants a client certificate (--dcs-cert/--dcs-key)",
    ),
)


def reason_of(text: str) -> str:
    """The telling part of an error message wrapped several times over (urllib3, Patroni, kazoo).

    >>> reason_of("MaxRetryError('(Caused by NewConnectionError(\\": [Errno 111] Connection refused\\"))')")
    '[Errno 111] Connection refused'
    >>> reason_of("Etcd3 authentication failed: AuthFailed(...)")
    'authentication failed: AuthFailed'
    """
    for hint_pattern, hint in _HINTS:
        if hint_pattern.search(text):
            return hint
    for pattern in _REASONS:
        found = pattern.search(text)
        if found:
            return found.group(0).strip().rstrip(":,")
    return text[:200]


def _scrubbed(text: str, config: DcsConfig) -> str:
    for secret in config.secrets():
        text = text.replace(secret, "***")
    return text


def _failure(config: DcsConfig, what: str, cause: BaseException | None) -> UnreachableError:
    reason = _patroni_log.text or (f"{type(cause).__name__}: {cause}" if cause is not None else None)
    detail = f": {_scrubbed(reason_of(reason), config)}" if reason else ""
    return UnreachableError(f"cannot {what} the DCS ({config.describe()}){detail}")


def _in_daemon_thread(what: str, action: Callable[[], T]) -> Future[T]:
    """Start action in a daemon thread: one left behind by a timeout only ever reads, and dies with us."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(action())
        except BaseException as exc:  # SystemExit too: etcd3's client exits on a refused login
            future.set_exception(exc)

    _patroni_log.text = None
    threading.Thread(target=run, name=f"dcs-{what}", daemon=True).start()
    return future


def _wait(config: DcsConfig, what: str, future: Future[T]) -> T:
    """The call's result within config.timeout seconds, or one UnreachableError saying why not."""
    try:
        return future.result(timeout=config.timeout)
    except FutureTimeout:
        raise _failure(config, what, TimeoutError(f"no answer within {config.timeout:g} s")) from None
    except (Exception, SystemExit) as exc:  # whatever Patroni's client raised becomes one line
        raise _failure(config, what, exc) from None


def bounded(config: DcsConfig, what: str, action: Callable[[], T]) -> T:
    """Run one Patroni DCS call, giving up after config.timeout seconds.

    Patroni's clients wait for an unreachable DCS forever ("waiting on etcd").
    """
    return _wait(config, what, _in_daemon_thread(what, action))


# A connection attempt still running after a timeout is kept and waited for again next time, so a
# loop (`status --watch`, `reconcile --every`) through a long DCS outage starts no thread per round.
_opened: dict[tuple[str, str, bool], Future[Any]] = {}
_opened_lock = threading.Lock()


def _patroni_config(config: DcsConfig, scope: str, builtin: bool) -> dict[str, Any]:
    patroni: dict[str, Any] = {kind: dict(section) for kind, section in config.sections.items()}
    patroni.update(
        scope=scope,
        name="patroni-citus",
        namespace=config.namespace,
        patronictl=True,  # Patroni's read-only client mode: no lease, no watcher, linearizable reads
        ttl=30,
        loop_wait=10,
        retry_timeout=max(1.0, config.timeout - 1),
    )
    if builtin:  # Patroni's built-in Citus mode: one scope, a cluster per group beneath it
        patroni["citus"] = {"group": 0, "database": "citus"}
    return patroni


_imported: set[str] = set()
_import_lock = threading.Lock()


def import_patroni(kind: str) -> Callable[[dict[str, Any]], Any]:
    """Patroni's get_dcs, imported late (it costs ~0.3 s) and without Patroni's umask.

    Importing Patroni sets the process umask to PostgreSQL's 0077 (patroni.file_perm), which would
    make every directory this process (and its children) creates afterwards private to its owner.
    Once per kind, under a lock: the umask is the whole process's.
    """
    with _import_lock:
        if kind not in _imported:
            umask = os.umask(0o077)
            try:
                importlib.import_module("patroni.file_perm")
                importlib.import_module("patroni.postgresql.mpp")
                if kind in DCS_KINDS:
                    importlib.import_module(f"patroni.dcs.{kind}")
            finally:
                os.umask(umask)
            _imported.add(kind)
    from patroni.dcs import get_dcs

    return get_dcs  # type: ignore[no-any-return]


def open_scope(config: DcsConfig, scope: str, builtin: bool = False) -> Any:
    """Patroni's DCS object for one scope (cached: Patroni's clients hold connections and threads)."""
    key = (json.dumps([config.sections, config.namespace, config.timeout], sort_keys=True), scope, builtin)

    get_dcs = import_patroni(config.kind)

    def create() -> Any:
        return get_dcs(_patroni_config(config, scope, builtin))

    with _opened_lock:
        future = _opened.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _opened[key] = _in_daemon_thread("connect", create)
    return _wait(config, "connect to", future)


def read_scope(config: DcsConfig, scope: str, builtin: bool = False) -> Any:
    """Patroni's Cluster for one scope (built-in mode: the coordinator, with `.workers` by group)."""
    opened = open_scope(config, scope, builtin)
    return bounded(config, "read", opened.get_cluster)


def list_scopes(config: DcsConfig) -> list[str]:
    """Every scope under the namespace, through Patroni's own (authenticated) client."""
    if config.kind not in LISTABLE_KINDS:
        raise ConfigurationError(
            "DCS",
            config.kind,
            f"listing a formation's scopes works on {', '.join(LISTABLE_KINDS)}; use one of those",
        )
    opened = open_scope(config, "patroni-citus-listing")
    root = "/" + config.namespace.strip("/")
    return sorted(set(bounded(config, "read", lambda: _child_names(config.kind, opened._client, root))))


def _child_names(kind: str, client: Any, root: str) -> list[str]:
    """The names directly below root; Patroni's client of each kind has its own way of asking."""
    if kind == "etcd3":
        from patroni.dcs.etcd3 import build_range_request, prefix_range_end

        prefix = root + "/"
        request = build_range_request(prefix, prefix_range_end(prefix))
        request["keys_only"] = True
        answer = client.call_rpc("/kv/range", request)
        keys = (base64.b64decode(kv["key"]).decode() for kv in answer.get("kvs", []))
        return [key[len(prefix) :].split("/", 1)[0] for key in keys]
    if kind in ("zookeeper", "exhibitor"):
        return [str(name) for name in client.get_children(root)] if client.exists(root) else []
    if kind == "etcd":
        import etcd  # type: ignore[import-untyped]

        try:
            result = client.read(root)
        except etcd.EtcdKeyNotFound:
            return []
        return [str(child.key).rstrip("/").rsplit("/", 1)[-1] for child in result.leaves if child.key != root]
    _, keys = client.kv.get(root.lstrip("/") + "/", keys=True, separator="/")  # consul
    return [str(key).rstrip("/").rsplit("/", 1)[-1] for key in keys or []]


def close_all() -> None:
    """Stop every opened client that runs threads of its own (ZooKeeper's); etcd's need nothing."""
    with _opened_lock:
        futures = list(_opened.values())
        _opened.clear()
    for future in futures:
        if future.done() and future.exception() is None:
            client: Any = getattr(future.result(), "_client", None)
            if hasattr(client, "stop") and hasattr(client, "close"):
                client.stop()
                client.close()
