"""Find PostgreSQL, tell real Citus from the test stand-in, and install the stand-in privately.

Citus is in no package registry the test machines reach. Where it is absent, tests run against
a stand-in (a do-nothing ``citus.so`` plus a ``citus`` extension modelling the metadata
functions in SQL) installed into a private copy of the PostgreSQL tree, never the system one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from importlib.resources import as_file, files
from pathlib import Path

from patroni_citus.errors import PatroniCitusError

STANDIN_MARKER = "patroni-citus stand-in"
STANDIN_PACKAGE = "patroni_citus.local.standin"
STANDIN_SOURCE = "citus_standin.c"
STANDIN_CONTROL = "citus.control"
STANDIN_SCRIPT = "citus--13.2-standin.sql"
STANDIN_LIBRARY = "citus.so"
STAMP_FILE = ".patroni-citus-standin.stamp"
LOCK_FILE = ".patroni-citus-standin.lock"
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


class PgTreeError(PatroniCitusError):
    """A PostgreSQL tree could not be found, read or prepared; the message says what to do."""


def find_system_bindir(major: int | None = None) -> Path:
    """The bin directory of an installed PostgreSQL server (of `major` if given), newest first."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_config")
    if on_path:
        with contextlib.suppress(PgTreeError, OSError):
            candidates.append(Path(_run_pg_config(Path(on_path), "--bindir")))
    versioned = [path for path in DEBIAN_PG_ROOT.glob("*/bin") if _version_key(path.parent.name)]
    candidates.extend(sorted(versioned, key=lambda path: _version_key(path.parent.name), reverse=True))
    for bindir in candidates:
        if not ((bindir / "postgres").is_file() and (bindir / "pg_config").is_file()):
            continue  # a client-only pg_config (libpq-dev) reports a bindir without a server
        if major is None or server_major(bindir) == major:
            return bindir
    wanted = f"PostgreSQL {major}" if major is not None else "a PostgreSQL server"
    package = f"postgresql-{major}" if major is not None else "postgresql"
    raise PgTreeError(
        f"{wanted} was not found (looked at pg_config on PATH and {DEBIAN_PG_ROOT}/*/bin); "
        f"install it (apt-get install {package}) or put its pg_config on PATH"
    )


def server_major(bindir: Path) -> int:
    """The major version of the PostgreSQL whose binaries are in bindir."""
    version = pg_config(bindir, "--version")
    found = re.search(r"PostgreSQL (\d+)", version)
    if not found:
        raise PgTreeError(f"{bindir}/pg_config --version printed {version!r}, not a PostgreSQL version")
    return int(found.group(1))


def pg_config(bindir: Path, option: str) -> str:
    """One answer of the pg_config that belongs to bindir (a relocated tree answers for itself)."""
    program = bindir / "pg_config"
    if not program.is_file():
        raise PgTreeError(
            f"{program} does not exist, so {bindir} is not a PostgreSQL bin directory; "
            "pass the bin directory of a PostgreSQL server (e.g. /usr/lib/postgresql/15/bin)"
        )
    return _run_pg_config(program, option)


def citus_available(bindir: Path) -> bool:
    """Whether real Citus (not the stand-in) is installed for the PostgreSQL in bindir."""
    control = _control_file(bindir)
    return control.is_file() and STANDIN_MARKER not in control.read_text(errors="replace")


def is_standin(bindir: Path) -> bool:
    """Whether the `citus` extension of the PostgreSQL in bindir is the patroni-citus stand-in."""
    control = _control_file(bindir)
    return control.is_file() and STANDIN_MARKER in control.read_text(errors="replace")


def install_standin(dest: Path, source_bindir: Path) -> Path:
    """Copy source_bindir's PostgreSQL tree under dest, add the Citus stand-in, return its bindir.

    The copy keeps the tree's absolute layout below dest (/usr/lib/postgresql/15 becomes
    dest/usr/lib/postgresql/15), so the relocatable PostgreSQL finds its own share and lib
    directories. Nothing is written outside dest. A complete earlier install is reused as is.
    """
    dest = Path(os.path.abspath(dest))
    source_bindir = Path(os.path.abspath(source_bindir))
    if dest == Path(dest.anchor):
        raise PgTreeError(
            "refusing to install the Citus stand-in into / (it would overwrite the system tree)"
        )
    source_root = source_bindir.parent
    source_share = Path(pg_config(source_bindir, "--sharedir"))
    private_root = _below(dest, source_root)
    private_share = _below(dest, source_share)
    private_bindir = private_root / source_bindir.name
    fingerprint = _fingerprint(source_bindir)

    stamp = dest / STAMP_FILE
    if _stamp_matches(stamp, fingerprint, private_bindir):
        return private_bindir
    gcc = shutil.which("gcc")
    if gcc is None:
        raise PgTreeError("gcc is not installed, so the Citus stand-in cannot be built; apt-get install gcc")
    headers = Path(pg_config(source_bindir, "--includedir-server"))
    if not (headers / "postgres.h").is_file():
        major = server_major(source_bindir)
        raise PgTreeError(
            f"PostgreSQL server headers are missing ({headers}/postgres.h), so the Citus stand-in "
            f"cannot be built; apt-get install postgresql-server-dev-{major}"
        )
    _check_reachable_by_others(dest)

    dest.mkdir(parents=True, exist_ok=True)
    with _install_lock(dest):
        if _stamp_matches(stamp, fingerprint, private_bindir):
            return private_bindir  # another process finished the install while we waited
        stamp.unlink(missing_ok=True)
        for target in (private_root, private_share):
            if not target.resolve().is_relative_to(dest.resolve()):
                raise PgTreeError(
                    f"{target} leads outside {dest} through a symbolic link; remove the link or "
                    "install the stand-in into another directory"
                )
        _copy_tree(source_root, private_root)
        if not private_share.is_relative_to(private_root):
            _copy_tree(source_share, private_share)
        pkglibdir = _inside(dest, Path(pg_config(private_bindir, "--pkglibdir")), "pkglibdir")
        sharedir = _inside(dest, Path(pg_config(private_bindir, "--sharedir")), "sharedir")
        extension_dir = sharedir / "extension"
        _compile_library(gcc, headers, pkglibdir / STANDIN_LIBRARY)
        _install_extension_files(extension_dir)
        _make_world_readable(dest)
        stamp.write_text(fingerprint)
        stamp.chmod(0o644)
    return private_bindir


