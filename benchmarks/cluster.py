"""A throwaway PostgreSQL cluster (initdb + pg_ctl, run as the postgres user): for the
churn benchmark, which needs production settings (autovacuum on) that the shared test
server does not have, and for the partition test, which needs a server on its own links.
Everything it makes is removed by `stop`."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def why_not() -> str | None:
    """Why a throwaway cluster cannot be started here (None: it can)."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server programs in {PG_BIN}"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "starting a cluster as the postgres user needs root and runuser"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres user"
    return None


class ThrowawayCluster:
    """A cluster of its own on a free port; `settings` are server options (``-c k=v``),
    `trust` extra client networks (CIDR) allowed in without a password."""

    def __init__(
        self,
        settings: Mapping[str, str] | None = None,
        *,
        addresses: tuple[str, ...] = (),
        trust: tuple[str, ...] = (),
    ) -> None:
        self._settings = dict(settings or {})
        self._addresses = ("127.0.0.1", *addresses)
        self._trust = trust
        self._base = Path(tempfile.mkdtemp(prefix="taskstore-pg-"))
        self.port = _free_port()

    def _as_postgres(self, *argv: str) -> None:
        run = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True)
        if run.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {run.stderr.decode().strip()}")

    def start(self) -> ThrowawayCluster:
        user = pwd.getpwnam("postgres")
        os.chown(self._base, user.pw_uid, user.pw_gid)
        data = self._base / "data"
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
        with open(data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in self._trust)
        options = [f"-p {self.port}", f"-k {self._base}"]
        options.append("-c listen_addresses=" + ",".join(self._addresses))
        options += [f"-c {key}={value}" for key, value in self._settings.items()]
        log = str(self._base / "server.log")
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            " ".join(options),
            "-l",
            log,
            "-w",
            "start",
        )
        return self

    def url(self, host: str = "127.0.0.1", database: str = "postgres") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def stop(self) -> None:
        pg_ctl, data = str(PG_BIN / "pg_ctl"), str(self._base / "data")
        stop = ["runuser", "-u", "postgres", "--", pg_ctl, "-D", data, "-m", "immediate", "stop"]
        subprocess.run(stop, capture_output=True, check=False)
        shutil.rmtree(self._base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
