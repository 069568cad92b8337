"""docker/healthcheck.py (the image's HEALTHCHECK) on its own: which URL it asks, what it answers.

Needs no container: it runs against a throwaway HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

HEALTHCHECK = Path(__file__).resolve().parents[2] / "docker" / "healthcheck.py"


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("patroni_citus_image_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:8008", "http://127.0.0.1:8008/health"),
        ("*:8008", "http://127.0.0.1:8008/health"),
        ("[::]:9000", "http://127.0.0.1:9000/health"),
        ("10.1.2.3:9000", "http://10.1.2.3:9000/health"),
        ("[::1]:8008", "http://[::1]:8008/health"),
    ],
)
def test_health_url_uses_loopback_for_a_wildcard(healthcheck: ModuleType, listen: str, url: str) -> None:
    assert healthcheck.health_url(listen) == url


@pytest.fixture
def patroni_like_server() -> Iterator[tuple[int, list[int]]]:
    """Answers GET /health with the next status code in the list, as Patroni's REST API would."""
    statuses = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_exit_code_follows_patroni_health(
    healthcheck: ModuleType, patroni_like_server: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, statuses = patroni_like_server
    monkeypatch.setenv("PATRONI_RESTAPI_LISTEN", f"0.0.0.0:{port}")
    assert healthcheck.main() == 0
    statuses[0] = 503  # Patroni: PostgreSQL is not running
    assert healthcheck.main() == 1
    monkeypatch.setenv("PATRONI_RESTAPI_LISTEN", "127.0.0.1:1")  # nothing listens there
    assert healthcheck.main() == 1
