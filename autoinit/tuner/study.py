"""The Optuna study behind ``autoinit tune``: storage, sampler, pruner, anchors and the objective."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autoinit import _compat
from autoinit.errors import AutoInitError
from autoinit.tuner.config import TuneConfig
from autoinit.tuner.objective import downsample, is_stalled, mean_curve, trial_score
from autoinit.tuner.settings import Range, TuneSettings
from autoinit.tuner.trial import run_trial

GOOD_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def mask_url(url: str) -> str:
    """A storage URL with its password replaced by ***, for logs and output files."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def open_storage(settings: TuneSettings, output: Path) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL (with a heartbeat, so a dead worker's trial is failed and retried), else
    a journal file (safe for concurrent writers on one machine; default: study.journal in ``output``)."""
    target = settings.storage or str(output / "study.journal")
    if "://" in target:
        try:
            return optuna.storages.RDBStorage(
                target,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=3 * settings.heartbeat_interval,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except Exception as exc:
            raise AutoInitError(
                f"cannot open storage {mask_url(target)} ({type(exc).__name__}: "
                f"{mask_url(str(exc).splitlines()[0])}): check the URL and that the server runs"
            ) from None
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(target)
    return optuna.storages.JournalStorage(backend)


def anchor_gain(settings: TuneSettings) -> float:
    """The textbook gain 1.0, or the allowed value nearest to it."""
    g = settings.gain
    if isinstance(g, Range):
        return min(max(1.0, g.low), g.high)
    if isinstance(g, list):
        return min(g, key=lambda v: abs(v - 1.0))
    return float(g)


def anchors(settings: TuneSettings, schemes: list[str]) -> list[dict[str, Any]]:
    """PyTorch's default first, then every scheme at its textbook gain: the search's anchor points."""
    params: dict[str, Any] = {}
    if not _fixed_gain(settings):
        params["gain"] = anchor_gain(settings)
    if settings.lr_scale is not None:
        params["lr_scale"] = min(max(1.0, settings.lr_scale.low), settings.lr_scale.high)
    return [{"scheme": s, **params} for s in schemes]


def _fixed_gain(settings: TuneSettings) -> bool:
    return not isinstance(settings.gain, (Range, list))


def make_sampler(settings: TuneSettings, schemes: list[str]) -> optuna.samplers.BaseSampler:
    seed = settings.sampler_seed
    n_anchors = len(schemes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings.sampler == "grid":
            space: dict[str, list[Any]] = {"scheme": schemes}
            if not _fixed_gain(settings):
                space["gain"] = settings.grid_gains()
            if settings.lr_scale is not None:
                r = settings.lr_scale
                space["lr_scale"] = sorted({r.low, min(max(1.0, r.low), r.high), r.high})
            return optuna.samplers.GridSampler(space, seed=seed)
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if settings.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_anchors)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_anchors, multivariate=True)


def target_trials(settings: TuneSettings, schemes: list[str]) -> int:
    """``n_trials``, or the grid's size when a grid search has fewer points."""
    if settings.sampler != "grid":
        return settings.n_trials
    size = len(schemes) * (1 if _fixed_gain(settings) else len(settings.grid_gains()))
    if settings.lr_scale is not None:
        r = settings.lr_scale
        size *= len({r.low, min(max(1.0, r.low), r.high), r.high})
    return min(settings.n_trials, size)


