"""A throwaway PostgreSQL server for the tests and benchmarks/scaling.py: initdb in a temporary folder, a Unix
socket there and no TCP address at all, password (SCRAM) authentication, stopped and deleted at the end."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def postgres_binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else Debian's newest /usr/lib/postgresql/VERSION/bin (off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    return versions[-1] if versions else None


@dataclass
class Postgres:
    """A running server that listens on a Unix socket in `socket_dir` only (no TCP address at all)."""
    socket_dir: Path
    user: str
    password: str

    def url(self, database: str) -> str:
        """tune.storage for `database`: user and host, no password (it comes from PGPASSWORD)."""
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        import psycopg
        with psycopg.connect(host=str(self.socket_dir), user=self.user, password=self.password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def server_programs() -> tuple[str, str] | None:
    """initdb and pg_ctl, or None where PostgreSQL's server is not installed (`make postgres`)."""
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    return (initdb, pg_ctl) if initdb and pg_ctl else None


@contextmanager
def throwaway_server():
    """A running Postgres. PostgreSQL refuses to run as root: as root, the Debian package's `postgres` user
    runs it and owns the folder."""
    initdb, pg_ctl = server_programs()
    folder = Path(tempfile.mkdtemp(prefix="petseg-pg-"))  # under /tmp: pytest's own folders are root's alone
    as_server = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_server = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_urlsafe(18)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if as_server:
        shutil.chown(pwfile, "postgres", "postgres")
    data = folder / "data"

    def server(*args: str) -> None:
        result = subprocess.run([*as_server, *args], cwd=folder, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}")

    try:
        server(initdb, "-D", str(data), "-U", "petseg", f"--pwfile={pwfile}", "--auth=scram-sha-256",
               "--no-locale", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        # listen_addresses '': no TCP socket at all; fsync off: a throwaway server, nothing to keep after a crash
        server(pg_ctl, "start", "-w", "-D", str(data), "-l", str(folder / "server.log"),
               "-o", f"-c listen_addresses='' -k {folder} -c fsync=off -c max_connections=50")
        try:
            yield Postgres(folder, "petseg", password)
        finally:
            server(pg_ctl, "stop", "-w", "-m", "fast", "-D", str(data))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
