"""A PostgreSQL server of the test's own, on its own port, to stop, freeze and thaw.

The machine's shared server (127.0.0.1:5432) is never stopped or frozen: a test that
needs a database to misbehave starts one of these. PostgreSQL refuses to run as root,
so the server runs as the ``postgres`` user (``runuser``); tests skip, with the reason,
where the binaries or that user are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnPostgres:
    """Owner of one ``postgres`` server process tree in a temporary directory."""

    def __init__(self, listen: tuple[str, ...] = ("127.0.0.1",), clients: str = "") -> None:
        """``listen``: addresses to listen on; ``clients``: a network (CIDR) whose hosts
        may connect too (trust, as the machine's own server)."""
        binaries = _binaries()
        if binaries is None:
            pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        if shutil.which("runuser") is None:
            pytest.skip("runuser is missing: PostgreSQL cannot run as root")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no 'postgres' user to run a PostgreSQL server as")
        self.bin = binaries
        # Not under pytest's tmp_path: its directories are private to root, and the
        # server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="director-pg-"))
        os.chmod(self.root, 0o755)
        self.dir = self.root / "pgdata"
        self.socket_dir = self.root / "pgsocket"
        self.port = _free_port()
        self.frozen = False
        self.listen = listen
        self.clients = clients

    def _as_postgres(self, *command: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> OwnPostgres:
        for path in (self.dir, self.socket_dir):
            path.mkdir(parents=True)
            shutil.chown(path, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres"
        )
        if self.clients:
            with (self.dir / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.clients} trust\n")
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir),
            "-w",
            "-l",
            str(self.dir / "server.log"),
            "-o",
            f"-p {self.port} -c listen_addresses={','.join(self.listen)} "
            f"-k {self.socket_dir} -c fsync=off",
            "start",
        )
        self._as_postgres(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "director"
        )
        return self

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/director"

    def _pids(self) -> list[int]:
        """The postmaster and every backend it forked."""
        postmaster = int((self.dir / "postmaster.pid").read_text().split()[0])
        children = []
        for status in glob.glob("/proc/[0-9]*/status"):
            try:
                fields = dict(
                    line.split(":\t", 1)
                    for line in Path(status).read_text().splitlines()
                    if ":\t" in line
                )
            except OSError:
                continue
            if int(fields.get("PPid", "0").strip() or 0) == postmaster:
                children.append(int(status.split("/")[2]))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP every process of the server: not down, hung (connections open, no answer)."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.frozen:
            self.thaw()
        try:
            self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop", timeout=30
            )
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
