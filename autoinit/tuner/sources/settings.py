"""The ``tune`` section of a tune config: its keys, types, defaults, and the rules a valid one obeys.

A :class:`TuneSettings` cannot hold an invalid value: it checks itself on construction, and
``dataclasses.replace`` constructs (and so checks) a new one. Which keys may change when a study is resumed
is marked on the field itself (``metadata={"resumable": True}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Union

from autoinit.errors import AutoInitError
from autoinit.schemes.registry import builtin_scheme_names, get_scheme

# The model's own init: the baseline of every study — first in it, never pruned, and what ``improvement``,
# ``significant`` and the verdict are measured against (a user of a model library already has it; PyTorch's
# ``default`` is a candidate like any other).
BASELINE_SCHEME = "as_built"

# The halving search's budget when none is given: a quarter of the grid's member-steps (raised for a small
# study whose round 0 and two fully trained points would not fit).
DEFAULT_BUDGET = 0.25

# Gains on the halving search's ladder over a range (the issue asks for at least 7 over 0.5–2).
LADDER_POINTS = 7

_POSITIVE_KEYS = ("steps", "seeds", "n_trials", "report_every", "workers", "devices_per_trial", "heartbeat_interval")


def _resumable(default: Any) -> Any:
    """A key that does not change what a trial measures: a study may be resumed with another value."""
    return field(default=default, metadata={"resumable": True})


@dataclass(frozen=True)
class Range:
    """A continuous search range."""

    low: float = 0.5
    high: float = 2.0
    log: bool = True

    def clamp(self, value: float) -> float:
        """``value``, or the end of the range nearest to it."""
        return min(max(value, self.low), self.high)


@dataclass(frozen=True)
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
        batch_to_input: the dotted import path of a function from a training batch to the model's input
            (``mypkg.data.to_input``), for the applicability check, the pre-screen and each trial's
            ``AutoInit``; default: a tensor batch, a tuple's first element, a dict's entries forward takes.
        n_trials: good (complete or pruned) trials the study should hold.
        timeout: seconds after which no new trial starts.
        search: "halving" (the default: every scheme on a gain ladder screened briefly, the best kept and
            trained longer over more seeds, then their gains refined, within ``budget``), or an Optuna
            sampler over ``n_trials`` trials: "tpe", "gp", "random", "grid".
        budget: the halving search's training budget, as a share of the full grid's member-steps (grid:
            schemes × 5 gains × seeds × steps); the study stops when it is spent. Default: 0.25, or the
            least that pays for round 0 and two fully trained points when a small study needs more.
        pruner: "median", "hyperband" or "none" (sampled searches; halving prunes by its rounds).
        report_every: optimizer steps between intermediate values sent to the pruner.
        storage: an Optuna RDB URL (postgresql://…, sqlite:///…) or a journal file path; default: a journal
            file in the output folder.
        study_name: default: the config file's name.
        output: default: autoinit-out/<study_name>.
        lr_scale: a range over which the optimizer's learning rate is scaled per trial (off by default).
        data_seed: seed of the data order and of everything but the init.
        sampler_seed: seed of the sampler (and of the halving search's tie-breaks).
        workers: trial processes on this machine (at most one per GPU group, or per CPU core).
        oversubscribe: allow more workers than this machine has CPU cores (``--force``).
        devices_per_trial: GPUs per worker process.
        prescreen: score every scheme/gain from one forward and backward pass before training it, and keep
            those whose signal vanishes or explodes by four orders of magnitude over depth out of the
            training budget (the model's own init, the baseline, is always trained).
        max_worker_growth_mb: a worker whose memory grew more than this since its first trial is replaced
            by a fresh process (0: a fresh process after every trial, for leaky user code).
        heartbeat_interval: seconds between heartbeats of a running trial (RDB storages) or renewals of its
            lease (journal file); a trial silent for 3 intervals is failed and retried.
        log_trials: log each trial's loss curve (and its scheme, gain, status, score) to the trainer's
            logger, one run per trial, so TensorBoard shows them beside the fits.
        population: "auto" (train many trials at once as one stacked model where the config allows it, else
            sequential trials with a one-line reason; the default), "off" (sequential trials), or the
            most members (trials × seeds) at once.
        population_memory_fraction: the share of free memory (GPU, or RAM on CPU) a population may use.
        proxy: config overrides that make a smaller copy of the model to tune on, as dotted keys into the
            config (``{model.init_args.width: 64, model.init_args.depth: 6}``; a nested mapping is read as
            the same keys); the study runs on the proxy (its own study, ``<study_name>-proxy``, in
            ``<output>-proxy``), then a short check on the full model says whether its pick transferred
            (:mod:`autoinit.tuner.report.transfer`). Each key must be an argument of the model or the data.
    """

    schemes: Union[list[str], str] = "all"  # noqa: UP007 (jsonargparse reads the typing form)
    gain: Union[Range, list[float], float] = field(default_factory=Range)  # noqa: UP007
    steps: int = 100
    seeds: int = 3
    objective: Literal["auc", "final", "steps_to"] = "auc"
    threshold: float | None = None
    metric: str | None = None
    batch_to_input: str | None = None
    n_trials: int = _resumable(20)
    timeout: float | None = _resumable(None)
    search: Literal["halving", "tpe", "grid", "random", "gp"] = "halving"
    budget: float | None = _resumable(None)
    pruner: Literal["median", "hyperband", "none"] = "median"
    report_every: int = 10
    storage: str | None = _resumable(None)
    study_name: str | None = _resumable(None)
    output: str | None = _resumable(None)
    lr_scale: Range | None = None
    data_seed: int = 0
    sampler_seed: int = _resumable(0)
    workers: int = _resumable(1)
    oversubscribe: bool = _resumable(False)
    devices_per_trial: int = _resumable(1)
    prescreen: bool = True
    max_worker_growth_mb: int = _resumable(2048)
    heartbeat_interval: int = _resumable(10)
    log_trials: bool = _resumable(False)
    population: Union[Literal["auto", "off"], int] = _resumable("auto")  # noqa: UP007
    population_memory_fraction: float = _resumable(0.5)
    proxy: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """One-line errors for values the types allow but the tuner cannot use."""
        if self.proxy is not None:
            object.__setattr__(self, "proxy", proxy_keys(self.proxy))
        for key in _POSITIVE_KEYS:
            _positive(key, getattr(self, key))
        if self.max_worker_growth_mb < 0:
            raise AutoInitError(f"tune.max_worker_growth_mb must be >= 0, got {self.max_worker_growth_mb}")
        if self.timeout is not None:
            _positive("timeout", self.timeout)
        if self.budget is not None and not (
            isinstance(self.budget, (int, float)) and math.isfinite(self.budget) and self.budget > 0
        ):
            raise AutoInitError(
                "tune.budget must be a positive share of the grid's member-steps (0.25: a quarter), "
                f"got {self.budget!r}"
            )
        if isinstance(self.population, bool) or (isinstance(self.population, int) and self.population < 1):
            raise AutoInitError(
                f"tune.population must be 'auto', 'off' or a number of members >= 1, got {self.population!r}"
            )
        if not 0 < self.population_memory_fraction <= 1:
            raise AutoInitError(
                f"tune.population_memory_fraction must be in (0, 1], got {self.population_memory_fraction}"
            )
        if self.study_name is not None and (
            not self.study_name.strip() or self.study_name in (".", "..") or any(c in self.study_name for c in "/\\")
        ):
            raise AutoInitError(
                f"tune.study_name must be a plain name (no '/', '\\', '.' or '..'; it names the output folder), "
                f"got {self.study_name!r}: use tune.output to choose where the outputs go"
            )
        for key in ("data_seed", "sampler_seed"):
            _seed(key, getattr(self, key))
        if self.objective == "steps_to" and self.threshold is None:
            raise AutoInitError("tune.objective 'steps_to' needs tune.threshold: the loss level to reach")
        if isinstance(self.schemes, list) and not self.schemes:
            raise AutoInitError("tune.schemes is empty: name the schemes to compare with PyTorch's default, or 'all'")
        if isinstance(self.schemes, str) and self.schemes != "all":
            raise AutoInitError(f"tune.schemes must be a list of scheme names or 'all', got '{self.schemes}'")
        for name in self.scheme_names():
            get_scheme(name)  # unknown scheme: one-line error naming the closest
        for key, rng in (("gain", self.gain), ("lr_scale", self.lr_scale)):
            if isinstance(rng, Range) and (not (0 < rng.low < rng.high) or not math.isfinite(rng.high)):
                raise AutoInitError(f"tune.{key} range needs 0 < low < high, got low={rng.low}, high={rng.high}")
        if isinstance(self.gain, Range) and self.gain.high > MAX_GAIN:
            raise AutoInitError(f"tune.gain range's high must be <= {MAX_GAIN:g}, got {self.gain.high:g}")
        if isinstance(self.gain, list) and not self.gain:
            raise AutoInitError("tune.gain list is empty: give at least one value")
        gains = self.gain if isinstance(self.gain, list) else [] if isinstance(self.gain, Range) else [self.gain]
        for g in gains:
            if not (isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) and 0 < g <= MAX_GAIN):
                raise AutoInitError(f"tune.gain values must be positive numbers <= {MAX_GAIN:g}, got {g!r}")

    @classmethod
    def resumable_keys(cls) -> tuple[str, ...]:
        """The keys that may change when a study is resumed (they do not change what a trial measures)."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("resumable"))

    def scheme_names(self) -> list[str]:
        """The schemes to tune, the baseline (the model's own init) first: everything is measured against it."""
        names = builtin_scheme_names() if self.schemes == "all" else list(dict.fromkeys(self.schemes))
        return [BASELINE_SCHEME, *(n for n in names if n != BASELINE_SCHEME)]

    @property
    def gain_is_searched(self) -> bool:
        """False when ``gain`` is one fixed number (then it is recorded, not suggested)."""
        return isinstance(self.gain, (Range, list))

    def anchor_gain(self) -> float:
        """The textbook gain 1.0, or the allowed value nearest to it."""
        if isinstance(self.gain, Range):
            return self.gain.clamp(1.0)
        if isinstance(self.gain, list):
            return float(min(self.gain, key=lambda v: abs(v - 1.0)))
        return float(self.gain)

    def anchor_lr_scale(self) -> float:
        """The unscaled learning rate 1.0, or the end of the ``lr_scale`` range nearest to it."""
        return 1.0 if self.lr_scale is None else self.lr_scale.clamp(1.0)

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

    def gain_ladder(self) -> list[float]:
        """The gains the halving search screens: ``LADDER_POINTS`` points over the range, its ends included
        (log-spaced on a log range), the list as given, or the fixed gain alone."""
        if isinstance(self.gain, list):
            return sorted(float(g) for g in dict.fromkeys(self.gain))
        if not isinstance(self.gain, Range):
            return [float(self.gain)]
        lo, hi, n = self.gain.low, self.gain.high, LADDER_POINTS - 1
        if self.gain.log:
            return [float(f"{lo * (hi / lo) ** (i / n):.4g}") for i in range(n + 1)]
        return [float(f"{lo + (hi - lo) * i / n:.4g}") for i in range(n + 1)]

    def grid_lr_scales(self) -> list[float]:
        """The learning-rate scales a grid search walks: the range's ends and its point nearest 1.0."""
        if self.lr_scale is None:
            return [1.0]
        r = self.lr_scale
        return sorted({r.low, r.clamp(1.0), r.high})


# The config sections a proxy may change: the model's and the data's arguments (LightningCLI's init_args).
PROXY_SECTIONS = ("model.init_args.", "data.init_args.")


def proxy_keys(proxy: Any) -> dict[str, Any]:
    """``tune.proxy`` as ``{"dotted.key": value}`` (a nested mapping flattened); one-line errors for a value
    that is no mapping, an empty one, or a key outside the model's and data's arguments."""
    if not isinstance(proxy, Mapping):
        raise AutoInitError(
            f"tune.proxy must be a mapping of config keys to values, e.g. {{model.init_args.width: 64}}, got {proxy!r}"
        )
    flat: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, Mapping) and value and not (prefix.count(".") >= 2 and "class_path" in value):
            for k, v in value.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            flat[prefix] = value

    walk(proxy, "")
    if not flat or "" in flat:
        raise AutoInitError("tune.proxy is empty: give the config keys that make the model smaller")
    for key in flat:
        if not key.startswith(PROXY_SECTIONS) or key.endswith(".class_path"):
            raise AutoInitError(
                f"tune.proxy key '{key}' is not an argument of the model or the data: a proxy changes "
                f"{' or '.join(p + '<name>' for p in PROXY_SECTIONS)} (e.g. model.init_args.width)"
            )
    return flat


# The largest gain a study may try: a gain multiplies every layer's weights, so past this every trial
# overflows or diverges at its first step (a typo, not a search).
MAX_GAIN = 100.0


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise AutoInitError(f"tune.{key} must be > 0, got {value}")


# numpy's RandomState and Lightning's seed_everything take seeds in [0, 2**32).
_MAX_SEED = 2**32 - 1


def _seed(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SEED:
        raise AutoInitError(f"tune.{key} must be an integer in [0, 2**32 - 1] ({_MAX_SEED}), got {value!r}")
