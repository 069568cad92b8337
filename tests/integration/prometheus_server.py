"""A real Prometheus for tests: Debian's /usr/bin/prometheus in a temporary directory on a free port.

It scrapes every second and is always stopped and its directory removed, also when a test fails.
Queries go through its HTTP API (/api/v1/query), the way a dashboard or an alert would read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import free_port, wait_until

PROMETHEUS = Path("/usr/bin/prometheus")


def require_prometheus() -> None:
    """Skip without Debian's prometheus package; fail if PATRONI_CITUS_REQUIRE_PROMETHEUS=1 (CI)."""
    if PROMETHEUS.exists():
        return
    reason = f"{PROMETHEUS} not installed (apt-get install prometheus)"
    if os.environ.get("PATRONI_CITUS_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"PATRONI_CITUS_REQUIRE_PROMETHEUS=1 but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Target:
    """One scrape job: a single target, optionally over TLS with basic auth."""

    job: str
    address: str  # host:port
    ca_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None

    def scrape_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"job_name": self.job, "static_configs": [{"targets": [self.address]}]}
        if self.ca_file is not None:
            config["scheme"] = "https"
            config["tls_config"] = {"ca_file": str(self.ca_file)}
        if self.username is not None:
            config["basic_auth"] = {"username": self.username, "password_file": str(self.password_file)}
        return config


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    log_path: Path

    def query(self, expression: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        with urllib.request.urlopen(address, timeout=5) as answer:  # noqa: S310 - our own loopback URL
            payload = json.load(answer)
        assert payload["status"] == "success", payload
        return [(item["metric"], float(item["value"][1])) for item in payload["data"]["result"]]

    def value(self, expression: str) -> float | None:
        """The one series' value, or None when the query returns no series."""
        results = self.query(expression)
        assert len(results) <= 1, f"{expression} returned {len(results)} series: {results}"
        return results[0][1] if results else None

    def expect(self, expression: str, timeout: float = 30) -> list[tuple[dict[str, str], float]]:
        """wait_for, named by the expression itself: a scrape that timed out leaves a short gap (stale
        markers), so even a value that already holds is waited for rather than read once."""
        return self.wait_for("it", expression, timeout)

    def wait_for(self, what: str, expression: str, timeout: float = 60) -> list[tuple[dict[str, str], float]]:
        """Wait until an expression (e.g. `x == 1`, PromQL's filter) returns at least one series."""
        return wait_until(f"Prometheus to see {what} ({expression})", lambda: self.query(expression), timeout)


@contextmanager
def prometheus(targets: list[Target]) -> Iterator[PrometheusServer]:
    """Start Prometheus scraping targets every second; stop it and remove its files afterwards."""
    require_prometheus()
    directory = Path(tempfile.mkdtemp(prefix="patroni-citus-prometheus-"))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [target.scrape_config() for target in targets],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = directory / "prometheus.log"
    argv = [
        str(PROMETHEUS),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = PrometheusServer(f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until("Prometheus to be ready", lambda: _ready(server, process, log_path), 60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def _ready(server: PrometheusServer, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"Prometheus exited {process.returncode}: {log_path.read_text()[-2000:]}")
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False
