"""The ``tune`` section of a tune config: its keys, types and defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Union

from autoinit.errors import AutoInitError
from autoinit.schemes.registry import get_scheme, list_schemes

# Schemes "all" stands for, in the order anchors are tried (default first).
ALL_SCHEMES = (
    "default",
    "auto",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier_uniform",
    "xavier_normal",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "delta_orthogonal",
    "looks_linear",
    "lsuv",
    "yam_chow",
)


@dataclass
class Range:
    """A continuous search range."""

    low: float = 0.5
    high: float = 2.0
    log: bool = True


@dataclass
class TuneSettings:
    """What the tuner searches and how it scores a trial.

    Args:
        schemes: scheme names, or "all" (every built-in; those that cannot apply to the model are skipped).
        gain: a range {low, high, log}, a list of values, or one fixed number.
        steps: training steps per trial and seed.
        seeds: init seeds per trial (the data order is the same for all).
        objective: "auc" (mean training loss over the steps), "final" (mean of the last 10%), "steps_to"
            (steps until the loss falls below `threshold`).
        threshold: the loss level for objective "steps_to".
        metric: a name logged with self.log(..., on_step=True); default: the loss training_step returns.
        n_trials: good (complete or pruned) trials the study should hold.
        timeout: seconds after which no new trial starts.
        sampler: "tpe", "grid", "random" or "gp".
        pruner: "median", "hyperband" or "none".
        report_every: optimizer steps between intermediate values sent to the pruner.
        storage: an Optuna RDB URL (postgresql://…, sqlite:///…) or a journal file path; default: a journal
            file in the output folder.
        study_name: default: the config file's name.
        output: default: autoinit-out/<study_name>.
        lr_scale: a range over which the optimizer's learning rate is scaled per trial (off by default).
        data_seed: seed of the data order and of everything but the init.
        sampler_seed: seed of the sampler.
        prescreen: score every scheme/gain from one forward and backward pass before training it, and keep
            those whose signal vanishes or explodes by four orders of magnitude over depth out of the
            training budget (PyTorch's default is always trained).
        workers: trial processes on this machine.
        devices_per_trial: GPUs per worker process.
        max_worker_growth_mb: a worker whose memory grew more than this since its first trial is replaced
            by a fresh process (0: a fresh process after every trial, for leaky user code).
        heartbeat_interval: seconds between heartbeats of a running trial (RDB storages); a trial silent
            for 3 intervals is failed and retried.
    """

    schemes: Union[list[str], str] = "all"  # noqa: UP007 (jsonargparse reads the typing form)
    gain: Union[Range, list[float], float] = field(default_factory=Range)  # noqa: UP007
    steps: int = 100
    seeds: int = 3
    objective: Literal["auc", "final", "steps_to"] = "auc"
    threshold: float | None = None
    metric: str | None = None
    n_trials: int = 20
    timeout: float | None = None
    sampler: Literal["tpe", "grid", "random", "gp"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    report_every: int = 10
    storage: str | None = None
    study_name: str | None = None
    output: str | None = None
    lr_scale: Range | None = None
    data_seed: int = 0
    sampler_seed: int = 0
    workers: int = 1
    devices_per_trial: int = 1
    prescreen: bool = True
    max_worker_growth_mb: int = 2048
    heartbeat_interval: int = 10

    def validate(self) -> None:
        """One-line errors for values the types allow but the tuner cannot use."""

        def positive(key: str, value: float) -> None:
            if value <= 0:
                raise AutoInitError(f"tune.{key} must be > 0, got {value}")

        for key in ("steps", "seeds", "n_trials", "report_every", "workers", "devices_per_trial", "heartbeat_interval"):
            positive(key, getattr(self, key))
        if self.max_worker_growth_mb < 0:
            raise AutoInitError(f"tune.max_worker_growth_mb must be >= 0, got {self.max_worker_growth_mb}")
        if self.timeout is not None:
            positive("timeout", self.timeout)
        if self.objective == "steps_to" and self.threshold is None:
            raise AutoInitError("tune.objective 'steps_to' needs tune.threshold: the loss level to reach")
        if isinstance(self.schemes, str) and self.schemes != "all":
            raise AutoInitError(f"tune.schemes must be a list of scheme names or 'all', got '{self.schemes}'")
        for name in self.scheme_names():
            get_scheme(name)  # unknown scheme: one-line error naming the closest
        for key, rng in (("gain", self.gain), ("lr_scale", self.lr_scale)):
            if isinstance(rng, Range) and (not (0 < rng.low < rng.high) or not math.isfinite(rng.high)):
                raise AutoInitError(f"tune.{key} range needs 0 < low < high, got low={rng.low}, high={rng.high}")
        gains = self.gain if isinstance(self.gain, list) else [self.gain] if not isinstance(self.gain, Range) else []
        if isinstance(self.gain, list) and not gains:
            raise AutoInitError("tune.gain list is empty: give at least one value")
        for g in gains:
            if not (isinstance(g, (int, float)) and math.isfinite(g) and g > 0):
                raise AutoInitError(f"tune.gain values must be positive numbers, got {g!r}")

    def scheme_names(self) -> list[str]:
        if self.schemes == "all":
            return [s for s in ALL_SCHEMES if s in list_schemes()]
        names = list(dict.fromkeys(self.schemes))
        return names if "default" in names else ["default", *names]  # always measured against default

    def grid_gains(self) -> list[float]:
        """The gains a grid search walks: the list, the fixed value, or 5 points over the range."""
        if isinstance(self.gain, list):
            return [float(g) for g in self.gain]
        if not isinstance(self.gain, Range):
            return [float(self.gain)]
        lo, hi = self.gain.low, self.gain.high
        if self.gain.log:
            return [round(lo * (hi / lo) ** (i / 4), 4) for i in range(5)]
        return [round(lo + (hi - lo) * i / 4, 4) for i in range(5)]
