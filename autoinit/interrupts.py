"""How a run is stopped from outside: SIGTERM (``kill``, ``timeout``, SLURM) is Ctrl-C, and a worker
process never outlives its launcher."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from types import FrameType

# The exit status of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED = 130
# prctl(2): deliver this signal to the calling process when its parent dies
_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 1.0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def sigterm_is_ctrl_c() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does: the run stops the
    same clean way (finished trials kept, the running one failed and queued again, exit 130)."""
    signal.signal(signal.SIGTERM, _interrupt)


def die_with(parent: int) -> None:
    """Get SIGTERM (Ctrl-C, with :func:`sigterm_is_ctrl_c`) as soon as process ``parent`` is gone, however
    it ended (``kill -9`` included): Linux's parent-death signal, else a thread watching the parent pid."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if not armed:
        threading.Thread(target=_watch, args=(parent,), name="autoinit-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        threading.Event().wait(_WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
