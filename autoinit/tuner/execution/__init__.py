"""Layer 8, running the trials: the in-process loop, the launcher of worker processes, the worker."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "POLL_SECONDS": "launcher",
    "STOP_SECONDS": "launcher",
    "check_worker_count": "launcher",
    "device_env": "launcher",
    "launch": "launcher",
    "worker_command": "launcher",
    "CLAIM_LOCK_NAME": "loop",
    "ClaimLock": "loop",
    "FAILS_BEFORE_GIVING_UP": "loop",
    "WAIT_SECONDS": "loop",
    "claim_lock": "loop",
    "optimize": "loop",
    "MemoryWatch": "worker",
    "main": "worker",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
