"""Layer 5, a study's lifecycle: create or load it with its search, resume it, fail and retry lost trials."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "create_study": "lifecycle",
    "fail_and_retry": "lifecycle",
    "fail_lost_trials": "lifecycle",
    "fail_trials_of": "lifecycle",
    "fail_trials_of_dead_local_workers": "lifecycle",
    "load_study": "lifecycle",
    "queue_retry": "lifecycle",
    "retry_interrupted": "lifecycle",
}

# autoinit 0.1's flat ``tuner/study.py`` also held the trial counts, which are records now
_MOVED = {name: "autoinit.tuner.records.counts" for name in ("Progress", "progress", "good_trials")}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _MOVED)
