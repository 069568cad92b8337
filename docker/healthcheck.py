"""The image's HEALTHCHECK: healthy once Patroni's REST API says PostgreSQL is running (any role).

Patroni's ``GET /health`` answers 200 while PostgreSQL is up, whether primary or replica, and
needs no credentials. The port comes from PATRONI_RESTAPI_LISTEN, as the container was started
with it (the health check sees the container's environment, not Patroni's stripped one).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

_WILDCARDS = ("", "*", "0.0.0.0", "::", "[::]")  # noqa: S104 - recognised, not bound


def health_url(listen: str) -> str:
    """The /health URL for a listen address; a wildcard listen is asked on loopback.

    >>> health_url("0.0.0.0:8008"), health_url("10.1.2.3:9000"), health_url("[::1]:8008")
    ('http://127.0.0.1:8008/health', 'http://10.1.2.3:9000/health', 'http://[::1]:8008/health')
    """
    host, _, port = listen.rpartition(":")
    if host in _WILDCARDS:
        host = "127.0.0.1"
    return f"http://{host}:{port}/health"


def main() -> int:
    url = health_url(os.environ.get("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008").strip())
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - http URL built above
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} answered {exc.code}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url} unreachable ({exc})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
