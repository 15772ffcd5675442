"""Layer 3, where a study lives: the Optuna storage (journal file or RDB), the journal's lock, who owns a
trial (pid, start time, lease)."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "JOURNAL_NAME": "backend",
    "STORAGE_ENV": "backend",
    "describe": "backend",
    "fail_stale_trials": "backend",
    "fail_trial": "backend",
    "has_heartbeat": "backend",
    "inherited_overrides": "backend",
    "is_rdb": "backend",
    "mask_url": "backend",
    "open_storage": "backend",
    "outage_is_one_line": "backend",
    "queued_params": "backend",
    "record_heartbeat": "backend",
    "record_on": "backend",
    "reopen_trial": "backend",
    "retry_of": "backend",
    "storage_target": "backend",
    "subprocess_args": "backend",
    "trial_id": "backend",
    "unreachable": "backend",
    "Journal": "journal",
    "LOCK_SUFFIX": "journal",
    "TORN_SUFFIX": "journal",
    "LEASE_INTERVALS": "owner",
    "Lease": "owner",
    "keep_alive": "owner",
    "lost_why": "owner",
    "process_exists": "owner",
    "process_start": "owner",
    "worker_id": "owner",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
