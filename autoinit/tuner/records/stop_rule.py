"""When a trial process takes another trial, waits, or stops — and how it reports why it stopped.

Pure: no Optuna, no processes; :mod:`autoinit.tuner.execution.loop` feeds it counts read from the study.
"""

from __future__ import annotations

import enum


class Action(enum.Enum):
    """What a trial process does next."""

    RUN = "run"  # take a trial: a queued one (anchor, retry) first, else a new one from the sampler
    WAIT = "wait"  # the trials still needed run elsewhere; watch for one of them dying
    STOP = "stop"  # the study holds its good trials


def next_action(good: int, running: int, waiting: int, n_trials: int) -> Action:
    """The stop rule, shared by every process of a study (in-process loop, launcher workers, machines on
    one RDB storage).

    ``good``: complete or pruned trials; ``running``: trials in progress anywhere (a dead process's trial
    counts until it is failed); ``waiting``: queued trials (anchors not yet run, retries of failed trials).

    Queued trials are a to-do list, not progress: a process never starts one when ``good + running``
    already reaches ``n_trials`` — that would overshoot. A dead trial's retry still runs: while waiting,
    the loop fails dead trials (stale RDB heartbeats; a launcher fails its dead workers' trials itself),
    which lowers ``running`` and makes the retry the next trial taken.
    """
    del waiting  # deliberately not a reason to run: see above
    if good >= n_trials:
        return Action.STOP
    if good + running < n_trials:
        return Action.RUN
    return Action.WAIT


class StopReason(str, enum.Enum):
    """Why a trial process stopped taking trials."""

    DONE = "done"  # the study holds n_trials good trials
    TIMEOUT = "timeout"  # tune.timeout passed
    FAILING = "failing"  # its first trials all failed: the config or the model is broken, not the init
    EXIT = "exit"  # asked to make way for a fresh process (memory)

    def __str__(self) -> str:
        return self.value


class WorkerExit(enum.IntEnum):
    """Exit codes of a worker process (``python -m autoinit.tuner.execution.worker``)."""

    DONE = 0
    FAILING = 3
    REPLACE_ME = 75  # EX_TEMPFAIL: memory kept growing, or it ran out of memory

    @classmethod
    def for_reason(cls, reason: StopReason) -> WorkerExit:
        return {StopReason.EXIT: cls.REPLACE_ME, StopReason.FAILING: cls.FAILING}.get(reason, cls.DONE)
