"""Layer 0, utilities with no tuner dependency: noise silencing, a file lock, CPU thread counts."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "FileLock": "filelock",
    "quiet_lightning": "noise",
    "quiet_optuna_experimental": "noise",
    "quiet_population_ask": "noise",
    "ONE_THREAD_BELOW_FLOPS": "threads",
    "one_thread_for": "threads",
    "small_step_threads": "threads",
    "step_flops": "threads",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
