"""The journal file a study lives in by default: Optuna's ``JournalFileBackend`` with two changes.

- Its lock is a :class:`~autoinit.tuner.common.filelock.FileLock`: a process killed while it writes leaves no
  lock behind (Optuna's symlink lock is only broken after 30 s).
- It never keeps a torn line. Optuna skips a last line without its newline (a crash or a full disk
  mid-write) but appends the next record to it, and from then on the journal no longer parses. Here a
  write that fails is cut back to where it began, and a torn tail found on opening or before a write is
  cut off, the file as it was kept beside it, and said in one line.

And it syncs to disk (``fsync``) only a write that finishes a trial or changes a study. A population study
writes ~2,100 records, ~95% of them a running trial's (its creation, claim, parameters, reports,
attributes; docs/benchmarks.md), each ``fsync`` some milliseconds on a busy disk. A sync covers every
earlier write of the file, so a power loss can only lose records written after the last finished trial:
trials still waiting or running, which a resume queues or runs again anyway (a round's queued trials are
synced by the study record that follows them); a killed process loses nothing (its writes are in the
kernel's cache, which every process reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from autoinit import _compat
from autoinit.tuner.common.filelock import FileLock

LOCK_SUFFIX = ".flock"
TORN_SUFFIX = ".torn"
_CHUNK = 1 << 16
_DETAIL_OPS = _compat.journal_detail_ops()
_STATE_OPS = _compat.journal_state_ops()


def _say(line: str) -> None:
    print(f"autoinit: {line}", file=sys.stderr, flush=True)


class Journal(JournalFileBackend):
    """A journal file (``path``) that is repaired on opening; ``note`` says a repair in one line."""

    def __init__(self, path: str, note: Callable[[str], None] = _say) -> None:
        self.flock = FileLock(path + LOCK_SUFFIX)
        # Optuna only calls the lock's acquire() and release() (its base class is not exported)
        super().__init__(path, lock_obj=self.flock)  # type: ignore[arg-type]
        self.note = note
        with self.flock.held():
            self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        """Under the lock (no write is under way): cut a last line that has no newline."""
        with open(self._file_path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            end = _last_newline_end(f, size)
            if end == size:
                return
            backup = self._file_path + TORN_SUFFIX
            shutil.copyfile(self._file_path, backup)
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        self.note(
            f"{self._file_path} ended in a torn record ({size - end} bytes, from a crash or a full disk "
            f"mid-write): cut it off, every complete record is kept (the file as it was: {backup})"
        )

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
        with self.flock.held():
            self._cut_torn_tail()  # a writer without this class (or a crash mid-write) may have left one
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)  # unbuffered: nothing written later
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    if needs_sync(logs):
                        os.fsync(fd)
                except BaseException:
                    # Cut back what did get written (a full disk, a file-size limit, an interrupt), so the
                    # next record starts on a line of its own.
                    _truncate(fd, start)
                    raise
            finally:
                os.close(fd)


def needs_sync(logs: list[dict[str, Any]]) -> bool:
    """Whether a write of these records is synced to disk: when one finishes a trial or is a study's."""
    return any(_finishes_or_is_a_study_record(log) for log in logs)


def _finishes_or_is_a_study_record(log: dict[str, Any]) -> bool:
    op = log.get("op_code")
    if op in _STATE_OPS:
        return TrialState(log.get("state", TrialState.RUNNING)).is_finished()
    return op not in _DETAIL_OPS


def _last_newline_end(f: Any, size: int) -> int:
    """The offset just past the file's last newline (0 when it has none; ``size`` when it ends in one)."""
    pos = size
    while pos > 0:
        step = min(_CHUNK, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return pos - step + at + 1
        pos -= step
    return 0


def _truncate(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):  # then the next write (or open) cuts the torn tail off instead
        os.ftruncate(fd, size)