def _run_pg_config(program: Path, option: str) -> str:
    try:
        result = subprocess.run(
            [str(program), option], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise PgTreeError(f"{program} could not be run ({exc}); check the PostgreSQL installation") from exc
    if result.returncode != 0:
        raise PgTreeError(
            f"{program} {option} failed: {result.stderr.strip()}; check the PostgreSQL installation"
        )
    return result.stdout.strip()


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".")) if re.fullmatch(r"\d+(\.\d+)*", name) else ()


def _control_file(bindir: Path) -> Path:
    return Path(pg_config(bindir, "--sharedir")) / "extension" / STANDIN_CONTROL


def _below(dest: Path, absolute: Path) -> Path:
    return dest / Path(os.path.abspath(absolute)).relative_to(absolute.anchor)


def _inside(dest: Path, path: Path, what: str) -> Path:
    """Guard the promise to write nowhere but dest: the private tree must answer inside it."""
    if not path.resolve().is_relative_to(dest.resolve()):
        raise PgTreeError(
            f"the private PostgreSQL copy under {dest} reports its {what} as {path}, outside the copy; "
            "this PostgreSQL build is not relocatable, so the stand-in cannot be installed privately"
        )
    return path


def _standin_data() -> dict[str, bytes]:
    package = files(STANDIN_PACKAGE)
    return {
        name: package.joinpath(name).read_bytes()
        for name in (STANDIN_SOURCE, STANDIN_CONTROL, STANDIN_SCRIPT)
    }


def _fingerprint(source_bindir: Path) -> str:
    """What the stamp records: a changed source tree or stand-in file means reinstalling."""
    digest = hashlib.sha256()
    for name, content in sorted(_standin_data().items()):
        digest.update(name.encode() + b"\0" + content + b"\0")
    return f"{STANDIN_MARKER} (NOT Citus)\nsource={source_bindir}\nsha256={digest.hexdigest()}\n"


def _stamp_matches(stamp: Path, fingerprint: str, private_bindir: Path) -> bool:
    try:
        recorded = stamp.read_text()
    except OSError:
        return False
    return recorded == fingerprint and (private_bindir / "postgres").is_file()


def _check_reachable_by_others(dest: Path) -> None:
    """As root, the tree is run by the postgres OS user, which must be able to reach it."""
    if os.geteuid() != 0:
        return
    existing = dest
    while not existing.exists():
        existing = existing.parent
    for directory in (existing, *existing.parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            raise PgTreeError(
                f"{directory} is not searchable by other users, so the postgres OS user could not run "
                f"PostgreSQL from {dest}; install under a directory it can reach (e.g. tempfile.mkdtemp() "
                f"then chmod 0755) or chmod o+x {directory}"
            )


@contextlib.contextmanager
def _install_lock(dest: Path) -> Iterator[None]:
    with (dest / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _copy_tree(source: Path, target: Path) -> None:
    """A fresh copy: leftovers of an interrupted install must not survive."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, target, symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise PgTreeError(
            f"copying {source} to {target} failed ({exc}); check free space and permissions"
        ) from exc


def _compile_library(gcc: str, headers: Path, library: Path) -> None:
    built = library.with_name(library.name + ".tmp")
    with as_file(files(STANDIN_PACKAGE).joinpath(STANDIN_SOURCE)) as source:
        command = [gcc, "-shared", "-fPIC", "-O2", "-Wall", f"-I{headers}", "-o", str(built), str(source)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        built.unlink(missing_ok=True)
        raise PgTreeError(
            f"compiling the Citus stand-in failed: {' '.join(command)}\n{result.stderr.strip()}\n"
            "check that gcc and the PostgreSQL server headers (postgresql-server-dev-<major>) are installed"
        )
    os.replace(built, library)


def _install_extension_files(extension_dir: Path) -> None:
    # a copied real Citus's scripts would offer update paths the stand-in does not have
    for leftover in extension_dir.glob("citus--*.sql"):
        leftover.unlink()
    data = _standin_data()
    for name in (STANDIN_CONTROL, STANDIN_SCRIPT):
        (extension_dir / name).write_bytes(data[name])


def _make_world_readable(root: Path) -> None:
    """The postgres OS user runs the tree: it must read every file and run every program."""
    for directory, _subdirectories, filenames in os.walk(root):  # does not follow symlinks
        _add_mode(Path(directory), 0o755)
        for name in filenames:
            path = Path(directory) / name
            if path.is_symlink():
                continue
            executable = path.stat().st_mode & 0o111
            _add_mode(path, 0o555 if executable else 0o444)


def _add_mode(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)
