"""The image alone: its metadata, the entrypoint's refusal of bad settings, and the rollback
(CITUS_ENABLE=false is plain Patroni + PostgreSQL with no trace of Citus)."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from container_harness import (
    CONFIG_IN_CONTAINER,
    ETCD_IMAGE,
    IMAGE,
    exec_in,
    podman_healthcheck,
    progress,
    wait_until,
)

if TYPE_CHECKING:
    import docker.models.containers

pytestmark = pytest.mark.container

#: The least the entrypoint needs; everything else comes from the image's ENV defaults.
MINIMAL_ENV = {
    "PATRONI_SCOPE": "rollback",
    "PATRONI_SUPERUSER_PASSWORD": "not-a-real-secret-1",
    "PATRONI_REPLICATION_PASSWORD": "not-a-real-secret-2",
}
TEST_LABEL = "io.patroni-citus.test"


@dataclass(frozen=True)
class Scratch:
    """One test's API client and the label that marks everything it creates."""

    client: docker.DockerClient
    run_id: str

    @property
    def labels(self) -> dict[str, str]:
        return {TEST_LABEL: self.run_id}

    def run_to_completion(
        self, environment: dict[str, str], command: list[str] | None = None
    ) -> tuple[int, str]:
        """Run the image once (removing it after); its exit code and its combined output."""
        return self.run(command=command, environment=environment)

    def run(self, **options: Any) -> tuple[int, str]:
        """Run the image to its end; the container (and its volume) goes at the test's teardown."""
        container = self.client.containers.run(IMAGE, detach=True, labels=self.labels, **options)
        exit_code = int(container.wait(timeout=120)["StatusCode"])
        return exit_code, container.logs().decode(errors="replace")

    def image_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.client.images.get(IMAGE).attrs["Config"]
        return config