def make_pruner(settings: TuneSettings, n_anchors: int) -> optuna.pruners.BasePruner:
    total = settings.steps * settings.seeds
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(settings.report_every, settings.steps // 4), max_resource=total
        )
    # The anchors all run to the end; after them a trial is stopped once its running mean loss is worse
    # than the median of earlier trials at the same step, past the first quarter of its first seed.
    return optuna.pruners.MedianPruner(
        n_startup_trials=n_anchors, n_warmup_steps=max(1, settings.steps // 4), interval_steps=1
    )


def applicable_schemes(config: TuneConfig, log: Callable[[str], None]) -> list[str]:
    """The configured schemes that can initialize this model; with ``schemes: all`` the others are
    skipped with a note, a scheme named explicitly that cannot apply is an error."""
    from autoinit.callback import default_batch_to_input
    from autoinit.initialize import init_model

    s = config.settings
    explicit = s.schemes != "all"
    model, datamodule = config.build()
    sample = getattr(model, "example_input_array", None)
    if sample is None and datamodule is not None:
        datamodule.setup("fit")
        sample = default_batch_to_input(next(iter(datamodule.train_dataloader())))
    keep = []
    for scheme in s.scheme_names():
        try:
            init_model(model, scheme, sample_input=sample, seed=0)
            keep.append(scheme)
        except AutoInitError as exc:
            if explicit and scheme != "default":
                raise AutoInitError(f"tune.schemes: '{scheme}' cannot initialize this model: {exc}") from None
            log(f"skipping {scheme}: {exc}")
    return keep


def prescreen(config: TuneConfig, scheme: str, gain: float):
    """One forward/backward pass of a fresh model under (scheme, gain) (see autoinit.inspection); None
    when the pass itself fails — then the trial runs and reports the error in full."""
    import lightning.pytorch as pl

    from autoinit.inspection import measure, sample_batch

    pl.seed_everything(config.settings.data_seed, verbose=False)
    try:
        model, datamodule = config.build()
        batch, model_input = sample_batch(model, datamodule)
        return measure(model, batch, model_input, scheme, gain, seed=0, jacobian_samples=0)
    except Exception:
        return None


def prescreen_schemes(config: TuneConfig, schemes: list[str], log: Callable[[str], None]) -> list[str]:
    """Drop the schemes that are hopeless at their textbook gain (PyTorch's default always stays)."""
    gain = anchor_gain(config.settings) if not _fixed_gain(config.settings) else float(config.settings.gain)
    keep = []
    for scheme in schemes:
        stats = prescreen(config, scheme, gain)
        if scheme != "default" and stats is not None and stats.hopeless:
            log(
                f"pre-screen: {scheme} left out — signal ×{stats.forward_ratio:.2g} forward, gradient "
                f"×{stats.backward_ratio:.2g} backward over depth"
            )
            continue
        keep.append(scheme)
    return keep


def make_objective(config: TuneConfig, schemes: list[str]) -> Callable[[optuna.Trial], float]:
    from autoinit.tuner.ddp_trial import run_ddp_trial, trial_devices

    s = config.settings
    world_size = trial_devices(config)

    def objective(trial: optuna.Trial) -> float:
        scheme = trial.suggest_categorical("scheme", schemes)
        if isinstance(s.gain, Range):
            gain = trial.suggest_float("gain", s.gain.low, s.gain.high, log=s.gain.log)
        elif isinstance(s.gain, list):
            gain = trial.suggest_categorical("gain", [float(g) for g in s.gain])
        else:
            gain = float(s.gain)
            trial.set_user_attr("gain", gain)
        lr_scale = 1.0
        if s.lr_scale is not None:
            lr_scale = trial.suggest_float("lr_scale", s.lr_scale.low, s.lr_scale.high, log=s.lr_scale.log)

        if s.prescreen and scheme != "default" and trial.user_attrs.get("anchor") is None:
            stats = prescreen(config, scheme, gain)
            if stats is not None and stats.hopeless:
                trial.set_user_attr("status", "prescreened")
                trial.set_user_attr(
                    "prescreen", f"forward ×{stats.forward_ratio:.2g}, backward ×{stats.backward_ratio:.2g}"
                )
                raise optuna.TrialPruned("pre-screened")

        # A point already measured (TPE re-proposes categorical points) costs nothing: same config, same
        # seeds, same result.
        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.params == trial.params and done.number != trial.number:
                for key, value in done.user_attrs.items():
                    trial.set_user_attr(key, value)
                trial.set_user_attr("seconds", 0.0)
                trial.set_user_attr("duplicate_of", done.number)
                return float(done.value)

        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        try:
            if world_size > 1:
                result = run_ddp_trial(config, trial, scheme, gain, lr_scale, world_size)
            else:
                result = run_trial(config, scheme, gain, lr_scale, report)
        except Exception as exc:
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            raise
        curve = mean_curve(result.curves)
        trial.set_user_attr("curve", downsample(curve))
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("steps_trained", sum(len(c) for c in result.curves))
        trial.set_user_attr("status", result.status)
        if result.status == "diverged":
            # Recorded as pruned with a huge last value: TPE puts it in the bad group, ranked last.
            trial.report(1e30, s.steps * s.seeds)
            raise optuna.TrialPruned("diverged")
        if result.status == "pruned":
            raise optuna.TrialPruned()
        score, std = trial_score(result.curves, s.objective, s.threshold)
        trial.set_user_attr("score_std", std)
        trial.set_user_attr("stalled", is_stalled(result.curves))
        return score

    return objective


def load_study(config: TuneConfig, sampler_seed_offset: int = 0) -> tuple[optuna.Study, list[str]]:
    """The study a launcher created, opened by one of its workers (each with its own sampler seed, so
    parallel workers do not propose the same points)."""
    import dataclasses

    optuna.logging.set_verbosity(logging.WARNING)
    storage = open_storage(config.settings, config.output)
    probe = optuna.load_study(study_name=config.study_name, storage=storage)
    schemes = list(probe.user_attrs["schemes"])
    s = dataclasses.replace(config.settings, sampler_seed=config.settings.sampler_seed + sampler_seed_offset)
    study = optuna.load_study(
        study_name=config.study_name,
        storage=storage,
        sampler=make_sampler(s, schemes),
        pruner=make_pruner(s, len(schemes)),
    )
    return study, schemes


def fail_trials_of(study: optuna.Study, worker: str, why: str) -> list[int]:
    """Mark the running trials of a dead worker failed and queue their parameters again."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") == worker:
            _compat.set_trial_user_attr(study, t, "error", why)
            if not _compat.fail_trial(study, t):
                continue
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            failed.append(t.number)
    return failed


def create_study(config: TuneConfig, schemes: list[str]) -> optuna.Study:
    """Create the study, or load it to resume; the config must be the one it was made from."""
    s = config.settings
    optuna.logging.set_verbosity(logging.WARNING)
    storage = open_storage(s, config.output)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        sampler=make_sampler(s, schemes),
        pruner=make_pruner(s, len(schemes)),
        direction="minimize",
        load_if_exists=True,
    )
    sha = config.sha256()
    stored = study.user_attrs.get("config_sha256")
    if stored is None:
        study.set_user_attr("config_sha256", sha)
        study.set_user_attr("schemes", schemes)
    elif stored != sha:
        raise AutoInitError(
            f"study '{config.study_name}' in this storage was made from a different config: "
            "pass another --tune.study_name (or --tune.output) to start a new study"
        )
    if s.sampler != "grid":
        # Enqueue each anchor not yet measured or queued; an anchor whose trial failed (an interrupted
        # run) is queued again, which Optuna's skip_if_exists would not do.
        live = (*GOOD_STATES, TrialState.WAITING, TrialState.RUNNING)
        seen = [t.params for t in study.get_trials(deepcopy=False, states=live)]
        for params in anchors(s, schemes):
            if params not in seen:
                study.enqueue_trial(params, user_attrs={"anchor": True})
    return study


def good_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=GOOD_STATES))
