"""What the tuner records on a trial, and the vocabulary of its statuses.

A trial's record lives in Optuna's ``user_attrs``; :class:`TrialRecord` is the only code that knows the
attribute keys (the ``ATTR_*`` constants) and how values are encoded, so a misspelt field is a
``TypeError`` at once instead of a silently missing attribute.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# The user_attrs keys of a trial record (stable: they are what a study's storage holds).
ATTR_WORKER = "worker"
ATTR_WORKER_START = "worker_start"
ATTR_LEASE_UNTIL = "lease_until"
ATTR_ANCHOR = "anchor"
ATTR_RETRY_OF = "retry_of"
ATTR_FIXED_GAIN = "gain"
ATTR_STATUS = "status"
ATTR_PRESCREEN = "prescreen"
ATTR_ERROR = "error"
ATTR_CURVE = "curve"
ATTR_SECONDS = "seconds"
ATTR_STEPS_TRAINED = "steps_trained"
ATTR_SCORE_STD = "score_std"
ATTR_STALLED = "stalled"
ATTR_DUPLICATE_OF = "duplicate_of"
ATTR_FIDELITY = "fidelity"
ATTR_SCORE = "score"
ATTR_SEED_SCORES = "seed_scores"

# The study's own user_attrs.
STUDY_ATTR_CONFIG_SHA256 = "config_sha256"
STUDY_ATTR_SCHEMES = "schemes"
STUDY_ATTR_POINT_KEYS = "point_keys"  # the parameters a point is made of (a retry needs all of them)
STUDY_ATTR_ANCHORS = "anchors"  # the anchor points, set once they are queued: a resume never queues them again
STUDY_ATTR_CONFIG = "config"  # the measured config as {"dotted.key": value}, to name what changed on resume
# Parameters whose value the model's author chose (not PyTorch's default), counted when the study was made:
# 0 means the model's own init is PyTorch's default (the summary then names one baseline, not two).
STUDY_ATTR_OWN_INIT = "own_init_authored"
STUDY_ATTR_HALVING = "halving"  # the halving search's rounds as queued: {round: number of points}
# A proxy study's transfer check on a full model (:mod:`autoinit.tuner.report.transfer`), one per full config.
STUDY_ATTR_TRANSFER = "transfer"

GOOD_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class TrialStatus(str, enum.Enum):
    """How a trial ended (or that it has not), as the outputs show it; ordered best first."""

    COMPLETE = "complete"
    SCREENED = "screened"  # trained at a lower fidelity by the halving search (its score is that fidelity's)
    PRUNED = "pruned"
    PRESCREENED = "prescreened"
    DIVERGED = "diverged"
    FAILED = "failed"
    RUNNING = "running"
    WAITING = "waiting"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """Position in the ranking: complete trials first, then screened, pruned, prescreened, diverged."""
        return list(TrialStatus).index(self)

    @property
    def ranked(self) -> bool:
        """Whether the trial was measured (it has a place in the ranking)."""
        return self in (
            TrialStatus.COMPLETE,
            TrialStatus.SCREENED,
            TrialStatus.PRUNED,
            TrialStatus.PRESCREENED,
            TrialStatus.DIVERGED,
        )


# The statuses recorded as Optuna's PRUNED state (with a huge last value for diverged: TPE learns they are bad).
_PRUNED_AS = (TrialStatus.SCREENED, TrialStatus.PRUNED, TrialStatus.PRESCREENED, TrialStatus.DIVERGED)

_KEYS = {
    "worker": ATTR_WORKER,
    "worker_start": ATTR_WORKER_START,
    "lease_until": ATTR_LEASE_UNTIL,
    "anchor": ATTR_ANCHOR,
    "retry_of": ATTR_RETRY_OF,
    "fixed_gain": ATTR_FIXED_GAIN,
    "status": ATTR_STATUS,
    "prescreen": ATTR_PRESCREEN,
    "error": ATTR_ERROR,
    "curve": ATTR_CURVE,
    "seconds": ATTR_SECONDS,
    "steps_trained": ATTR_STEPS_TRAINED,
    "score_std": ATTR_SCORE_STD,
    "stalled": ATTR_STALLED,
    "duplicate_of": ATTR_DUPLICATE_OF,
    "fidelity": ATTR_FIDELITY,
    "score": ATTR_SCORE,
    "seed_scores": ATTR_SEED_SCORES,
}

# What a trial measured: copied from an earlier trial at the same point instead of measuring it again.
MEASURED_FIELDS = ("fixed_gain", "status", "curve", "steps_trained", "score_std", "stalled", "score", "seed_scores")


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """A trial as the tuner records it. Every field is optional: a trial gains them as it runs.

    Attributes:
        worker: ``host:pid`` of the process that ran it (a launcher fails the trials of a dead one).
        worker_start: when that process started (boot id and clock ticks), so a reused pid is not taken
            for the owner.
        lease_until: Unix time until which the owner vouches for the running trial (journal storage: the
            owner renews it; once it passes, a process on another host fails the trial and queues it again).
        anchor: an anchor point queued by the study (the model's own init, each scheme at its textbook gain).
        retry_of: the number of the failed trial whose parameters this one runs again.
        fixed_gain: the gain, when ``tune.gain`` is one number (then it is not an Optuna parameter).
        status: how the objective ended it (see :func:`trial_status` for the status the outputs show).
        prescreen: why the pre-screen kept it from training.
        error: ``Type: first line`` of the exception that failed it.
        curve: the seed-mean loss per step, downsampled.
        seconds: training time (0 for a point measured before).
        steps_trained: optimizer steps over all seeds.
        score_std: the score's std over seeds.
        stalled: complete, but the loss never left its start.
        duplicate_of: the earlier trial at the same point whose result it copies.
        fidelity: ``{"round", "steps", "seeds"}`` of a halving search's trial (None: the study's full steps ×
            seeds).
        score: the score at the trial's fidelity (a screening trial is PRUNED for Optuna, so has no value).
        seed_scores: the score of each seed.
    """

    worker: str | None = None
    worker_start: str | None = None
    lease_until: float | None = None
    anchor: bool = False
    retry_of: int | None = None
    fixed_gain: float | None = None
    status: TrialStatus | None = None
    prescreen: str = ""
    error: str = ""
    curve: list[float] = field(default_factory=list)
    seconds: float | None = None
    steps_trained: int | None = None
    score_std: float | None = None
    stalled: bool = False
    duplicate_of: int | None = None
    fidelity: dict[str, int] | None = None
    score: float | None = None
    seed_scores: list[float] | None = None

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """The record stored on ``trial``."""
        attrs = trial.user_attrs
        values: dict[str, Any] = {name: attrs[key] for name, key in _KEYS.items() if key in attrs}
        if values.get("status") is not None:
            values["status"] = TrialStatus(values["status"])
        return cls(**values)

    @classmethod
    def attrs(cls, **values: Any) -> dict[str, Any]:
        """``values`` (record fields) as the user_attrs that store them; a field that does not exist is a
        TypeError."""
        cls(**values)  # checks the names
        return {_KEYS[name]: _encode(value) for name, value in values.items()}

    @classmethod
    def write(cls, trial: optuna.Trial, **values: Any) -> None:
        """Set record fields on a trial this process runs."""
        for key, value in cls.attrs(**values).items():
            trial.set_user_attr(key, value)

    def measured(self) -> dict[str, Any]:
        """The fields that hold what the trial measured (to copy onto a trial at the same point)."""
        return {name: value for name in MEASURED_FIELDS if (value := getattr(self, name)) is not None}


def _encode(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def trial_status(trial: FrozenTrial) -> TrialStatus:
    """The status the outputs show: Optuna's state, refined by the recorded one for a pruned trial."""
    if trial.state == TrialState.COMPLETE:
        return TrialStatus.COMPLETE
    if trial.state == TrialState.PRUNED:
        recorded = TrialRecord.of(trial).status
        return recorded if recorded in _PRUNED_AS else TrialStatus.PRUNED
    if trial.state == TrialState.FAIL:
        return TrialStatus.FAILED
    if trial.state == TrialState.RUNNING:
        return TrialStatus.RUNNING
    return TrialStatus.WAITING


def transfer_attr(full_config_sha256: str) -> str:
    """The study attr holding the transfer check on the full model of this config hash."""
    return f"{STUDY_ATTR_TRANSFER}:{full_config_sha256[:16]}"


def own_init_is_default(study: optuna.Study) -> bool | None:
    """Whether the study's model has no init of its own (every parameter at PyTorch's default); None for a
    study made before this was recorded."""
    authored = study.user_attrs.get(STUDY_ATTR_OWN_INIT)
    return None if authored is None else authored == 0