@pytest.fixture
def scratch(docker_api: tuple[str, docker.DockerClient]) -> Iterator[Scratch]:
    """Every container (with its anonymous volumes) and network the test made is removed after it."""
    _, client = docker_api
    made = Scratch(client, secrets.token_hex(4))
    try:
        yield made
    finally:
        label = {"label": [f"{TEST_LABEL}={made.run_id}"]}
        volumes = []
        for container in client.containers.list(all=True, filters=label):
            volumes += [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"]
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        for name in volumes:  # the image's VOLUME makes an anonymous one per container
            with contextlib.suppress(Exception):
                client.volumes.get(name).remove(force=True)
        for network in client.networks.list(filters=label):
            with contextlib.suppress(Exception):
                network.remove()
        assert not client.containers.list(all=True, filters=label), "containers left behind"
        assert not client.networks.list(filters=label), "networks left behind"
        left = [name for name in volumes if name in {v.name for v in client.volumes.list()}]
        assert not left, f"volumes left behind: {left}"


def test_image_runs_unprivileged_with_a_healthcheck_volume_and_two_ports(scratch: Scratch) -> None:
    config = scratch.image_config()
    assert config["User"] == "999:999"
    assert set(config["ExposedPorts"]) == {"5432/tcp", "8008/tcp"}
    assert set(config["Volumes"]) == {"/var/lib/postgresql/data"}
    # podman's Docker API leaves the health check out of an image's Config; podman itself shows it.
    healthcheck = json.loads(
        subprocess.run(
            ["podman", "image", "inspect", "--format", "{{json .HealthCheck}}", IMAGE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert healthcheck["Test"][:2] == ["CMD", "/opt/patroni-citus/venv/bin/python"]
    assert config["Entrypoint"] == ["/opt/patroni-citus/venv/bin/patroni-citus"]
    assert config["Cmd"][0] == "entrypoint"
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert environment["CITUS_ENABLE"] == "false"
    assert environment["CITUS_ROLE"] == "coordinator"
    # No defaults where a default would hide a mistake: a worker must name its coordinator (else
    # exit 2), and a ZooKeeper deployment must not inherit an etcd host ("set one DCS").
    assert "CITUS_COORDINATOR_HOST" not in environment and "PATRONI_ETCD3_HOSTS" not in environment
    assert environment["CITUS_COORDINATOR_PORT"] == "5432"
    assert not [name for name in environment if "PASSWORD" in name], "no password may be baked in"


def test_standin_image_says_so(scratch: Scratch) -> None:
    flavor = scratch.image_config()["Labels"]["io.patroni-citus.citus-flavor"]
    if flavor != "standin":
        pytest.skip(f"image {IMAGE} carries Citus from {flavor}, not the stand-in")
    code, marker = scratch.run(
        entrypoint=["cat"],
        command=[
            "/etc/patroni-citus-CITUS-STANDIN-NOT-CITUS",
            "/usr/share/postgresql/15/extension/citus.control",
        ],
    )
    assert code == 0, marker
    assert "NOT Citus" in marker
    assert "patroni-citus stand-in" in marker


def test_rollback_rendered_config_has_no_citus_trace(scratch: Scratch) -> None:
    code, rendered = scratch.run_to_completion(MINIMAL_ENV, ["render-config"])
    assert code == 0, rendered
    assert 'scope: "rollback"' in rendered
    assert "citus" not in rendered.lower(), rendered
    # The same check does see Citus once it is switched on.
    code, enabled = scratch.run_to_completion({**MINIMAL_ENV, "CITUS_ENABLE": "true"}, ["render-config"])
    assert code == 0, enabled
    assert "citus" in enabled.lower()


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("CITUS_COORDINATOR_PORT", "70000", "CITUS_COORDINATOR_PORT='70000' is invalid"),
        ("CITUS_ROLE", "boss", "CITUS_ROLE='boss' is invalid"),
        ("PATRONI_SCOPE", "", "PATRONI_SCOPE=(unset) is invalid"),
    ],
)
def test_bad_setting_stops_the_container_with_one_line_and_exit_2(
    scratch: Scratch, setting: str, value: str, expected: str
) -> None:
    code, output = scratch.run_to_completion({**MINIMAL_ENV, setting: value})
    lines = output.strip().splitlines()
    assert code == 2, output
    assert len(lines) == 1, output
    assert lines[0].startswith("patroni-citus: error: "), output
    assert expected in lines[0]


def test_citus_disabled_member_is_plain_patroni_and_postgresql(scratch: Scratch) -> None:
    client, suffix = scratch.client, scratch.run_id
    network = client.networks.create(f"pcct-plain-{suffix}", driver="bridge", labels=scratch.labels)
    etcd_name = f"pcct-etcd-{suffix}"
    client.containers.run(
        ETCD_IMAGE,
        name=etcd_name,
        command=[
            "etcd",
            "--name=etcd",
            "--data-dir=/tmp/etcd",
            "--listen-client-urls=http://0.0.0.0:2379",
            f"--advertise-client-urls=http://{etcd_name}:2379",
        ],
        network=network.name,
        detach=True,
        labels=scratch.labels,
    )
    password = secrets.token_urlsafe(12)
    member = client.containers.run(
        IMAGE,
        name=f"pcct-member-{suffix}",
        hostname="plain-member",
        environment={
            "PATRONI_SCOPE": "plain",
            "PATRONI_ETCD3_HOSTS": f"{etcd_name}:2379",
            "PATRONI_SUPERUSER_PASSWORD": password,
            "PATRONI_REPLICATION_PASSWORD": secrets.token_urlsafe(12),
        },
        network=network.name,
        detach=True,
        labels=scratch.labels,
    )

    def explain() -> str:
        member.reload()
        return f"{member.name} ({member.status}):\n{member.logs(tail=30).decode(errors='replace')}"

    wait_until(
        "the image's HEALTHCHECK to pass", lambda: podman_healthcheck(member.id), timeout=120, explain=explain
    )

    def sql(statement: str) -> str:
        code, stdout, stderr = exec_in(
            member,
            [
                "psql",
                "-AtX",
                "-h",
                "/var/run/postgresql",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                statement,
            ],
            environment={"PGPASSWORD": password},
        )
        assert code == 0, stderr
        return stdout.strip()

    assert sql("SHOW shared_preload_libraries") == ""
    assert sql("SELECT count(*) FROM pg_extension WHERE extname = 'citus'") == "0"
    assert sql("SELECT datname FROM pg_database WHERE datname = 'citus'") == ""
    code, rendered, _ = exec_in(member, ["cat", CONFIG_IN_CONTAINER])
    assert code == 0
    assert "citus" not in rendered.lower(), rendered
    code, cmdline, _ = exec_in(member, ["cat", "/proc/1/cmdline"])
    assert "bin/patroni" in cmdline, f"PID 1 must be Patroni itself (exec), not {cmdline!r}"

    started = time.monotonic()
    member.stop(timeout=60)
    stopped_in = time.monotonic() - started
    member.reload()
    progress(f"docker stop took {stopped_in:.1f}s, exit code {member.attrs['State']['ExitCode']}")
    assert stopped_in < 30, "Patroni as PID 1 must act on SIGTERM, not wait for the kill"
    assert member.attrs["State"]["ExitCode"] == 0
