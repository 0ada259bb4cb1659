"""A throwaway PostgreSQL server on loopback for the tests of searches shared by several workers.

Debian's ``postgresql`` package (which ``.ci/run`` installs) provides ``initdb`` and ``pg_ctl``, in
``/usr/lib/postgresql/<version>/bin`` rather than on the PATH. The cluster lives in a temporary
directory with trust authentication on 127.0.0.1 only, fsync off (a test database need not survive
a crash), and is stopped and deleted afterwards. PostgreSQL refuses to run as root; as root, the
server runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SERVER_USER = "postgres"


def server_binaries() -> tuple[Path, Path] | None:
    """(initdb, pg_ctl) of the newest installed PostgreSQL, or None."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(on_path[0]), Path(on_path[1])  # type: ignore[arg-type]
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name), reverse=True):
        initdb, pg_ctl = Path(directory, "initdb"), Path(directory, "pg_ctl")
        if initdb.is_file() and pg_ctl.is_file():
            return initdb, pg_ctl
    return None


def why_unavailable() -> str | None:
    """Why no server can be started here (None when one can)."""
    if server_binaries() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package (.ci/run does)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver psycopg is not installed (pip install -e '.[test]' installs it)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no '{SERVER_USER}' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start the server as another user"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def postgres_server(database: str = "search") -> Iterator[str]:
    """Start a server, create ``database``, yield its SQLAlchemy URL; stop and delete the cluster afterwards."""
    binaries = server_binaries()
    assert binaries is not None, why_unavailable()
    initdb, pg_ctl = binaries
    root = Path(tempfile.mkdtemp(prefix="polydistill-postgres-"))
    data, log = root / "data", root / "server.log"
    as_server: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
        shutil.chown(root, user=SERVER_USER)
        as_server = ["runuser", "-u", SERVER_USER, "--"]
    port = _free_port()

    def run(*command: str | Path) -> None:
        completed = subprocess.run([*as_server, *map(str, command)], capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            server_log = log.read_text(errors="replace") if log.is_file() else ""
            raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{completed.stdout}{completed.stderr}{server_log}")

    try:
        run(initdb, "-D", data, "-U", "polydistill", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "-o", f"-h 127.0.0.1 -p {port} -k {root} -F", "start")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="polydistill", dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        yield f"postgresql://polydistill@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_server, str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
