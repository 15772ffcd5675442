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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import TracebackType

import optuna

from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.storage import backend as storage

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


@contextmanager
def keep_alive(
    study: optuna.Study, interval: float, *, optuna_beats: bool = False
) -> Iterator[Callable[[optuna.Trial], None]]:
    """The one keep-alive of running trials: yields ``claim(trial)``, which records this process as the
    trial's owner and vouches for it at once; while entered, one :class:`Lease` thread vouches for every
    claimed trial every ``interval`` seconds — by an RDB heartbeat where the storage has one (its first beat
    before the owner is written, so a process killed while it claims leaves trials that go stale), else by
    a lease expiring ``LEASE_INTERVALS`` intervals later. ``optuna_beats``: ``Study.optimize`` runs the
    trial and beats for it itself (then on a heartbeat storage only the owner is recorded here)."""
    heartbeat = storage.has_heartbeat(study)
    me, my_start = worker_id(), process_start()
    claimed: list[optuna.trial.FrozenTrial] = []
    vouching = not (heartbeat and optuna_beats)

    def vouch(frozen: optuna.trial.FrozenTrial, until: float) -> None:
        if heartbeat:
            storage.record_heartbeat(study, frozen)
        else:
            storage.record_on(study, frozen, lease_until=until)

    def claim(trial: optuna.Trial) -> None:
        frozen = trial.study.get_trials(deepcopy=False)[trial.number]
        if heartbeat and vouching:
            vouch(frozen, 0.0)
        TrialRecord.write(trial, worker=me, worker_start=my_start)
        if not heartbeat:
            vouch(frozen, time.time() + LEASE_INTERVALS * interval)
        if vouching:
            claimed.append(frozen)

    def renew(until: float) -> None:
        for frozen in list(claimed):
            try:
                vouch(frozen, until)
            except Exception:  # finished (told), or failed by another process: nothing left to vouch for
                claimed.remove(frozen)

    if not vouching:
        yield claim
        return
    with Lease(renew, interval):
        yield claim
