"""The cost of one tuner trial against a plain PyTorch loop doing the same steps on the same model.

Both are timed at two step counts; the slope is the per-step cost and the intercept the fixed cost per
trial (building the model, data and Trainer, AutoInit, teardown). Run by hand:

    .ci/in-venv python benchmarks/bench_trial_overhead.py [--config configs/quickstart.yaml]

Target: at most 0.3 s fixed cost per trial and at most 10% per-step overhead.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch

from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.trials.trial import freeze_startup_objects, run_trial


def plain_loop(config: TuneConfig, steps: int) -> float:
    start = time.perf_counter()
    pl.seed_everything(0, verbose=False)
    model, data = config.build()
    accel = str(config.trainer_kwargs().get("accelerator", "cpu"))
    device = torch.device(
        "cuda" if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()) else "cpu"
    )
    model.to(device)
    data.setup("fit")
    loader = data.train_dataloader()
    optimizer = model.configure_optimizers()
    optimizer = optimizer[0] if isinstance(optimizer, (list, tuple)) else optimizer
    done = 0
    while done < steps:
        for batch in loader:
            batch = [t.to(device, non_blocking=True) for t in batch]
            loss = model.training_step(batch, done)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            float(loss)  # the tuner reads every step's loss too
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def trial(config: TuneConfig, steps: int) -> float:
    config.settings.steps, config.settings.seeds = steps, 1
    return run_trial(config, "kaiming_normal", 1.0).seconds


def population(config: TuneConfig, steps: int, members: int = 60) -> float:
    """A population of ``members`` trained ``steps`` steps; divided by ``members``: the cost per member."""
    from autoinit.tuner.population.engine import Member, train_population

    start = time.perf_counter()
    train_population(config, [Member(scheme="kaiming_normal", gain=1.0, seed=i) for i in range(members)], steps=steps)
    return (time.perf_counter() - start) / members


def fit(fn, config, small: int, large: int, repeats: int) -> tuple[float, float]:
    t_small = statistics.median(fn(config, small) for _ in range(repeats))
    t_large = statistics.median(fn(config, large) for _ in range(repeats))
    per_step = (t_large - t_small) / (large - small)
    return t_small - per_step * small, per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=220)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. --model.init_args.width=256")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TuneConfig(args.config, args.overrides)
    freeze_startup_objects()  # as `autoinit tune` does before its trials
    trial(config, 5)  # warm-up: imports, first Trainer
    plain_loop(config, 5)
    fixed_t, step_t = fit(trial, config, args.small, args.large, args.repeats)
    fixed_p, step_p = fit(plain_loop, config, args.small, args.large, args.repeats)
    fixed_m, step_m = fit(population, config, args.small, args.large, args.repeats)
    extra = " ".join(args.overrides)
    print(f"config: {args.config} {extra}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print("| | fixed cost per trial (s) | per step (ms) |")
    print("|---|---|---|")
    print(f"| plain PyTorch loop | {fixed_p:.3f} | {step_p * 1e3:.2f} |")
    print(f"| autoinit trial | {fixed_t:.3f} | {step_t * 1e3:.2f} |")
    print(f"| overhead | {fixed_t - fixed_p:+.3f} s | {100 * (step_t / step_p - 1):+.1f}% |")
    print(
        f"| population of 60, per member | {fixed_m:.3f} | {step_m * 1e3:.2f} ({step_p / step_m:.1f}× the plain loop) |"
    )


if __name__ == "__main__":
    main()
