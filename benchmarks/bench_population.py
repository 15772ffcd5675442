"""Population trials against sequential trials (``--tune.population=off``), in the same run.

For a config (default: the quick start) it runs the whole ``autoinit tune`` command twice in fresh
processes, population and sequential, and reports per mode: the command's wall time, the training span
(first trial start to last trial end, from the trials' own Optuna timestamps), and the pick. Then it times
the engine alone: member-steps per second of a population of K members against one sequential trial.
Run by hand:

    .ci/in-venv python benchmarks/bench_population.py [--config configs/quickstart.yaml] [--threads 2]
    .ci/in-venv python benchmarks/bench_population.py --engine-only -- \
        --model.init_args.width=1024 --model.init_args.depth=30

Targets (docs/benchmarks.md): training span ≥ 5× shorter and the whole command ≥ 2× faster on 2 CPU cores for the
quick start, with the same pick (or one statistically tied with it).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # the driver's own clock starts before any heavy import

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

# Where the whole command's time goes, in the order it is spent: (phase, function in autoinit.tuner.run).
PHASES = [
    ("applicability", "applicable_schemes"),
    ("check_training", "check_training"),
    ("pre-screen", "prescreen_schemes"),
    ("study creation", "create_study"),
    ("population probe and sizing", "population_runner"),
    ("trials (optimize)", "optimize"),
    ("outputs", "collect"),
    ("outputs", "ranking_table"),
    ("outputs", "write_outputs"),
]


def drive(phases_path: str, argv: list[str]) -> int:
    """``autoinit <argv>`` in this process, timing each phase of ``tune`` (written to ``phases_path``)."""
    import autoinit.cli
    import autoinit.tuner.config
    import autoinit.tuner.run as run

    seconds: dict[str, float] = {"imports": time.perf_counter() - _T0}

    def timed(phase: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start

        return wrapper

    for phase, name in PHASES:
        setattr(run, name, timed(phase, getattr(run, name)))
    run.tune = timed("tune", run.tune)
    try:
        return autoinit.cli.main(argv)
    finally:
        seconds["in-process total"] = time.perf_counter() - _T0
        Path(phases_path).write_text(json.dumps(seconds))


def run_command(config: str, overrides: list[str], population: str, threads: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    phases = out.parent / f"{out.name}.phases.json"
    cmd = [sys.executable, __file__, "--drive", str(phases), "--", "tune", config, *overrides]
    cmd += [f"--tune.population={population}", f"--tune.output={out}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    trained = [t for t in study.trials if t.datetime_start and t.datetime_complete and t.user_attrs.get("seconds")]
    span = (max(t.datetime_complete for t in trained) - min(t.datetime_start for t in trained)).total_seconds()
    best = study.best_trial
    note = next(
        (ln for ln in proc.stdout.splitlines() if ("trials:" in ln and "population" in ln) or "sequential" in ln), ""
    )
    breakdown = json.loads(phases.read_text())
    tune = breakdown.pop("tune")
    breakdown["config parsing (CLI)"] = breakdown.pop("in-process total") - breakdown["imports"] - tune
    breakdown["other, in tune()"] = tune - sum(
        v for k, v in breakdown.items() if k not in ("imports", "config parsing (CLI)")
    )
    breakdown["interpreter start and exit"] = wall - tune - breakdown["imports"] - breakdown["config parsing (CLI)"]
    return {
        "wall": wall,
        "span": span,
        "phases": breakdown,
        "pick": f"{best.params.get('scheme')} gain={best.params.get('gain', 1.0):.3g} score={best.value:.4g}",
        "note": note.strip(),
    }


def engine(config: str, overrides: list[str], members: int, steps: int, threads: int) -> tuple[float, float]:
    """Member-steps per second: a population of ``members`` vs one sequential trial of one seed."""
    import torch

    torch.set_num_threads(threads)
    from autoinit.tuner.config import TuneConfig
    from autoinit.tuner.population import Member, train_population
    from autoinit.tuner.trial import freeze_startup_objects, run_trial

    cfg = TuneConfig(config, [*overrides, f"--tune.steps={steps}", "--tune.seeds=1"])
    freeze_startup_objects()
    run_trial(cfg, "kaiming_normal", 1.0)  # warm-up
    start = time.perf_counter()
    run_trial(cfg, "kaiming_normal", 1.0)
    sequential = steps / (time.perf_counter() - start)
    pop = [Member(scheme="kaiming_normal", gain=1.0, seed=i) for i in range(members)]
    train_population(cfg, pop[:2], steps=2)  # warm-up
    start = time.perf_counter()
    train_population(cfg, pop)
    population = members * steps / (time.perf_counter() - start)
    return sequential, population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--members", type=int, default=60)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--engine-only", action="store_true")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.drive:
        sys.exit(drive(args.drive, args.overrides))
    if not args.engine_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows = {
                mode: run_command(args.config, args.overrides, mode, args.threads, Path(tmp) / mode)
                for mode in ("auto", "off")
            }
        print("| mode | command s | training span s | pick |")
        print("|---|---|---|---|")
        for mode, r in rows.items():
            name = "population" if mode == "auto" else "sequential"
            print(f"| {name} | {r['wall']:.1f} | {r['span']:.1f} | {r['pick']} |")
        print(
            f"speed-up: command {rows['off']['wall'] / rows['auto']['wall']:.1f}×, "
            f"training span {rows['off']['span'] / rows['auto']['span']:.1f}×   ({rows['auto']['note']})"
        )
        print("\n| where the command's time goes, s | population | sequential |")
        print("|---|---|---|")
        fixed = ["interpreter start and exit", "imports", "config parsing (CLI)"]
        order = [*fixed, *dict.fromkeys(p for p, _ in PHASES)]
        for phase in [*order, "other, in tune()"]:
            pop, seq = (rows[m]["phases"].get(phase, 0.0) for m in ("auto", "off"))
            print(f"| {phase} | {pop:.2f} | {seq:.2f} |")
        print(f"| of trials: training span | {rows['auto']['span']:.2f} | {rows['off']['span']:.2f} |")
        print(f"| whole command | {rows['auto']['wall']:.2f} | {rows['off']['wall']:.2f} |")
    seq, pop = engine(args.config, args.overrides, args.members, args.steps, args.threads)
    print(f"member-steps/s: sequential trial {seq:.0f}, population of {args.members} {pop:.0f} ({pop / seq:.1f}×)")


if __name__ == "__main__":
    main()
