"""Container test harness: podman's Docker API, the compose formation, polling and clean-up.

The tests drive rootful podman through its Docker-compatible API (`podman system service`) with
the Python docker SDK, and bring compose.yaml up with docker-compose against the same socket.
Podman 4.3 runs health checks only from systemd timers, which this machine has not, so while
`docker-compose up` waits for `condition: service_healthy` a ticker runs each container's own
HEALTHCHECK with `podman healthcheck run` (what the timer would do). Everything a test creates
is removed again, also when it fails.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polling
import psycopg2
import psycopg2.extensions
import pytest
from polling import TIMEOUT_MULTIPLIER

if TYPE_CHECKING:
    import docker.models.containers

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
CERT_TOOL = REPO_ROOT / "docker" / "make-demo-certs.py"
#: The Python that runs docker/make-demo-certs.py, as the docs tell operators to: the project's venv
#: (scripts/lib.sh's PATRONI_CITUS_VENV), where the script finds patroni_citus.pki.
VENV = Path(os.environ.get("PATRONI_CITUS_VENV", "/opt/patroni-citus/venv"))
CERT_TOOL_PYTHON = os.environ.get("PATRONI_CITUS_CERT_PYTHON", str(VENV / "bin" / "python"))
IMAGE = os.environ.get("PATRONI_CITUS_IMAGE", "localhost/patroni-citus:standin")
ETCD_IMAGE = os.environ.get("PATRONI_CITUS_ETCD_IMAGE", "localhost/patroni-citus-etcd:test")
REQUIRE = os.environ.get("PATRONI_CITUS_REQUIRE_CONTAINERS", "") == "1"
CONFIG_IN_CONTAINER = "/var/lib/postgresql/patroni.yml"
SCOPES = ("demo-0", "demo-1", "demo-2")
COORDINATORS = ("coordinator-a", "coordinator-b")
#: compose.yaml's secrets: one file NAME-password each in PATRONI_CITUS_SECRETS_DIR.
SECRET_NAMES = ("superuser", "replication", "restapi", "etcd-root", "etcd-patroni", "pooler-admin")
#: Where compose.yaml mounts a container's own directory of make-demo-certs.py's output.
TLS_IN_CONTAINER = "/run/tls"
#: etcdctl's TLS flags and the files of a make-demo-certs.py directory they take.
_ETCDCTL_TLS = (("cacert", "ca.crt"), ("cert", "tls.crt"), ("key", "tls.key"))
SETUP_HINT = "run scripts/container-setup.sh (as root) first"
#: Log lines that repeat every loop and say nothing about a failure.
_LOG_NOISE = ("INFO: no action.", "LOG:  checkpoint ", "raft20", "etcdserver", "for permission checking")


def cert_tool_missing() -> str | None:
    """What CERT_TOOL_PYTHON lacks to run CERT_TOOL, or None: patroni_citus.pki as the script sees it
    (-P: not from the working directory, which a script's sys.path does not hold either)."""
    command = [CERT_TOOL_PYTHON, "-P", "-c", "import patroni_citus.pki"]
    probe = subprocess.run(command, capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return None
    cause = (probe.stderr.strip().splitlines() or ["not runnable"])[-1]
    return (
        f"patroni_citus.pki for {CERT_TOOL_PYTHON} ({cause}): scripts/install.sh installs this checkout "
        "in the venv, or set PATRONI_CITUS_CERT_PYTHON"
    )


def missing_prerequisites() -> list[str]:
    """What this machine lacks for the container tests; empty when they can run."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the tests use rootful podman)")
    for tool in ("podman", "docker-compose"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} on PATH")
    try:
        import docker  # noqa: F401
    except ImportError:
        missing.append("the Python docker SDK (pip install docker)")
    cert_tool = cert_tool_missing()
    if cert_tool is not None:
        missing.append(cert_tool)
    if shutil.which("podman") is not None:
        for image in (IMAGE, ETCD_IMAGE):
            found = subprocess.run(["podman", "image", "exists", image], capture_output=True, check=False)
            if found.returncode != 0:
                missing.append(f"the image {image}")
    return missing


def require_containers() -> None:
    """Skip (on a dev box without podman) or fail (in CI: PATRONI_CITUS_REQUIRE_CONTAINERS=1)."""
    missing = missing_prerequisites()
    if not missing:
        return
    message = f"container tests need {', '.join(missing)}; {SETUP_HINT}"
    if REQUIRE:
        pytest.fail(f"PATRONI_CITUS_REQUIRE_CONTAINERS=1 but {message}", pytrace=False)
    pytest.skip(message)


#: polling.wait_until, polling once a second by default (containers change state slowly).
wait_until = functools.partial(polling.wait_until, interval=1.0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def progress(line: str) -> None:
    """Shown with pytest -s; in CI's captured output it lands in the failure report."""
    print(f"[container] {line}", flush=True)


@contextlib.contextmanager
def private_directory(prefix: str) -> Iterator[Path]:
    """A temporary directory that is removed again whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def podman_service(workdir: Path) -> Iterator[tuple[str, docker.DockerClient]]:
    """`podman system service` on a private socket, and a docker SDK client for it.

    Only the process started here is stopped again (by its pid), never another podman.
    """
    import docker

    socket_path = workdir / "podman.sock"
    url = f"unix://{socket_path}"
    monitors_before = set(conmon_pids())
    with (workdir / "podman-service.log").open("w") as log:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client: docker.DockerClient | None = None
        try:

            def ready() -> docker.DockerClient | None:
                if service.poll() is not None:
                    raise RuntimeError(f"podman system service exited with {service.returncode}")
                if not socket_path.exists():
                    return None
                candidate = docker.DockerClient(base_url=url, version="1.41", timeout=120)
                candidate.ping()
                return candidate

            client = wait_until("podman's Docker API socket", ready, timeout=30, interval=0.3)
            progress(f"podman API at {url} (pid {service.pid})")
            yield url, client
        finally:
            if client is not None:
                client.close()
            service.terminate()
            try:
                service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(timeout=15)
            stop_orphaned_monitors(monitors_before)


def conmon_pids() -> dict[int, str]:
    """Live conmon processes (podman's per-container and per-exec monitors) and their container ids."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and b"-c" in argv:
            found[int(entry.name)] = argv[argv.index(b"-c") + 1].decode(errors="replace")
    return found


def stop_orphaned_monitors(before: set[int]) -> None:
    """conmon monitors started during the tests whose container is gone (exec/healthcheck sessions
    seen lingering under podman 4.3) would outlive the tests: stop them."""
    for pid, container_id in conmon_pids().items():
        if pid in before:
            continue
        exists = subprocess.run(["podman", "container", "exists", container_id], check=False).returncode == 0
        if not exists:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def podman_healthcheck(container_id: str) -> bool:
    """Run the container's own HEALTHCHECK once (records the result as a timer would)."""
    result = subprocess.run(
        ["podman", "healthcheck", "run", container_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def exec_in(
    container: docker.models.containers.Container,
    command: list[str],
    environment: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run a command inside a container (as the image's user); exit code, stdout, stderr."""
    exit_code, (stdout, stderr) = container.exec_run(command, environment=environment, demux=True)
    return (
        int(exit_code if exit_code is not None else -1),
        (stdout or b"").decode(errors="replace"),
        (stderr or b"").decode(errors="replace"),
    )


@dataclass
class ComposeFormation:
    """compose.yaml brought up as one project on podman; every object carries the project label."""

    project: str
    client: docker.DockerClient
    docker_host: str
    workdir: Path
    passwords: dict[str, str] = field(repr=False)
    coordinator_ports: tuple[int, int] = (0, 0)
    metrics_port: int = 0
    pooler_port: int = 0
    volumes_seen: set[str] = field(default_factory=set)

    @property
    def superuser_password(self) -> str:
        return self.passwords["superuser"]

    @property
    def tls_dir(self) -> Path:
        """make-demo-certs.py's output for this formation: NAME/{ca.crt,tls.crt,tls.key}, and ca.crt."""
        return self.workdir / "tls"

    def environment(self) -> dict[str, str]:
        secrets_dir = self.workdir / "secrets"
        return {
            **os.environ,
            "DOCKER_HOST": self.docker_host,
            "COMPOSE_PROJECT_NAME": self.project,
            "PATRONI_CITUS_IMAGE": IMAGE,
            "PATRONI_CITUS_ETCD_IMAGE": ETCD_IMAGE,
            "PATRONI_CITUS_SECRETS_DIR": str(secrets_dir),
            "PATRONI_CITUS_TLS_DIR": str(self.tls_dir),
            "PATRONI_CITUS_COORDINATOR_A_PORT": str(self.coordinator_ports[0]),
            "PATRONI_CITUS_COORDINATOR_B_PORT": str(self.coordinator_ports[1]),
            "PATRONI_CITUS_METRICS_PORT": str(self.metrics_port),
            "PATRONI_CITUS_POOLER_PORT": str(self.pooler_port),
        }

    def compose(self, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command = [
            "docker-compose",
            "--project-name",
            self.project,
            "--file",
            str(COMPOSE_FILE),
            "--project-directory",
            str(REPO_ROOT),
            *arguments,
        ]
        return subprocess.run(
            command,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout * TIMEOUT_MULTIPLIER,
            check=False,
        )

    def containers(self, service: str | None = None) -> list[docker.models.containers.Container]:
        labels = [f"com.docker.compose.project={self.project}"]
        if service is not None:
            labels.append(f"com.docker.compose.service={service}")
        found: list[docker.models.containers.Container] = self.client.containers.list(
            all=True, filters={"label": labels}
        )
        return found

    def container(self, service: str) -> docker.models.containers.Container:
        found = self.containers(service)
        assert len(found) == 1, f"expected one container for service {service}, found {len(found)}"
        return found[0]

    def up(self) -> None:
        """docker-compose up -d, with the health-check ticker that podman's missing timer needs."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    for container in self.containers():
                        if container.status == "running" and container.attrs["Config"].get("Healthcheck"):
                            podman_healthcheck(container.id)
                stop.wait(2)

        ticker = threading.Thread(target=tick, name="healthcheck-ticker", daemon=True)
        ticker.start()
        try:
            result = self.compose("up", "--detach", "--no-build", timeout=300)
        finally:
            stop.set()
            ticker.join(timeout=90)
        if result.returncode != 0:
            raise AssertionError(
                f"docker-compose up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                + self.explain()
            )

    def down(self) -> None:
        """docker-compose down -v, then remove by label whatever it left (a failed up leaves some)."""
        for container in self.containers():
            self.volumes_seen.update(
                m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"
            )
        result = self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300)
        if result.returncode != 0:
            progress(f"docker-compose down failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        label = {"label": [f"com.docker.compose.project={self.project}"]}
        for container in self.client.containers.list(all=True, filters=label):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        for volume in self.client.volumes.list(filters=label):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
        for network in self.client.networks.list(filters=label):
            with contextlib.suppress(Exception):
                network.remove()
        present = {volume.name for volume in self.client.volumes.list()}
        for name in self.volumes_seen & present:  # anonymous ones carry no project label
            with contextlib.suppress(Exception):
                self.client.volumes.get(name).remove(force=True)

    def leftovers(self) -> list[str]:
        """Every object of this project still present (must be none after down)."""
        label = {"label": [f"com.docker.compose.project={self.project}"]}
        return (
            [f"container {c.name}" for c in self.client.containers.list(all=True, filters=label)]
            + [f"volume {v.name}" for v in self.client.volumes.list(filters=label)]
            + [f"network {n.name}" for n in self.client.networks.list(filters=label)]
            + [f"volume {name}" for name in self.volumes_seen & {v.name for v in self.client.volumes.list()}]
        )

    def explain(self) -> str:
        """The state and last telling log lines of every container, for a failure message."""
        sections = []
        for container in self.containers():
            with contextlib.suppress(Exception):
                container.reload()
                logs = container.logs(tail=400).decode(errors="replace").splitlines()
                telling = [line for line in logs if not any(noise in line for noise in _LOG_NOISE)]
                sections.append(f"--- {container.name} ({container.status}) ---\n" + "\n".join(telling[-30:]))
        return "\n".join(sections)

    def running_coordinator(self) -> docker.models.containers.Container:
        for service in COORDINATORS:
            container = self.container(service)
            container.reload()
            if container.status == "running":
                return container
        raise AssertionError("no coordinator container is running")

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view of every group (patronictl list, run inside a coordinator container).

        Without -c, as docs/container.md shows it: the image points patronictl at patroni.yml.
        """
        code, stdout, stderr = exec_in(
            self.running_coordinator(),
            ["patronictl", "list", *SCOPES, "--format", "json"],  # the image's PATRONICTL_CONFIG_FILE
        )
        if code != 0:
            raise RuntimeError(f"patronictl list failed ({code}): {stderr.strip()}")
        # one JSON document (a list of members) per cluster, one per line
        members: list[dict[str, Any]] = []
        for line in stdout.splitlines():
            if line.strip():
                members.extend(json.loads(line))
        return members

    def leaders(self) -> dict[str, str]:
        """scope -> the member Patroni names leader and that is running."""
        return {
            member["Cluster"]: member["Member"]
            for member in self.members()
            if member.get("Role") == "Leader" and member.get("State") == "running"
        }

    def etcdctl(self, *arguments: str, user: str | None = None) -> tuple[int, str, str]:
        """etcdctl inside the etcd container, over TLS with etcd's own client certificate.

        *user* logs in as that etcd user (root or patroni: compose.yaml's secret etcd-USER-password);
        the password goes in the exec's environment, never on a command line.
        """
        login = {}
        if user is not None:
            login = {"ETCDCTL_USER": user, "ETCDCTL_PASSWORD": self.passwords[f"etcd-{user}"]}
        tls = [f"--{flag}={TLS_IN_CONTAINER}/{name}" for flag, name in _ETCDCTL_TLS]
        command = ["etcdctl", "--endpoints=https://127.0.0.1:2379", *tls, "--command-timeout=5s", *arguments]
        return exec_in(self.container("etcd"), command, environment=login)

    def connect(self, **tls: str) -> psycopg2.extensions.connection:
        """The coordinator's current primary through the published ports, as a client would.

        *tls*: libpq's sslmode (default prefer, as psql's) and friends, e.g. sslmode="verify-full".
        """
        ports = ",".join(str(port) for port in self.coordinator_ports)
        connection = psycopg2.connect(
            host="127.0.0.1,127.0.0.1",
            port=ports,
            user="postgres",
            password=self.superuser_password,
            dbname="citus",
            target_session_attrs="read-write",
            connect_timeout=5,
            **tls,
        )
        connection.autocommit = True
        return connection

    def pooler_dsn(self) -> str:
        """The formation through compose's PgBouncer (its published port), as an application would."""
        return psycopg2.extensions.make_dsn(
            host="127.0.0.1",
            port=self.pooler_port,
            user="postgres",
            password=self.superuser_password,
            dbname="citus",
        )

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connect()) as connection, connection.cursor() as cursor:
            cursor.execute(sql, parameters or None)
            return cursor.fetchall() if cursor.description is not None else []

    def primary_rows(self) -> dict[int, str]:
        """groupid -> nodename of the primary rows in the coordinator's pg_dist_node."""
        rows = self.query(
            "SELECT groupid, nodename FROM pg_dist_node WHERE noderole = 'primary' AND isactive"
        )
        return {int(group): str(name) for group, name in rows}


def make_demo_certs(out_dir: Path) -> None:
    """docker/make-demo-certs.py as docs/container.md runs it (as root: the keys go to uid 999)."""
    result = subprocess.run(
        [CERT_TOOL_PYTHON, str(CERT_TOOL), str(out_dir)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{CERT_TOOL.name} failed ({result.returncode}): {result.stderr.strip()}")


@contextlib.contextmanager
def compose_formation(
    client: docker.DockerClient, docker_host: str, workdir: Path
) -> Iterator[ComposeFormation]:
    """compose.yaml up under a fresh project name with random passwords and its own CA; always torn down."""
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(mode=0o755)
    passwords = {name: secrets.token_urlsafe(18) for name in SECRET_NAMES}
    for name, password in passwords.items():
        secret = secrets_dir / f"{name}-password"
        secret.write_text(password + "\n", encoding="utf-8")
        secret.chmod(0o644)  # bind-mounted as a secret, read by the containers' uid 999
    workdir.chmod(0o755)
    formation = ComposeFormation(
        project=f"pcct{secrets.token_hex(3)}",
        client=client,
        docker_host=docker_host,
        workdir=workdir,
        passwords=passwords,
        coordinator_ports=(free_port(), free_port()),
        metrics_port=free_port(),
        pooler_port=free_port(),
    )
    make_demo_certs(formation.tls_dir)
    progress(f"compose project {formation.project}: up (image {IMAGE})")
    try:
        formation.up()
        yield formation
    finally:
        progress(f"compose project {formation.project}: down")
        formation.down()
        left = formation.leftovers()
        assert not left, f"left behind after docker-compose down: {left}"
