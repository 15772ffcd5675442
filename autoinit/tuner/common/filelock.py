"""An exclusive lock on a file, across processes and the threads of one: ``flock``, which the kernel drops
when its holder dies, so a lock left by a killed process is never stale (no grace period to wait out)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileLock:
    """``acquire`` blocks until this process holds the lock on ``path`` (created if missing); ``release``
    is a no-op when it is not held. One instance may be shared by threads: they take turns."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._threads = threading.Lock()  # flock is per open file: this instance's threads share one

    def acquire(self) -> None:
        self._threads.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._threads.release()
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._threads.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
