"""A throwaway PostgreSQL server for the history's tests and benchmark (a plain module).

Debian's `postgresql` package (`apt-get install postgresql`, .ci/run): `initdb` makes a
cluster in a temporary directory and `pg_ctl` starts it on a free loopback port, trusting
local connections, with fsync off (nothing in it outlives the tests). PostgreSQL refuses to
run as root: as root the cluster belongs to, and the server runs as, the user `nobody`
(`runuser`). `PostgresProcess.find()` is None where no PostgreSQL is installed.

    server = PostgresProcess.find(); server.start(); server.url  # postgresql://…/postgres
    server.create_database("t1")  # a fresh database's URL
    server.stop()
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import free_port

_USER = "nobody"


class PostgresProcess:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self.directory: Path | None = None

    @classmethod
    def find(cls) -> PostgresProcess | None:
        """Debian's newest installed PostgreSQL (or CPA_TEST_PG_BINDIR), else None."""
        given = os.environ.get("CPA_TEST_PG_BINDIR")
        candidates = [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        for bindir in reversed(candidates):
            if (Path(bindir) / "initdb").exists():
                return cls(Path(bindir))
        found = shutil.which("initdb")
        return cls(Path(found).parent) if found else None

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", _USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="cpa-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, _USER)
        data = self.directory / "data"
        self._run(
            "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        self.port = free_port()
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.directory / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        if self.directory is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"
