"""Population trials against sequential trials (``--tune.population=off``), in the same run.

For a config (default: the quick start) it runs the whole ``autoinit tune`` command twice in fresh
processes, population and sequential, and reports per mode: the command's wall time, the training span
(first trial start to last trial end, from the trials' own Optuna timestamps), and the pick. Then it times
where the population run's time goes, population call by population call (member builds, inits,
stacking, the vmapped steps, Optuna's bookkeeping around them and the gaps between calls). Then it times
the engine alone against the hand-written limit, in the same process: K copies of the model stacked with
``torch.func.stack_module_state``, ``functional_call`` under ``vmap``, one SGD-momentum optimizer over the
stacked tensors — on the quick-start MLP and on a 30×1024 MLP. ``--rss`` prints the peak RSS of a
population in a fresh process. Run by hand:

    .ci/in-venv python benchmarks/bench_population.py [--config configs/quickstart.yaml] [--threads 2]
    .ci/in-venv python benchmarks/bench_population.py --engine-only
    .ci/in-venv python benchmarks/bench_population.py --command-only --config configs/relu_mlp.yaml
    .ci/in-venv python benchmarks/bench_population.py --rss 60
    .ci/in-venv python benchmarks/bench_population.py --rss 0 -- --model.init_args.width=1024 \
        --model.init_args.depth=30          # 0: the largest population the tuner's sizing allows

Targets (docs/benchmarks.md): training span ≥ 5× shorter than sequential for the quick start on 2 CPU
cores, with the same pick (or one statistically tied with it); the whole command ≥ 4× faster for the
30-layer study of configs/relu_mlp.yaml (``--command-only --config configs/relu_mlp.yaml``); the engine's
member-steps/s within 1.5× of the hand-written loop.
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
    import autoinit.tuner.run as run
    import autoinit.tuner.sources.config

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
    calls = record_populations()
    try:
        return autoinit.cli.main(argv)
    finally:
        seconds["in-process total"] = time.perf_counter() - _T0
        Path(phases_path).write_text(json.dumps({"phases": seconds, "calls": calls}))


def record_populations() -> list[dict]:
    """Wrap the population batch runner and the engine so each batch call (and the probe) leaves a record:
    its span, and per population its members, member-steps and the engine's phases."""
    import dataclasses

    import autoinit.tuner.population.study as study
    import autoinit.tuner.population.trials as trials
    from autoinit.tuner.population.engine import EngineTimes

    calls: list[dict] = []
    batch_call, engine = study.PopulationBatch.__call__, trials.train_population

    def batch(self, *args, **kwargs):
        calls.append({"kind": "batch", "start": time.perf_counter(), "populations": []})
        try:
            return batch_call(self, *args, **kwargs)
        finally:
            calls[-1]["end"] = time.perf_counter()

    def train(config, members, **kwargs):
        times = EngineTimes()
        start = time.perf_counter()
        if not calls or "end" in calls[-1]:  # outside a batch: the probe
            calls.append({"kind": "probe", "start": start, "populations": []})
        try:
            return engine(config, members, times=times, **kwargs)
        finally:
            wall = time.perf_counter() - start
            calls[-1]["populations"].append({"members": len(members), "wall": wall, **dataclasses.asdict(times)})
            if calls[-1]["kind"] == "probe":
                calls[-1]["end"] = time.perf_counter()

    study.PopulationBatch.__call__ = batch
    trials.train_population = train
    return calls


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
    recorded = json.loads(phases.read_text())
    breakdown = recorded["phases"]
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
        "calls": recorded["calls"],
    }


