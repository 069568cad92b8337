"""Fixtures for the container tests: skipped without podman and the images, required in CI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from container_harness import podman_service, private_directory, require_containers

if TYPE_CHECKING:
    import docker.models.containers


@pytest.fixture(scope="session")
def containers_ready() -> None:
    """Skip with the reason on a machine without the setup; PATRONI_CITUS_REQUIRE_CONTAINERS=1 fails."""
    require_containers()


@pytest.fixture(scope="session")
def docker_api(containers_ready: None) -> Iterator[tuple[str, docker.DockerClient]]:
    """podman's Docker API on a private socket for the whole session; stopped and removed after."""
    with private_directory("patroni-citus-ct-podman-") as workdir, podman_service(workdir) as api:
        yield api
