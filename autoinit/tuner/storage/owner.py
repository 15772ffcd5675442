"""Who runs a trial, and whether they still do.

A RUNNING trial records its owner: host, pid and the process's start time (a pid is reused once its
process is gone, the start time is not). On the owner's own host that settles it at once; from another
host, only a lease the owner keeps renewing (journal storage) or the RDB heartbeat can tell.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import TracebackType

from autoinit.tuner.records.record import TrialRecord

# A lease lasts this many renewal intervals: a loaded machine may miss one renewal, not three.
LEASE_INTERVALS = 3


def worker_id(pid: int | None = None) -> str:
    """``host:pid``: who runs a trial (recorded on it, with :func:`process_start`)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return []  # no such process
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_start(pid: int | None = None) -> str | None:
    """When process ``pid`` (default: this one) started, as ``boot-id:clock-ticks``; None where there is
    no /proc to read it from (then only the pid is checked)."""
    fields = _stat(os.getpid() if pid is None else pid)
    if not fields:
        return None
    return f"{_boot_id()}:{fields[19]}"  # field 22 of stat: starttime


def process_exists(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` runs, and is the one that started at ``start`` (when known)."""
    fields = _stat(pid)
    if fields is None:  # no /proc: ask the kernel, and trust the pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if not fields or fields[0] in ("Z", "X"):  # gone, or a zombie its parent has not reaped yet
        return False
    return start is None or f"{_boot_id()}:{fields[19]}" == start


def lost_why(record: TrialRecord, *, now: float | None = None) -> str | None:
    """Why the owner of a RUNNING trial is known to be gone (the trial will never finish), else None."""
    if record.worker is None:
        return None
    host, _, pid = record.worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if process_exists(int(pid), record.worker_start):
            return None
        return f"its process {record.worker} is gone: it died (or was killed) before finishing the trial"
    if record.lease_until is not None and (time.time() if now is None else now) > record.lease_until:
        return f"its process {record.worker} stopped renewing its lease (dead, or cut off from the storage)"
    return None


class Lease:
    """While entered, a daemon thread renews the running trial's lease every ``interval`` seconds; it
    expires ``LEASE_INTERVALS`` intervals after the last renewal.

    ``write(until)`` stores the new expiry; the first one is written before ``__enter__`` returns. A
    failed renewal (the trial was failed by another process) ends the thread, not the trial.
    """

    def __init__(self, write: Callable[[float], None], interval: float) -> None:
        self.write, self.interval = write, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="autoinit-lease", daemon=True)

    def _until(self) -> float:
        return time.time() + LEASE_INTERVALS * self.interval

    def _renew(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write(self._until())
            except Exception:
                return

    def __enter__(self) -> Lease:
        self.write(self._until())
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
