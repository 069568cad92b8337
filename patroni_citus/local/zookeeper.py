"""The local formation's ZooKeeper (``--dcs zookeeper``): one standalone server from Debian's package.

Debian's ``zookeeper`` package ships the server as jars under /usr/share/java (its zookeeper.jar
names its dependencies in its manifest) and no service of its own that a formation could use, so
the formation runs ``java -cp zookeeper.jar org.apache.zookeeper.server.quorum.QuorumPeerMain
zoo.cfg`` itself, as a child it tracks by pid like etcd, with its own data directory and zoo.cfg
under the base directory. A config without servers makes QuorumPeerMain run standalone.
No TLS: `local up --tls` is built for etcd only.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from patroni_citus.errors import PatroniCitusError
from patroni_citus.local import processes
from patroni_citus.local.layout import FormationLayout

Reporter = Callable[[str], None]
JAVA_DIR = Path("/usr/share/java")
SERVER_JAR = JAVA_DIR / "zookeeper.jar"
#: ZooKeeper logs through SLF4J; without a binding it logs nothing at all, so log to stderr (the log file).
LOGGING_JAR = JAVA_DIR / "slf4j-simple.jar"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
START_TIMEOUT = 60.0  # a JVM on a busy 2-core machine takes a while


class ZooKeeperError(PatroniCitusError):
    """ZooKeeper could not be found, started or reached; the message names its log."""


def config_text(layout: FormationLayout) -> str:
    """zoo.cfg: standalone, the client port on the formation's host address, no admin web server.

    >>> print(config_text(FormationLayout("/f", port_base=47800, dcs="zookeeper")), end="")
    tickTime=2000
    dataDir=/f/zookeeper/data
    clientPort=47800
    clientPortAddress=127.0.0.1
    admin.enableServer=false
    4lw.commands.whitelist=ruok,srvr
    """
    return "".join(
        f"{line}\n"
        for line in (
            "tickTime=2000",
            f"dataDir={layout.zookeeper_dir / 'data'}",
            f"clientPort={layout.zookeeper_client_port}",
            f"clientPortAddress={layout.host_address}",
            "admin.enableServer=false",  # it would take port 8080
            "4lw.commands.whitelist=ruok,srvr",
        )
    )


def command(layout: FormationLayout) -> list[str]:
    java = shutil.which("java")
    if java is None or not SERVER_JAR.is_file():
        raise ZooKeeperError(
            f"ZooKeeper is not installed (no java or no {SERVER_JAR}); apt-get install zookeeper"
        )
    classpath = ":".join(str(jar) for jar in (SERVER_JAR, LOGGING_JAR) if jar.is_file())
    return [
        java,
        "-Xmx256m",
        "-Dzookeeper.jmx.log4j.disable=true",
        "-cp",
        classpath,
        MAIN_CLASS,
        str(layout.zookeeper_dir / "zoo.cfg"),
    ]


def is_ok(layout: FormationLayout) -> bool:
    """ZooKeeper's own liveness check: `ruok` on the client port answers `imok`."""
    try:
        with socket.create_connection((layout.host_address, layout.zookeeper_client_port), timeout=1) as conn:
            conn.sendall(b"ruok")
            return conn.recv(16) == b"imok"
    except OSError:
        return False


def start(layout: FormationLayout, report: Reporter, record: Callable[[int], None]) -> int:
    """Write zoo.cfg, start ZooKeeper as the caller and wait until it answers `ruok`."""
    (layout.zookeeper_dir / "data").mkdir(parents=True, exist_ok=True)
    (layout.zookeeper_dir / "zoo.cfg").write_text(config_text(layout))
    daemon = processes.Daemon(
        what="ZooKeeper",
        argv=command(layout),
        log_path=layout.dcs_log_path,
        cwd=layout.zookeeper_dir,
        env={"PATH": "/usr/bin:/bin", "HOME": str(layout.zookeeper_dir), "LANG": "C.UTF-8"},
        marker=MAIN_CLASS,
        ready=lambda: is_ok(layout),
        timeout=START_TIMEOUT,
        pause=0.3,
    )
    address = f"{layout.host_address}:{layout.zookeeper_client_port}"

    def started(pid: int) -> None:
        record(pid)  # before the wait: a zookeeper that never answers is still found and stopped by `down`
        report(f"zookeeper: started (pid {pid}) on {address}, waiting for it to answer")

    pid = processes.start_unless_running(daemon, started)
    report("zookeeper: healthy")
    return pid


def is_ours(pid: int | None) -> bool:
    """The pid still runs this ZooKeeper (not a process that reused the pid)."""
    return processes.is_ours(pid, MAIN_CLASS)
