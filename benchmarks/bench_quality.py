"""Does the tuner find the best init, and at what cost? And does it rediscover the literature?

Per template model: the exhaustive grid (every applicable scheme × gains {0.5, 0.71, 1, 1.41, 2} × 3 seeds,
the same steps each) is the oracle; the tuner runs at its default settings (same steps and seeds, so its
scores are on the oracle's scale); PyTorch's default and the `lsuv` package from PyPI are the outside
references. With ``--long-run`` (on in the full run, off in ``--quick``) the tuner's pick, the grid's best and
PyTorch's default are trained again, 10× the tuning steps, same seeds, through the same trial code: does the
early winner stay ahead? The last table reruns small versions of published findings.

With ``--real-models`` it runs the real-model templates instead (configs/hf_*.yaml: their model, data,
trainer, steps and seeds): the model's own init (``as_built``, the tuner's baseline), PyTorch's default,
``auto``, the tuner's pick and a reduced grid oracle (the schemes the tuner can apply × gains {0.5, 1, 2}),
and whether the tuner trained populations or sequential trials, and why. ``auto`` is trained only where its
weights differ from the model's own init (state dicts compared after init, every seed).

Writes benchmarks/results/quality.md: each run replaces its own section and keeps the other's. Run by hand
(2 CPU cores, under 30 minutes without the long run; the real models about 40):

    .ci/in-venv python benchmarks/bench_quality.py                        # the full suite
    .ci/in-venv python benchmarks/bench_quality.py --quick                # a smoke test (seconds)
    .ci/in-venv python benchmarks/bench_quality.py --quick --long-run     # the smoke test with the long run
    .ci/in-venv python benchmarks/bench_quality.py --only LSTM            # one template's rows, the rest kept
    .ci/in-venv python benchmarks/bench_quality.py --real-models          # the Hugging Face templates
    .ci/in-venv python benchmarks/bench_quality.py --real-models --only "HF ViT" "HF BERT"
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import math
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from rich.console import Console

from autoinit.schemes.registry import get_scheme
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.records.scores import trial_score
from autoinit.tuner.report.outputs import best_summary, rows
from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.settings import BASELINE_SCHEME
from autoinit.tuner.trials.screening import applicable_schemes, sample_input
from autoinit.tuner.trials.trial import run_trial

GAINS = [0.5, 0.71, 1.0, 1.41, 2.0]
# The real models' oracle: fewer gains (each point trains a library model 3 seeds × its config's steps).
REAL_GAINS = [0.5, 1.0, 2.0]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The real-model templates, cheapest first (a run cut short still has the cheap ones): their config files.
REAL_MODELS = {"HF ViT": "hf_vit", "HF BERT": "hf_bert", "HF ConvNeXt": "hf_convnext", "HF GPT-2": "hf_gpt2"}
REAL_HEADING = "## Real models"
DIGITS = {"class_path": "autoinit.templates.DigitsData", "init_args": {"flat": True, "batch_size": 64}}
IMAGES = {"class_path": "autoinit.templates.DigitsData", "init_args": {"batch_size": 64}}
SEQ = {"class_path": "autoinit.templates.SequenceData", "init_args": {"n": 2048, "batch_size": 64}}


def mlp(depth: int, activation: str, lr: float, **extra) -> dict:
    args = {"in_features": 64, "classes": 10, "depth": depth, "width": 32, "activation": activation, "lr": lr}
    return {"class_path": "autoinit.templates.DeepMLP", "init_args": {**args, **extra}}


MODELS = {
    "30-layer ReLU MLP": (mlp(30, "relu", 0.02), DIGITS),
    "50-layer tanh MLP": (mlp(50, "tanh", 0.01), DIGITS),
    "50-layer linear MLP": (mlp(50, "linear", 0.005, bias=False), DIGITS),
    "CNN (digits)": ({"class_path": "autoinit.templates.SmallCNN", "init_args": {"depth": 4, "channels": 16}}, IMAGES),
    "Transformer": ({"class_path": "autoinit.templates.SmallTransformer", "init_args": {"depth": 2}}, SEQ),
    "LSTM": ({"class_path": "autoinit.templates.LSTMClassifier", "init_args": {"hidden": 64}}, SEQ),
}


class LsuvPackage(pl.Callback):
    """The `lsuv` package's LSUVinit on the trial's first training batch, applied before the first step.

    The package draws its orthonormal start from the global RNG, which a trial sets for the data order
    (the same for every seed): so seed k of a trial (the k-th fit this callback sees) draws under
    ``manual_seed(k)``, and the global RNG is given back untouched, so the data order is the trial's. (Before,
    every seed got the same draw — three equal runs scored as a mean over three seeds.)"""

    def __init__(self) -> None:
        self.fits = 0

    def on_fit_start(self, trainer, pl_module):
        import lsuv

        with torch.random.fork_rng(devices=[]):  # the trial's own first batch: its iterator's RNG state
            batch = next(iter(trainer.fit_loop._data_source.dataloader()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.fits)
            lsuv.lsuv_with_singlebatch(pl_module, batch[0], verbose=False)
        self.fits += 1


def replace_lsuv_column(text: str, scores: dict[str, float]) -> str:
    """``text`` (the template table's part) with the ``lsuv package`` cell of each model in ``scores``
    replaced."""
    lines = text.split("\n")
    column = None
    for i, line in enumerate(lines):
        cells = line.split("|")
        names = [c.strip() for c in cells]
        if column is None and "lsuv package" in names:
            column = names.index("lsuv package")
        elif column is not None and not line.startswith("|"):
            break  # the table ended: the other tables name the same models
        elif column is not None and names[1] in scores:
            cells[column] = f" {scores[names[1]]:.4g} "
            lines[i] = "|".join(cells)
    return "\n".join(lines)


@dataclass
class LongRun:
    """One point trained ``factor``× the tuning steps: its early score (from the tuning run) and its long
    scores — by the tuning objective over the long run, and by the final loss (last 10% of the steps)."""

    labels: list[str]  # "pick", "grid best", "default": one point may be two of them (the pick is the grid's best)
    scheme: str
    gain: float
    early: float
    objective: float = math.inf
    final: float = math.inf


@dataclass
class Result:
    name: str
    steps: int = 0  # per seed, every point
    seeds: int = 0
    oracle: tuple[str, float, float] = ("", 0.0, math.inf)  # scheme, gain, score
    grid: dict[tuple[str, float], float] = field(default_factory=dict)
    grid_steps: int = 0
    pick: tuple[str, float, float] = ("", 0.0, math.inf)
    tuner_steps: int = 0
    default: float = math.nan
    lsuv_pkg: float = math.nan
    seconds: float = 0.0
    long_steps: int = 0  # the long run's steps per seed (0: not run)
    long: list[LongRun] = field(default_factory=list)
    same_as: dict[str, str] = field(default_factory=dict)  # scheme -> the scheme whose weights it equals
    trials_as: str = ""  # the tuner's line: population trials, or sequential trials and why
    significant: bool | None = None  # the tuner's verdict: the pick beats the model's own init beyond noise

    @property
    def regret(self) -> float:
        return (self.pick[2] - self.oracle[2]) / self.oracle[2]

    def at(self, scheme: str) -> float:
        """``scheme``'s grid score at gain 1 (the only gain of a scheme that uses none)."""
        return self.grid.get((scheme, 1.0), math.nan)

    @property
    def improvement(self) -> float:
        """The pick against the model's own init: (pick − own) / own, negative is better."""
        return (self.pick[2] - self.at(BASELINE_SCHEME)) / self.at(BASELINE_SCHEME)


def write_config(
    folder: Path, name: str, model: dict, data: dict, steps: int, seeds: int, trainer: dict | None = None, **tune_keys
) -> Path:
    """A tune config on one CPU device; ``trainer``: further Trainer keys (a config's gradient clipping)."""
    path = folder / f"{name.replace(' ', '_').replace('(', '').replace(')', '').replace('-', '')}.yaml"
    tune_section = {"steps": steps, "seeds": seeds, "output": str(folder / path.stem), **tune_keys}
    trainer = {**(trainer or {}), "accelerator": "cpu", "devices": 1}
    path.write_text(yaml.safe_dump({"model": model, "data": data, "trainer": trainer, "tune": tune_section}))
    return path


def grid_points(schemes: list[str], gains: list[float]) -> list[tuple[str, float]]:
    """Every scheme at every gain; a scheme that uses no gain (the model's own init) once, at gain 1."""
    return [(s, g) for s in schemes for g in (gains if get_scheme(s).uses_gain else [1.0])]


def oracle_schemes(config: TuneConfig, schemes: list[str] | None) -> list[str]:
    """The grid's schemes: ``schemes``, else every one the tuner can apply to the model (its baseline first)."""
    return schemes or applicable_schemes(config, lambda msg: None)[0]


def same_weights(config: TuneConfig, scheme: str, other: str) -> bool:
    """Whether ``scheme`` and ``other`` give the same weights, bit for bit, on every seed of ``config``
    (each seed's model built as a trial builds it, initialized as its ``AutoInit`` does, at gain 1)."""
    import torch

    from autoinit import data
    from autoinit.initialize import init_model
    from autoinit.tuner.sources.source import build_for_seed

    for seed in range(config.settings.seeds):
        states = []
        for name in (scheme, other):
            model, datamodule = build_for_seed(config, seed)
            sample = sample_input(config, model, data.first_batch(model, datamodule))
            init_model(model, name, sample_input=sample, seed=seed)
            states.append(model.state_dict())
        a, b = states
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            return False
    return True


def score(config: TuneConfig, scheme: str, gain: float, **kw) -> tuple[float, int]:
    result = run_trial(config, scheme, gain, **kw)
    if result.status != "complete":
        return math.inf, sum(len(c) for c in result.curves)
    return trial_score(result.curves, "auc")[0], sum(len(c) for c in result.curves)


def grid_scores(config: TuneConfig, points: list[tuple[str, float]]) -> list[tuple[float, int]]:
    """The grid's (score, steps trained) per point, trained as the tuner's trials are: as populations where
    the config allows it (the tuner's default), else one sequential trial each."""
    from autoinit.tuner.population.trials import probe, run_population_trials
    from autoinit.tuner.search.space import Point

    if probe(config) is not None:
        return [score(config, scheme, g) for scheme, g in points]
    results = run_population_trials(config, [Point(sc, g) for sc, g in points], [None] * len(points), max_members=240)
    out = []
    for r in results:
        if isinstance(r, Exception) or r.status != "complete":
            out.append((math.inf, 0 if isinstance(r, Exception) else sum(len(c) for c in r.curves)))
        else:
            out.append((trial_score(r.curves, "auc")[0], sum(len(c) for c in r.curves)))
    return out


def long_run(config: TuneConfig, res: Result, factor: int) -> None:
    """Train the pick, the grid's best and PyTorch's default ``factor``× the tuning steps, same seeds, through
    the tuner's own trial code (a copy of the config whose ``steps`` are longer, as the training check
    makes its one-step copy)."""
    long = copy.copy(config)
    long.settings = dataclasses.replace(config.settings, steps=config.settings.steps * factor)
    res.long_steps = long.settings.steps
    candidates = [("pick", res.pick), ("grid best", res.oracle), ("default", ("default", 1.0, res.default))]
    for label, (scheme, gain, early) in candidates:
        same = next((p for p in res.long if p.scheme == scheme and math.isclose(p.gain, gain, rel_tol=1e-6)), None)
        if same is not None:
            same.labels.append(label)
            continue
        point = LongRun([label], scheme, gain, early)
        result = run_trial(long, scheme, gain)
        if result.status == "complete":
            point.objective = trial_score(result.curves, config.settings.objective, config.settings.threshold)[0]
            point.final = trial_score(result.curves, "final")[0]
        res.long.append(point)


def bench_model(
    folder: Path,
    name: str,
    model: dict,
    data: dict,
    steps: int,
    seeds: int,
    gains: list[float],
    schemes: list[str] | None,
    tuner_trials: int | None,
    long_factor: int = 0,
    *,
    trainer: dict | None = None,
    lsuv_package: bool = True,
    maybe_same: dict[str, str] | None = None,
) -> Result:
    """The grid (the oracle), the tuner's pick and the references on one model. ``maybe_same``: scheme ->
    another scheme; where their weights are equal (:func:`same_weights`) the first is not trained and gets
    the other's score."""
    start = time.perf_counter()
    res = Result(name, steps, seeds)
    path = write_config(folder, name, model, data, steps, seeds, trainer)
    config = TuneConfig(path)
    names = oracle_schemes(config, schemes)
    res.same_as = {
        s: o for s, o in (maybe_same or {}).items() if s in names and o in names and same_weights(config, s, o)
    }
    points = grid_points([s for s in names if s not in res.same_as], gains)
    for (scheme, g), (s, n) in zip(points, grid_scores(config, points), strict=True):
        res.grid[(scheme, g)] = s
        res.grid_steps += n if math.isfinite(s) else seeds * steps
    for scheme, other in res.same_as.items():
        res.grid[(scheme, 1.0)] = res.grid[(other, 1.0)]
    best = min(res.grid, key=res.grid.get)
    res.oracle = (*best, res.grid[best])
    res.default = res.at("default")
    if lsuv_package:
        res.lsuv_pkg = score(config, "default", 1.0, callbacks_after_init=[LsuvPackage()])[0]
    keys = {"n_trials": tuner_trials} if tuner_trials else {}
    if schemes:
        keys["schemes"] = schemes
    tuner_config = TuneConfig(write_config(folder, name + " tuner", model, data, steps, seeds, trainer, **keys))
    printed = io.StringIO()
    tune(tuner_config, Console(file=printed, width=400))
    res.trials_as = next(
        (
            line.strip()
            for line in printed.getvalue().splitlines()
            if "population trials" in line or "sequential trials" in line
        ),
        "",
    )
    import optuna

    from autoinit.tuner.storage.backend import open_storage

    study = optuna.load_study(
        study_name=tuner_config.study_name, storage=open_storage(tuner_config.settings, tuner_config.output)
    )
    res.tuner_steps = sum(TrialRecord.of(t).steps_trained or 0 for t in study.get_trials())
    summary = best_summary(tuner_config, rows(study))  # the tuner's pick, as best.yaml has it
    res.pick = (summary.scheme, summary.gain, summary.score)
    res.significant = summary.significant
    if long_factor:
        long_run(config, res, long_factor)
    res.seconds = time.perf_counter() - start
    return res


def literature(folder: Path, steps: int, seeds: int, quick: bool) -> list[tuple[str, str, str, str]]:
    """Small versions of published findings: (paper, setting, the paper's ordering, the ordering found)."""
    findings = []

    def ordering(config: TuneConfig, points: list[tuple[str, str, float, dict]]) -> str:
        scored = []
        for label, scheme, gain, options in points:
            scored.append((score(config, scheme, gain, **options)[0], label))
        scored.sort()
        return " < ".join(f"{label} ({s:.3g})" for s, label in scored)

    depth = 8 if quick else None
    cfg = lambda name, model, data: TuneConfig(write_config(folder, name, model, data, steps, seeds))  # noqa: E731
    c = cfg("lit_he", mlp(depth or 30, "relu", 0.02), DIGITS)
    findings.append(
        (
            "He et al. 2015",
            f"{depth or 30}-layer ReLU MLP, digits",
            "Kaiming ≈ orthogonal·√2 ≈ LSUV < Xavier, LeCun, default",
            ordering(
                c,
                [
                    ("Kaiming", "kaiming_normal", 1.0, {}),
                    ("orthogonal·√2", "orthogonal", 1.0, {}),
                    ("LSUV", "lsuv", 1.0, {}),
                    ("Xavier", "xavier_normal", 1.0, {}),
                    ("LeCun", "lecun_normal", 1.0, {}),
                    ("default", "default", 1.0, {}),
                ],
            ),
        )
    )
    for act in ("tanh", "softsign"):
        c = cfg(f"lit_glorot_{act}", mlp(depth or 10, act, 0.05), DIGITS)
        findings.append(
            (
                "Glorot & Bengio 2010",
                f"{depth or 10}-layer {act} MLP",
                "normalized (Xavier) < standard U(±1/√n)",
                ordering(c, [("normalized", "xavier_uniform", 1.0, {}), ("standard", "default", 1.0, {})]),
            )
        )
    c = cfg("lit_saxe", mlp(depth or 50, "linear", 0.005, bias=False), DIGITS)
    findings.append(
        (
            "Saxe et al. 2014",
            f"{depth or 50}-layer linear MLP",
            "orthogonal < Gaussian",
            ordering(c, [("orthogonal", "orthogonal", 1.0, {}), ("Gaussian", "lecun_normal", 1.0, {})]),
        )
    )
    c = cfg("lit_schoenholz", mlp(depth or 50, "tanh", 0.01), DIGITS)
    points = [(f"σw²={v}", "lecun_normal", math.sqrt(v), {"bias_std": math.sqrt(0.05)}) for v in (1.0, 1.76, 3.0)]
    findings.append(
        (
            "Schoenholz et al. 2017",
            f"{depth or 50}-layer tanh MLP, σb²=0.05",
            "critical σw²≈1.76 best",
            ordering(c, points),
        )
    )
    c = cfg("lit_balduzzi", mlp(depth or 50, "crelu", 0.001), DIGITS)
    findings.append(
        (
            "Balduzzi et al. 2017",
            f"{depth or 50}-layer CReLU MLP, lr 0.001",
            "looks-linear < He",
            ordering(c, [("looks-linear", "looks_linear", 1.0, {}), ("He", "kaiming_normal", 1.0, {})]),
        )
    )
    cnn = {
        "class_path": "autoinit.templates.SmallCNN",
        "init_args": {"depth": depth or 32, "channels": 16, "activation": "tanh"},
    }
    c = cfg("lit_xiao", cnn, IMAGES)
    findings.append(
        (
            "Xiao et al. 2018",
            f"{depth or 32}-layer tanh CNN",
            "delta-orthogonal < Gaussian",
            ordering(c, [("delta-orthogonal", "delta_orthogonal", 1.0, {}), ("Gaussian", "kaiming_normal", 1.0, {})]),
        )
    )
    resmlp = {
        "class_path": "autoinit.templates.ResidualMLP",
        "init_args": {"blocks": 4 if quick else 32, "width": 32 if quick else 64, "lr": 0.05},
    }
    c = cfg("lit_fixup", resmlp, DIGITS)
    findings.append(
        (
            "Zhang et al. 2019 (Fixup)",
            f"{resmlp['init_args']['blocks']}-block residual MLP, no normalization, lr 0.05 for all",
            "Fixup trains; He (and default) without normalization do not",
            ordering(
                c,
                [("Fixup", "fixup", 1.0, {}), ("He", "kaiming_normal", 1.0, {}), ("default", "default", 1.0, {})],
            ),
        )
    )
    resnet = {"class_path": "autoinit.templates.ResNetCNN", "init_args": {"channels": 8, "blocks": 1 if quick else 2}}
    c = cfg("lit_goyal", resnet, IMAGES)
    findings.append(
        (
            "Goyal et al. 2017",
            f"ResNet ({2 * resnet['init_args']['blocks']} BasicBlocks with BN), digits",
            "zero γ of each block's last BN < γ = 1 (early loss)",
            ordering(c, [("zero γ", "zero_residual", 1.0, {}), ("γ = 1", "auto", 1.0, {})]),
        )
    )
    return findings


def render(results: list[Result], findings, settings: str, seconds: float) -> str:
    out = [
        f"# Quality benchmark\n\n{settings}; total {seconds / 60:.1f} min on this machine.\n",
        "Scores are early-loss AUC (mean training loss over the steps, averaged over seeds); lower is better.\n",
        "| model | oracle best (grid) | tuner's pick | regret | vs PyTorch default | lsuv package "
        "| tuner steps / grid steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r.name} | {r.oracle[0]}·{r.oracle[1]:g}: {r.oracle[2]:.4g} | {r.pick[0]}·{r.pick[1]:.3g}: "
            f"{r.pick[2]:.4g} | {100 * r.regret:+.1f}% | {r.default:.4g} → {r.pick[2]:.4g} "
            f"({100 * (r.pick[2] - r.default) / r.default:+.0f}%) | {r.lsuv_pkg:.4g} | "
            f"{100 * r.tuner_steps / r.grid_steps:.0f}% |"
        )
    out += render_long(results)
    out += [
        "\n## The literature rediscovered\n",
        "| paper | setting | the paper | found here (AUC) |",
        "|---|---|---|---|",
    ]
    out += [f"| {p} | {s} | {paper} | {found} |" for p, s, paper, found in findings]
    return "\n".join(out) + "\n"


def _label(p: LongRun) -> str:
    names = " = ".join("PyTorch default" if n == "default" else n for n in p.labels)
    return names if (p.scheme, p.gain) == ("default", 1.0) else f"{names} {p.scheme}·{p.gain:.3g}"


def _order(points: list[LongRun], key) -> str:
    return " < ".join(f"{_label(p)} ({key(p):.4g})" for p in sorted(points, key=key))


def _still_ahead(points: list[LongRun], key) -> tuple[bool, str]:
    early = min(points, key=lambda p: p.early)
    late = min(points, key=key)
    if late is early:
        return True, "yes"
    return False, f"no: {' = '.join(late.labels)} ahead"


def render_long(results: list[Result]) -> list[str]:
    """The long-run table: the three points ranked early and after ``factor``× the steps."""
    done = [r for r in results if r.long]
    if not done:
        return ["\nLong run: not run (`--long-run` to add it).\n"]
    steps = done[0].long_steps
    out = [
        f"\n## Does the early pick last? ({steps} steps per seed, same seeds)\n",
        "The tuner's pick, the grid's best and PyTorch's default trained again through the trial code, "
        f"{steps} steps each; ranked by the tuning objective over the long run and by the final loss (mean of "
        "the last 10% of the steps). One point may be two of the three (the pick is the grid's best).\n",
        "| model | early ranking (tuning steps) | long run, by the objective | long run, by final loss "
        "| early winner still ahead (objective / final) |",
        "|---|---|---|---|---|",
    ]
    kept = {"objective": 0, "final": 0}
    for r in done:
        verdicts = []
        for name, key in (("objective", lambda p: p.objective), ("final", lambda p: p.final)):
            ahead, text = _still_ahead(r.long, key)
            kept[name] += ahead
            verdicts.append(text)
        out.append(
            f"| {r.name} | {_order(r.long, lambda p: p.early)} | {_order(r.long, lambda p: p.objective)} | "
            f"{_order(r.long, lambda p: p.final)} | {' / '.join(verdicts)} |"
        )
    out.append(
        f"\nThe early winner is still ahead on {kept['objective']} of {len(done)} models by the objective over the "
        f"long run, {kept['final']} of {len(done)} by the final loss."
    )
    return out


def real_models(folder: Path, quick: bool, only: list[str] | None) -> tuple[list[Result], str]:
    """The real-model templates through :func:`bench_model`, each with its config's model, data, trainer,
    steps and seeds, the reduced oracle grid, no `lsuv` package (it takes a tensor batch), and ``auto``
    trained only where its weights differ from the model's own init."""
    chosen = only or (["HF ViT"] if quick else list(REAL_MODELS))
    unknown = [n for n in chosen if n not in REAL_MODELS]
    if unknown:
        raise SystemExit(f"--only: no real model {unknown}; choose from {list(REAL_MODELS)}")
    gains = [1.0] if quick else REAL_GAINS
    schemes, trials = (["as_built", "default", "auto", "xavier_uniform"], 4) if quick else (None, None)
    results = []
    for name in chosen:
        raw = yaml.safe_load((CONFIGS / f"{REAL_MODELS[name]}.yaml").read_text())
        steps, seeds = (8, 1) if quick else (raw["tune"]["steps"], raw["tune"]["seeds"])
        res = bench_model(
            folder,
            name,
            raw["model"],
            raw["data"],
            steps,
            seeds,
            gains,
            schemes,
            trials,
            trainer=raw.get("trainer"),
            lsuv_package=False,
            maybe_same={"auto": BASELINE_SCHEME},
        )
        results.append(res)
        print(f"{name}: {res.seconds / 60:.1f} min", flush=True)
    settings = (
        f"8 steps × 1 seed, oracle gains {gains}, schemes {schemes}, {trials} tuner trials (quick mode)"
        if quick
        else f"each config's steps × seeds, oracle gains {gains}, the tuner at its defaults"
    )
    return results, settings


def _point(scheme: str, gain: float) -> str:
    """``scheme·gain``, or the scheme alone where it uses no gain."""
    return f"{scheme}·{gain:.3g}" if get_scheme(scheme).uses_gain else scheme


def render_real(results: list[Result], settings: str, kept: dict[str, str] | None = None) -> str:
    """The real-model section: own init, PyTorch default, auto, the pick, the oracle, regret, improvement.
    ``kept``: model name -> its row from an earlier run (``--only`` runs some models and keeps the others')."""
    new = {r.name: _real_row(r) for r in results}
    table = {**(kept or {}), **new}
    out = [
        f"{REAL_HEADING}: the model's own init is the yardstick\n",
        f"Hugging Face `transformers` templates (configs/hf_*.yaml), built from their configs with random weights; "
        f"{settings}. Scores are early-loss AUC (mean training loss over the steps, averaged over seeds); lower "
        "is better. **The oracle is a reduced grid**: the schemes the "
        f"tuner can apply to the model × the oracle gains (a scheme without a gain, the model's own init, once) × "
        "the seeds, the config's steps each — the tuner's halving search also tries gains off this grid, so a "
        "negative regret means it found a better point than the reduced grid. The pick's change against the "
        "model's own init is marked *beyond noise* where the tuner's Welch test (same seeds) says so.\n",
        "| model | steps × seeds | own init (`as_built`) | PyTorch `default` | `auto` | tuner's pick | grid oracle "
        "| regret | pick vs own init | tuner steps / grid steps | trials | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(table[name] for name in REAL_MODELS if name in table),
    ]
    not_run = [name for name in REAL_MODELS if name not in table]
    if not_run:
        out.append(f"\nNot run: {', '.join(not_run)} (`--real-models --only` adds a model's row, keeping the others).")
    out.append(
        "\n`auto` marked *same weights* leaves every weight as the model built it (its state dict after init "
        "equals the own init's, bit for bit, on every seed): it keeps a parameter whose author chose its init, so "
        "its score is the own init's and it is not trained again. *minutes*: the model's grid, tuner study and "
        "checks, wall clock on this machine."
    )
    return "\n".join(out) + "\n"


def kept_rows(path: Path) -> dict[str, str]:
    """The real-model rows of an earlier run in ``path``, by model name."""
    text = path.read_text() if path.exists() else ""
    _, _, section = text.partition(REAL_HEADING)
    return {n: line for line in section.splitlines() for n in REAL_MODELS if line.startswith(f"| {n} |")}


def _real_row(r: Result) -> str:
    """One real model's table row."""
    auto = f"{r.at('auto'):.4g}" + (" (= own init: same weights)" if r.same_as.get("auto") == BASELINE_SCHEME else "")
    noise = {True: ", beyond noise", False: ", within noise", None: ""}[r.significant]
    if r.pick[0] == BASELINE_SCHEME:
        noise = " (the pick is the own init)"
    return (
        f"| {r.name} | {r.steps} × {r.seeds} | {r.at(BASELINE_SCHEME):.4g} | {r.default:.4g} | {auto} | "
        f"{_point(*r.pick[:2])}: {r.pick[2]:.4g} | {_point(*r.oracle[:2])}: {r.oracle[2]:.4g} | "
        f"{100 * r.regret:+.1f}% | {100 * r.improvement:+.1f}%{noise} | "
        f"{100 * r.tuner_steps / r.grid_steps:.0f}% | {r.trials_as or 'not printed'} | {r.seconds / 60:.1f} |"
    )


def merge_rows(old: str, new: str, names: Sequence[str]) -> str:
    """``old``'s text with each row of a model in ``names`` replaced by that model's rows of ``new``, in order
    (its quality row, then its long-run row); an old row ``new`` has no counterpart for is dropped, not left
    stale. The other models' rows and the literature table are kept."""
    fresh = {n: [line for line in new.splitlines() if line.startswith(f"| {n} |")] for n in names}
    out = []
    for line in old.splitlines():
        name = next((n for n in names if line.startswith(f"| {n} |")), None)
        if name is None:
            out.append(line)
        elif fresh[name]:
            out.append(fresh[name].pop(0))
    return _recount_long("\n".join(out) + "\n")


def _recount_long(text: str) -> str:
    """``text`` with the long run's closing count recomputed from its table's last column (``yes / no: …``)."""
    _, heading, rest = text.partition("## Does the early pick last?")
    if not heading:
        return text
    verdicts = [line.rstrip(" |").rsplit("|", 1)[-1].split(" / ") for line in rest.splitlines()[1:]]
    verdicts = [v for v in verdicts if len(v) == 2 and v[0].strip().startswith(("yes", "no"))]  # not the header
    kept = [sum(v[i].strip() == "yes" for v in verdicts) for i in (0, 1)]
    n = len(verdicts)
    sentence = (
        f"The early winner is still ahead on {kept[0]} of {n} models by the objective over the long run, "
        f"{kept[1]} of {n} by the final loss."
    )
    return re.sub(r"The early winner is still ahead on .*? by the final loss\.", sentence, text, count=1)


def write_results(path: Path, *, main: str | None = None, real: str | None = None) -> str:
    """Write ``path`` with a new main part or a new real-model section, keeping the other from the file
    (each run of the bench replaces only its own part)."""
    old = path.read_text() if path.exists() else ""
    old_main, _, old_real = old.partition(REAL_HEADING)
    main = main if main is not None else old_main
    real = real if real is not None else (REAL_HEADING + old_real if old_real else "")
    text = main.rstrip("\n") + "\n\n" + real if main and real else main or real
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny models, few points")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--long-run",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train the pick, the grid's best and the default 10× longer (default: on, off with --quick)",
    )
    parser.add_argument("--long-factor", type=int, default=10, help="the long run's steps over the tuning steps")
    parser.add_argument("--out", default="benchmarks/results/quality.md")
    parser.add_argument(
        "--real-models",
        action="store_true",
        help="run the real-model templates (configs/hf_*.yaml) instead; replaces only their section in --out",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="MODEL",
        help=f"some of {list(MODELS)} (their rows replace theirs in --out, the rest kept; no literature table), "
        f"or with --real-models some of {list(REAL_MODELS)}",
    )
    parser.add_argument(
        "--lsuv-package-only",
        action="store_true",
        help="only the lsuv package's column of the template table (each seed its own draw), replaced in --out",
    )
    args = parser.parse_args()
    if args.lsuv_package_only:
        models = {n: MODELS[n] for n in args.only} if args.only else MODELS
        steps = args.steps or 60
        with tempfile.TemporaryDirectory() as tmp:
            scores = {
                name: score(
                    TuneConfig(write_config(Path(tmp), name, m, d, steps, 3)),
                    "default",
                    1.0,
                    callbacks_after_init=[LsuvPackage()],
                )[0]
                for name, (m, d) in models.items()
            }
        old_main = Path(args.out).read_text().partition(REAL_HEADING)[0]
        print(write_results(Path(args.out), main=replace_lsuv_column(old_main, scores)))
        return
    if args.real_models:
        with tempfile.TemporaryDirectory() as tmp:
            results, settings = real_models(Path(tmp), args.quick, args.only)
        kept = kept_rows(Path(args.out)) if args.only else {}
        print(write_results(Path(args.out), real=render_real(results, settings, kept)))
        return
    long_run_on = (not args.quick) if args.long_run is None else args.long_run
    factor = args.long_factor if long_run_on else 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.quick:
            steps, seeds, gains = args.steps or 8, 1, [0.71, 1.0, 1.41]
            models = {"8-layer ReLU MLP": (mlp(8, "relu", 0.02), DIGITS)}
            schemes, trials = ["default", "kaiming_normal", "xavier_uniform"], 4
        else:
            steps, seeds, gains = args.steps or 60, 3, GAINS
            unknown = [n for n in args.only or [] if n not in MODELS]
            if unknown:
                raise SystemExit(f"--only: no template model {unknown}; choose from {list(MODELS)}")
            models = {n: MODELS[n] for n in args.only} if args.only else MODELS
            schemes, trials = None, None
        results = [
            bench_model(folder, name, m, d, steps, seeds, gains, schemes, trials, factor)
            for name, (m, d) in models.items()
        ]
        findings = [] if args.only else literature(folder, steps, seeds, args.quick)
    settings = f"{steps} steps × {seeds} seeds per point, gains {gains}, tuner at its defaults" + (
        " (quick mode)" if args.quick else ""
    )
    main_part = render(results, findings, settings, time.perf_counter() - start)
    if args.only:
        old_main = Path(args.out).read_text().partition(REAL_HEADING)[0] if Path(args.out).exists() else ""
        main_part = merge_rows(old_main, main_part, list(models)) if old_main else main_part
    print(write_results(Path(args.out), main=main_part))


if __name__ == "__main__":
    main()
