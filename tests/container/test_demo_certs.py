"""docker/make-demo-certs.py on its own: what it writes, and that real TLS handshakes accept it.

Needs no container: the handshakes run between two sockets of this process, with the standard
library's ssl module (what Patroni's etcd client uses; PostgreSQL and etcd check the same things).
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from container_harness import CERT_TOOL, CERT_TOOL_PYTHON, REPO_ROOT, REQUIRE, cert_tool_missing

MEMBERS = ("coordinator-a", "coordinator-b", "worker-1a", "worker-1b", "worker-2a", "worker-2b")
HOSTS = (*MEMBERS, "etcd", "metrics", "pooler")


def make_certs(out_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [CERT_TOOL_PYTHON, str(CERT_TOOL), *options, str(out_dir)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def demo_tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One set, made as docs/container.md says (as root, the keys then belong to uid 999)."""
    message = cert_tool_missing()
    if message is not None:
        if REQUIRE:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out_dir = tmp_path_factory.mktemp("demo-tls") / "tls"
    options = () if os.geteuid() == 0 else ("--key-owner", "none")
    result = make_certs(out_dir, *options)
    assert result.returncode == 0, result.stderr
    return out_dir


def test_every_host_gets_its_own_directory_and_only_its_own_key(demo_tls: Path) -> None:
    assert sorted(path.name for path in demo_tls.iterdir()) == sorted([*HOSTS, "ca.crt"])
    for host in HOSTS:
        files = {path.name: path.stat() for path in (demo_tls / host).iterdir()}
        assert set(files) == {"ca.crt", "tls.crt", "tls.key"}, host
        assert files["tls.key"].st_mode & 0o777 == 0o600, f"{host}: PostgreSQL refuses a key others can read"
        assert files["tls.crt"].st_mode & 0o777 == 0o644
        if os.geteuid() == 0:
            assert (files["tls.key"].st_uid, files["tls.key"].st_gid) == (999, 999), host
        assert (demo_tls / host / "ca.crt").read_bytes() == (demo_tls / "ca.crt").read_bytes()
    keys = [path for path in demo_tls.rglob("*") if path.is_file() and b"PRIVATE KEY" in path.read_bytes()]
    assert sorted(keys) == sorted(demo_tls / host / "tls.key" for host in HOSTS), "the CA's key is never kept"


def test_refuses_to_replace_a_set_without_force(demo_tls: Path) -> None:
    before = (demo_tls / "ca.crt").read_bytes()
    result = make_certs(demo_tls, "--key-owner", "none")
    assert result.returncode == 2
    assert "exists" in result.stderr and "--force" in result.stderr, result.stderr
    assert (demo_tls / "ca.crt").read_bytes() == before


def handshake(demo_tls: Path, server_host: str, client_host: str, expected_name: str) -> dict[str, Any]:
    """server_host's certificate serves, requiring a client certificate (etcd's --client-cert-auth);
    the client checks it against the CA and *expected_name* (verify-full) and presents client_host's.
    Returns the server certificate as the client saw it."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(demo_tls / server_host / "tls.crt", demo_tls / server_host / "tls.key")
    server_context.load_verify_locations(demo_tls / server_host / "ca.crt")
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(demo_tls / "ca.crt"))
    client_context.load_cert_chain(demo_tls / client_host / "tls.crt", demo_tls / client_host / "tls.key")
    server_side, client_side = socket.socketpair()
    server_errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(server_side, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            server_errors.append(exc)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        with client_context.wrap_socket(client_side, server_hostname=expected_name) as tls:
            seen = tls.getpeercert()
            tls.sendall(b"x")
    finally:
        client_side.close()
        server.join(timeout=10)
    assert not server_errors, server_errors
    assert seen is not None
    return dict(seen)


@pytest.mark.parametrize("name", ["coordinator-a", "localhost", "127.0.0.1"])
def test_member_certificate_passes_verify_full_for_its_names(demo_tls: Path, name: str) -> None:
    seen = handshake(demo_tls, "coordinator-a", "worker-1a", name)
    assert ("DNS", "coordinator-a") in seen["subjectAltName"]
    # No common name: etcd answers 400 to gateway requests from client certificates with one.
    assert "commonName" not in {name for rdn in seen["subject"] for name, _ in rdn}


def test_member_certificate_fails_verify_full_for_another_host(demo_tls: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(demo_tls, "coordinator-a", "worker-1a", "worker-1a")


def test_etcd_certificate_serves_etcd_and_members_log_in_with_theirs(demo_tls: Path) -> None:
    for member in MEMBERS:
        handshake(demo_tls, "etcd", member, "etcd")


@pytest.mark.parametrize("script", ["make-demo-certs.py", "etcd-auth-init.py"])
def test_docker_scripts_doctests(script: str) -> None:
    path = REPO_ROOT / "docker" / script
    spec = importlib.util.spec_from_file_location(f"docker_{path.stem.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        result = doctest.testmod(module)
    finally:
        del sys.modules[spec.name]
    assert result.attempted > 0 and result.failed == 0
