"""Patroni REST API client: member state, cluster view and dynamic configuration."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from patroni_citus.errors import UnreachableError
from patroni_citus.settings import Credentials

JsonObject = dict[str, Any]


def _request(
    url: str,
    method: str = "GET",
    body: JsonObject | None = None,
    auth: Credentials | None = None,
    timeout: float = 3.0,
) -> JsonObject:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) URLs we built
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            payload = response.read()
    except urllib.error.HTTPError as exc:
        # Every endpoint used here answers 200 when it can; anything else (e.g. GET /config's 502
        # while Patroni cannot read the DCS) must never be mistaken for an answer.
        reason = _plain_reason(exc.read())
        raise UnreachableError(
            f"Patroni REST API {method} {url} answered HTTP {exc.code}" + (f": {reason}" if reason else "")
        ) from None
    except (OSError, urllib.error.URLError) as exc:
        raise UnreachableError(f"cannot reach Patroni REST API at {url}: {network_reason(exc)}") from None
    try:
        result = json.loads(payload) if payload else {}
    except ValueError:
        # Write endpoints such as /switchover answer with a plain-text sentence.
        return {"message": payload.decode(errors="replace").strip()}
    return result if isinstance(result, dict) else {"value": result}


def network_reason(exc: BaseException) -> str:
    """What went wrong on the way, in words, without urllib's "<urlopen error ...>" wrapping.

    >>> network_reason(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))
    'connection refused'
    >>> network_reason(TimeoutError("timed out")), network_reason(urllib.error.URLError("unknown url type"))
    ('timed out', 'unknown url type')
    """
    cause: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, OSError) and cause.strerror:
        text = cause.strerror
    else:
        text = str(cause) or type(cause).__name__
    return text[:1].lower() + text[1:]


def _plain_reason(payload: bytes) -> str:
    """Patroni's one-line refusal text (e.g. why a switchover was refused); HTML error pages dropped.

    >>> _plain_reason(b"Switchover could be performed only from a specific member")
    'Switchover could be performed only from a specific member'
    >>> _plain_reason(b"<!DOCTYPE HTML>\\n<html>...</html>")
    ''
    """
    text = payload.decode(errors="replace").strip()
    if not text or text.startswith("<"):
        return ""
    return text.splitlines()[0][:200]


def member_status(rest_url: str, timeout: float = 3.0) -> JsonObject:
    """GET /patroni: this member's role, state, timeline and pending_restart."""
    return _request(f"{rest_url}/patroni", timeout=timeout)


def cluster_status(rest_url: str, timeout: float = 3.0) -> JsonObject:
    """GET /cluster: every member of this member's Patroni cluster as Patroni sees it."""
    return _request(f"{rest_url}/cluster", timeout=timeout)


def dynamic_config(rest_url: str, timeout: float = 3.0) -> JsonObject:
    """GET /config: the DCS-held dynamic configuration."""
    return _request(f"{rest_url}/config", timeout=timeout)


def switchover(rest_url: str, leader: str, candidate: str | None, auth: Credentials | None) -> JsonObject:
    """POST /switchover: a planned handover of the leader role, done by Patroni."""
    body: JsonObject = {"leader": leader}
    if candidate:
        body["candidate"] = candidate
    return _request(f"{rest_url}/switchover", method="POST", body=body, auth=auth, timeout=60.0)


def patch_dynamic_config(
    rest_url: str, patch: JsonObject, auth: Credentials | None, timeout: float = 5.0
) -> JsonObject:
    """PATCH /config through Patroni, which merges it into the DCS and applies it everywhere."""
    return _request(f"{rest_url}/config", method="PATCH", body=patch, auth=auth, timeout=timeout)


def reload(rest_url: str, auth: Credentials | None, timeout: float = 5.0) -> JsonObject:
    """POST /reload: Patroni re-reads its configuration file (e.g. a re-rendered patroni.yml)."""
    return _request(f"{rest_url}/reload", method="POST", auth=auth, timeout=timeout)
