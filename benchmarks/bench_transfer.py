"""Tune small, train big: does the pick of a study on a proxy (width/8, depth/4) transfer to the full model, and
at what cost?

Per template: a study on the proxy (``tune.proxy``) with its check on the full model, and the same study run
directly on the full model (same schemes, gains, steps, seeds, search). Reported: the direct study's pick and
score; the proxy's pick, its score on the full model (the check's), what best.yaml recommends and its score;
the gap of the recommended init's score to the direct pick's (the target: within 2%); and the cost — the proxy
study plus its check against the direct study, in wall seconds (end to end, as a user waits) and in full-model
member-steps. Run by hand (2 CPU cores, about 5 minutes):

    python benchmarks/bench_transfer.py            # writes benchmarks/results/transfer.md
    python benchmarks/bench_transfer.py --quick    # a smoke test
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from rich.console import Console

from autoinit.tuner.report.transfer import study_cost
from autoinit.tuner.report.verdicts import recommended
from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.proxy import PROXY_SUFFIX

DIGITS = {"class_path": "autoinit.templates.DigitsData", "init_args": {"flat": True, "batch_size": 64}}


def mlp(depth: int, width: int) -> dict:
    args = {"in_features": 64, "classes": 10, "depth": depth, "width": width, "activation": "relu", "lr": 0.02}
    return {"class_path": "autoinit.templates.DeepMLP", "init_args": args}


def residual(blocks: int, width: int) -> dict:
    args = {"in_features": 64, "classes": 10, "blocks": blocks, "width": width, "lr": 0.05}
    return {"class_path": "autoinit.templates.ResidualMLP", "init_args": args}


# name: (full model, proxy overrides (width/8, depth/4), schemes: every built-in that applies)
TEMPLATES = {
    "ReLU MLP, depth 16, width 128": (
        mlp(16, 128),
        {"model.init_args.depth": 4, "model.init_args.width": 16},
        "all",
    ),
    "residual MLP, 16 blocks, width 128": (
        residual(16, 128),
        {"model.init_args.blocks": 4, "model.init_args.width": 16},
        "all",
    ),
}


@dataclass
class Outcome:
    name: str
    direct_pick: str
    direct_score: float
    direct_recommends: str
    direct_seconds: float
    direct_member_steps: int
    proxy_pick: str
    pick_on_full: float | None
    verdict: str
    recommends: str
    recommended_score: float | None
    proxy_seconds: float
    check_seconds: float
    proxy_member_steps: int
    check_member_steps: int
    estimated_share: float | None

    @property
    def gap(self) -> float | None:
        """How far the proxy's pick scores on the full model above the direct study's pick (lower: better)."""
        if self.pick_on_full is None:
            return None
        return (self.pick_on_full - self.direct_score) / abs(self.direct_score)

    @property
    def cost_share(self) -> float:
        return (self.proxy_seconds + self.check_seconds) / self.direct_seconds


def _config(folder: Path, name: str, model: dict, tune_keys: dict) -> TuneConfig:
    cfg = {"model": model, "data": DIGITS, "trainer": {"accelerator": "cpu", "devices": 1}, "tune": tune_keys}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path)


def _label(point: dict) -> str:
    return point["scheme"] if point["scheme"] == "as_built" else f"{point['scheme']}·{point['gain']:.3g}"


def run_one(name: str, model: dict, proxy: dict, schemes: list[str] | str, tune_keys: dict, folder: Path) -> Outcome:
    quiet = Console(file=io.StringIO(), width=160)
    keys = {**tune_keys, "schemes": schemes}
    slug = name.split(",")[0].replace(" ", "_")
    direct = _config(folder, slug, model, {**keys, "output": str(folder / f"{slug}-direct")})
    start = time.perf_counter()
    assert tune(direct, quiet) == 0
    direct_seconds = time.perf_counter() - start
    best = yaml.safe_load((direct.output / "best.yaml").read_text())
    import optuna

    from autoinit.tuner.storage import backend as storage

    study = optuna.load_study(
        study_name=direct.study_name, storage=storage.open_storage(direct.settings, direct.output)
    )
    direct_steps, _ = study_cost(study)

    full = _config(folder, slug + "_p", model, {**keys, "output": str(folder / f"{slug}-full"), "proxy": proxy})
    start = time.perf_counter()
    assert tune(full, quiet) == 0
    total = time.perf_counter() - start
    out = full.output.with_name(full.output.name + PROXY_SUFFIX)
    pbest = yaml.safe_load((out / "best.yaml").read_text())
    t = pbest["transfer"]
    by_role = {role: row for row in t["rows"] for role in row["roles"]}
    rec = pbest["recommends"]
    cost = t["cost"]
    check_seconds = cost["check_seconds"]
    return Outcome(
        name=name,
        direct_pick=_label(best),
        direct_score=best["score"],
        direct_recommends=_label(recommended(best)),
        direct_seconds=direct_seconds,
        direct_member_steps=direct_steps,
        proxy_pick=_label(pbest),
        pick_on_full=by_role["pick"]["score"],
        verdict=t["verdict"].replace("_", " "),
        recommends=f"{rec['role'].replace('_', '-')}: {_label(rec)}",
        recommended_score=by_role[rec["role"]]["score"],
        proxy_seconds=total - check_seconds,  # end to end: the proxy study with its checks and outputs
        check_seconds=check_seconds,
        proxy_member_steps=cost["proxy_member_steps"],
        check_member_steps=cost["check_member_steps"],
        estimated_share=cost["share_of_full_study"],
    )


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table(outcomes: list[Outcome], tune_keys: dict) -> str:
    head = (
        "| model | direct pick (AUC) | direct recommends | proxy pick | its AUC on full | gap | verdict | "
        "proxy recommends (AUC) | "
        "proxy+check s | direct s | time share | best.yaml's estimate | member-steps proxy+check / direct |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {o.name} | {o.direct_pick} ({o.direct_score:.4g}) | {o.direct_recommends} | {o.proxy_pick} | "
        f"{_fmt(o.pick_on_full, '.4g')} | {_fmt(o.gap, '+.1%')} | {o.verdict} | "
        f"{o.recommends} ({_fmt(o.recommended_score, '.4g')}) | "
        f"{o.proxy_seconds + o.check_seconds:.0f} | {o.direct_seconds:.0f} | {o.cost_share:.0%} | "
        f"{_fmt(o.estimated_share, '.0%')} | {o.proxy_member_steps}+{o.check_member_steps} / {o.direct_member_steps} |"
        for o in outcomes
    ]
    settings = ", ".join(f"{k}={v}" for k, v in tune_keys.items())
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    return (
        f"# Proxy transfer\n\nSettings: {settings}. Machine: {machine}.\n\n{head}" + "\n".join(lines) + "\n\n"
        "gap: the proxy's pick's AUC on the full model (the check's) above the direct study's pick's, same steps "
        "and seeds (target: within 2%; negative: better). "
        "time share: proxy study + check over the direct study, wall seconds end to end (target: under 25%). "
        "best.yaml's estimate: the share the check estimates without the direct study (the proxy study's "
        "trial seconds + the check's, over the proxy's member-steps at the full model's seconds per member-step, "
        "measured by the check; trial seconds only, where the time share includes each study's fixed costs).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer steps, one template")
    parser.add_argument("--out", default="benchmarks/results/transfer.md")
    args = parser.parse_args()
    tune_keys = {"steps": 25, "seeds": 3, "gain": [0.5, 1.0, 2.0], "search": "halving"}
    templates = dict(TEMPLATES)
    if args.quick:
        tune_keys = {**tune_keys, "steps": 8, "seeds": 2}
        templates = dict(list(templates.items())[:1])
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, proxy, schemes) in templates.items():
            outcomes.append(run_one(name, model, proxy, schemes, tune_keys, Path(tmp)))
            print(f"{name}: done", flush=True)
    text = table(outcomes, tune_keys)
    print(text)
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
