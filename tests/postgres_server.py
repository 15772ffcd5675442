"""A real PostgreSQL server for the tests: initdb and pg_ctl in a temporary folder on a free port."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

PASSWORD = "s3cret-pw-Zq9"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        # PostgreSQL refuses to run as root: run it as the postgres user when we are root.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl)

    @property
    def url(self) -> str:
        return f"postgresql://autoinit:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD)
        if self.as_user:
            shutil.chown(self.base, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run(
            [*self.as_user, self.initdb, "-D", str(self.data), "-U", "autoinit", "--auth=md5", f"--pwfile={pwfile}"],
            check=True,
            capture_output=True,
        )
        self.restart()

    def restart(self) -> None:
        """Start the server again after :meth:`stop` (its data kept, on the same port)."""
        subprocess.run(
            [
                *self.as_user,
                self.pg_ctl,
                "-D",
                str(self.data),
                "-l",
                str(self.base / "log"),
                "-w",
                "-o",
                f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=50",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True
        )