def print_calls(calls: list[dict]) -> None:
    """Where the population run's trial time goes, batch call by batch call."""
    print(
        "\n| call | populations × members | member-steps | build | init | stack | vmapped steps "
        "| steps' member-steps/s | pruner reports | engine, other | Optuna bookkeeping | gap before |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    totals = dict.fromkeys(("build", "init", "stack", "steps", "watch", "other", "optuna", "gap"), 0.0)
    member_steps, previous = 0, None
    for n, call in enumerate(calls):
        pops = call["populations"]
        got = {k: sum(p[k] for p in pops) for k in ("build", "init", "stack", "steps", "watch", "wall", "member_steps")}
        other = got["wall"] - got["build"] - got["init"] - got["stack"] - got["steps"] - got["watch"]
        optuna = (call["end"] - call["start"]) - got["wall"]
        gap = call["start"] - previous if previous is not None else 0.0
        previous = call["end"]
        for k, v in (
            ("build", got["build"]),
            ("init", got["init"]),
            ("stack", got["stack"]),
            ("steps", got["steps"]),
            ("watch", got["watch"]),
            ("other", other),
            ("optuna", optuna),
            ("gap", gap),
        ):
            totals[k] += v
        member_steps += got["member_steps"]
        rate = got["member_steps"] / got["steps"] if got["steps"] else 0.0
        sizes = "+".join(str(p["members"]) for p in pops) or "0"
        print(
            f"| {call['kind']} {n} | {sizes} | {got['member_steps']} | {got['build']:.2f} | {got['init']:.2f} "
            f"| {got['stack']:.2f} | {got['steps']:.2f} | {rate:.0f} | {got['watch']:.2f} | {other:.2f} | {optuna:.2f} "
            f"| {gap:.2f} |"
        )
    rate = member_steps / totals["steps"] if totals["steps"] else 0.0
    print(
        f"| all | | {member_steps} | {totals['build']:.2f} | {totals['init']:.2f} | {totals['stack']:.2f} "
        f"| {totals['steps']:.2f} | {rate:.0f} | {totals['watch']:.2f} | {totals['other']:.2f} "
        f"| {totals['optuna']:.2f} | {totals['gap']:.2f} |"
    )


def reference(config: str, overrides: list[str], members: int, steps: int) -> tuple[float, float]:
    """The hand-written limit, seconds (whole, loop only): ``members`` copies of the config's model, each
    Kaiming-normal initialized, stacked with ``torch.func.stack_module_state``; ``functional_call`` under
    ``vmap`` and one SGD-momentum optimizer over the stacked tensors, ``steps`` steps on the config's train
    loader. For the MLP templates (cross-entropy on ``model(x)``; the model's ``lr`` and ``momentum``)."""
    import copy

    import torch

    from autoinit import data
    from autoinit.tuner.sources.config import TuneConfig

    start = time.perf_counter()
    cfg = TuneConfig(config, overrides)
    torch.manual_seed(cfg.settings.data_seed)
    model, datamodule = cfg.build()
    loader = data.train_loader(model, datamodule)
    copies = []
    for i in range(members):
        member = copy.deepcopy(model)
        torch.manual_seed(i)
        for layer in member.modules():
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
        copies.append(member)
    params, buffers = torch.func.stack_module_state(copies)
    del copies
    base = copy.deepcopy(model).to("meta")

    def loss(p, b, x, y):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(base, (p, b), (x,)), y)

    step = torch.vmap(loss, in_dims=(0, 0, None, None))
    optimizer = torch.optim.SGD(params.values(), lr=model.lr, momentum=model.momentum)
    loop = time.perf_counter()
    done = 0
    while done < steps:
        for x, y in loader:
            losses = step(params, buffers, x, y)
            losses.sum().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.tolist()  # the engine reads the losses too
            done += 1
            if done == steps:
                break
    end = time.perf_counter()
    return end - start, end - loop


def engine(config: str, overrides: list[str], members: int, steps: int) -> tuple[float, float, int]:
    """The engine on the same work, seconds (whole call, vmapped steps only) and its member-steps; the
    members' seeds cycle as a study's do (0, 1, 2 for 3 seeds)."""
    from autoinit.tuner.population.engine import EngineTimes, Member, train_population
    from autoinit.tuner.sources.config import TuneConfig

    start = time.perf_counter()
    cfg = TuneConfig(config, [*overrides, f"--tune.steps={steps}"])
    seeds = cfg.settings.seeds
    times = EngineTimes()
    train_population(
        cfg, [Member(scheme="kaiming_normal", gain=1.0, seed=i % seeds) for i in range(members)], times=times
    )
    return time.perf_counter() - start, times.steps, times.member_steps


def threads_for(config: str, overrides: list[str], members: int, threads: int) -> int:
    """The thread count the engine trains this population on (both sides get it)."""
    import torch

    from autoinit import data
    from autoinit.tuner.common.threads import step_flops
    from autoinit.tuner.sources.config import TuneConfig

    model, datamodule = TuneConfig(config, overrides).build()
    stacked = {n: p.expand(members, *p.shape) for n, p in model.named_parameters()}
    torch.set_num_threads(threads)
    return 1 if step_flops(stacked, data.first_batch(model, datamodule)) < 5e9 else threads


def versus(name: str, config: str, overrides: list[str], members: int, steps: int, threads: int) -> None:
    """Engine against the hand-written loop, alternating, best of two each."""
    import torch

    torch.set_num_threads(threads_for(config, overrides, members, threads))
    engine(config, overrides, min(2, members), 2)  # warm-up
    reference(config, overrides, min(2, members), 2)
    ours, ref = [], []
    for _ in range(2):
        ours.append(engine(config, overrides, members, steps))
        ref.append(reference(config, overrides, members, steps))
    whole, loop, member_steps = min(ours)
    ref_whole, ref_loop = min(ref)
    work = members * steps
    print(
        f"| {name}, {members} members × {steps} steps, {torch.get_num_threads()} thread(s) "
        f"| {work / ref_whole:.3g} / {work / ref_loop:.3g} | {work / whole:.3g} / {member_steps / loop:.3g} "
        f"| {whole / ref_whole:.2f}× / {loop / ref_loop * work / member_steps:.2f}× |"
    )


def peak_rss(config: str, overrides: list[str], members: int, threads: int) -> None:
    """Peak RSS of this process after one population (``members``; 0: the tuner's sizing) trains 2 steps."""
    import resource

    import torch

    from autoinit.tuner.population.engine import Member, train_population
    from autoinit.tuner.population.trials import population_size
    from autoinit.tuner.sources.config import TuneConfig

    torch.set_num_threads(threads)
    cfg = TuneConfig(config, overrides)
    members = members or population_size(cfg)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    train_population(cfg, [Member(scheme="kaiming_normal", gain=1.0, seed=i % 3) for i in range(members)], steps=2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{members} members: peak RSS {peak / 1024:.0f} MiB (before the population: {before / 1024:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--members", type=int, default=60)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--engine-only", action="store_true")
    parser.add_argument("--command-only", action="store_true", help="only the whole commands, not the engine")
    parser.add_argument("--large", default="--model.init_args.width=1024 --model.init_args.depth=30")
    parser.add_argument("--large-members", type=int, default=4)
    parser.add_argument("--large-steps", type=int, default=5)
    parser.add_argument("--rss", type=int, help="only the peak RSS of a population of this many members (0: sized)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.drive:
        sys.exit(drive(args.drive, args.overrides))
    if args.rss is not None:
        peak_rss(args.config, args.overrides, args.rss, args.threads)
        return
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
        print_calls(rows["auto"]["calls"])
    if args.command_only:
        return
    print(
        "\n| engine vs hand-written vmapped loop | reference member-steps/s (whole / loop) "
        "| engine (whole call / vmapped steps) | engine time over reference (whole / loop) |"
    )
    print("|---|---|---|---|")
    versus("quick-start MLP", args.config, args.overrides, args.members, args.steps, args.threads)
    if args.large:
        large = [*args.overrides, *args.large.split()]
        versus("30×1024 MLP", args.config, large, args.large_members, args.large_steps, args.threads)


if __name__ == "__main__":
    main()
