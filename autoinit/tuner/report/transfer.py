"""The transfer check: after a study on a proxy of the model (:mod:`autoinit.tuner.sources.proxy`), the proxy's pick,
the model's own init (``as_built``, the baseline) and the proxy's runner-up are trained on the full model,
``tune.steps`` × ``tune.seeds`` each, and a verdict says whether the pick transferred.

What carries over, and how. The pick is a scheme, its options, a gain and (when tuned) an lr_scale:

- the scheme is applied to the full model as to any model, and every built-in computes its scale at init
  time from the model it initializes, so its width and depth dependence re-derives for the full model by
  construction: the fans (``kaiming_*``, ``xavier_*``, ``lecun_*``, ``orthogonal``, ``auto``), the depth and
  branch count of a residual model (``fixup``'s L^(−1/(2m−2)), ``depth_scaled``'s and ``auto``'s 1/√(2L),
  ``zero_residual``), the measured activations (``lsuv``, ``yam_chow``), the model's own draws (``as_built``);
- the gain and the lr_scale are plain numbers, carried as they are: what may not transfer, and what the
  check tests.

The verdict (Welch's test on the per-seed scores, as :mod:`autoinit.tuner.report.verdicts`), about the pick on the
full model against the model's own init:

- **transferred**: it beats the own init (:func:`beats`: beyond noise; or, where no test is possible — one
  seed, the own init stalled or diverged — by a lower score while learning itself);
- **did not transfer**: it diverged, failed or stalled, or scores worse than the own init beyond noise;
- **tied**: otherwise (and when the proxy's pick is the own init itself).

best.yaml then recommends the pick when it transferred; else the runner-up when it beats the own init by the
same rule; else the own init. The check is stored with the proxy study (by the full config's hash and the
points it measured), so a resumed or repeated tune reads it back instead of training again.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from rich.console import Console

from autoinit.errors import AutoInitError, one_line
from autoinit.tuner.records.best import Init, Pick
from autoinit.tuner.records.record import TrialRecord, TrialStatus, transfer_attr
from autoinit.tuner.records.scores import is_stalled, trial_score
from autoinit.tuner.report.outputs import Row, comparable, ranking
from autoinit.tuner.report.verdicts import SIGNIFICANCE_LEVEL, significant, welch_p
from autoinit.tuner.sources.settings import BASELINE_SCHEME
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.trials.trial import TrialResult, run_trial


class Role(str, enum.Enum):
    """What a point of the check is to the proxy study."""

    PICK = "pick"
    BASELINE = "baseline"
    RUNNER_UP = "runner_up"


class Verdict(str, enum.Enum):
    """Whether the proxy's pick transferred to the full model."""

    TRANSFERRED = "transferred"
    TIED = "tied"
    NOT_TRANSFERRED = "not_transferred"


@dataclass(kw_only=True)
class CheckRow:
    """One point trained on the full model (a :class:`~autoinit.tuner.report.verdicts.Scored`). ``roles``: the pick
    may be the baseline itself, measured once."""

    roles: list[Role]
    number: int
    scheme: str
    gain: float
    lr_scale: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    status: TrialStatus = TrialStatus.COMPLETE
    score: float | None = None
    score_std: float | None = None
    stalled: bool = False
    seconds: float = 0.0
    member_steps: int = 0
    error: str = ""
    full: bool = True  # trained at the check's full steps × seeds

    @property
    def learns(self) -> bool:
        return self.status == TrialStatus.COMPLETE and self.score is not None and not self.stalled

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "roles": [r.value for r in self.roles],
            "scheme": self.scheme,
            "gain": round(self.gain, 6),
            "lr_scale": round(self.lr_scale, 6),
            "options": dict(self.options),
            "status": self.status.value,
            "score": self.score,
            "score_std": self.score_std,
            "stalled": self.stalled,
            "seconds": round(self.seconds, 3),
            "member_steps": self.member_steps,
        }
        if self.error:
            out["error"] = self.error
        return out


# ---- the verdict -------------------------------------------------------------------------------------------


def beats(row: CheckRow, baseline: CheckRow, seeds: int) -> str | None:
    """How ``row`` beats the model's own init on the full model, or None when it does not: it learns
    (complete, not stalled) and scores below it beyond the spread over seeds (Welch); where no test is
    possible (one seed, the own init stalled) a lower score decides; an own init that diverged or failed is
    beaten by any row that learns."""
    if row is baseline or not row.learns or row.score is None:
        return None
    if baseline.status != TrialStatus.COMPLETE or baseline.score is None:
        return f"the model's own init {baseline.status.value}"
    sig = significant(row, baseline, seeds)
    if sig:
        return f"beyond noise (Welch, {seeds} seeds)"
    if sig is None and row.score < baseline.score:
        why = "one seed" if seeds < 2 else "the model's own init stalled" if baseline.stalled else "no spread"
        return f"a lower score ({why}: no test over seeds)"
    return None


def _worse(row: CheckRow, baseline: CheckRow, seeds: int) -> bool:
    """``row`` scores above the own init beyond the spread over seeds."""
    if baseline.score is None or row.score is None or row.score <= baseline.score:
        return False
    p = welch_p(row, baseline, seeds)
    return p is not None and p < SIGNIFICANCE_LEVEL


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    recommends: Role


def judge(pick: CheckRow, baseline: CheckRow, runner_up: CheckRow | None, seeds: int) -> Judgement:
    """The verdict on the pick and the init best.yaml recommends (see the module's docstring)."""
    test = f"Welch, {seeds} seeds" if seeds > 1 else "one seed: by score"
    how = beats(pick, baseline, seeds)
    if pick is baseline:
        verdict, reason = Verdict.TIED, "the proxy's pick is the model's own init"
    elif how is not None:
        verdict, reason = Verdict.TRANSFERRED, f"it beats the model's own init on the full model: {how}"
    elif pick.status != TrialStatus.COMPLETE:
        verdict, reason = Verdict.NOT_TRANSFERRED, f"it {pick.status.value} on the full model"
    elif pick.stalled:
        verdict, reason = Verdict.NOT_TRANSFERRED, "its loss stalled on the full model"
    elif _worse(pick, baseline, seeds):
        verdict, reason = Verdict.NOT_TRANSFERRED, f"it is worse than the model's own init beyond noise ({test})"
    else:
        verdict, reason = Verdict.TIED, f"not beyond noise from the model's own init on the full model ({test})"
    if verdict == Verdict.TRANSFERRED:
        role = Role.PICK
    elif runner_up is not None and beats(runner_up, baseline, seeds) is not None:
        role = Role.RUNNER_UP
    else:
        role = Role.BASELINE
    return Judgement(verdict, reason, role)


# ---- the points ----------------------------------------------------------------------------------------------


def _key(scheme: str, gain: float, lr_scale: float) -> tuple[str, float, float]:
    return scheme, round(float(gain), 6), round(float(lr_scale), 6)


def check_points(pick: Pick, rows: list[Row]) -> dict[Role, dict[str, Any]]:
    """The points the check trains: the proxy's pick, the model's own init, and the runner-up — the best
    complete point of a scheme other than the pick's and the own init (a neighbouring gain of the pick's
    scheme tells less), else the pick's scheme's next-best point, when the study has one."""
    picked = pick.init
    base = pick.baseline_init or Init(scheme=BASELINE_SCHEME)
    points = {Role.PICK: _point(picked), Role.BASELINE: {**_point(base), "options": {}}}
    ranked = [r for r in comparable(ranking(rows)) if r.scheme != BASELINE_SCHEME]
    others = [r for r in ranked if r.scheme != picked.scheme]
    same = [
        r for r in ranked if _key(r.scheme, r.gain, r.lr_scale) != _key(picked.scheme, picked.gain, picked.lr_factor)
    ]
    if others or same:
        r = (others or same)[0]
        points[Role.RUNNER_UP] = {"scheme": r.scheme, "gain": r.gain, "lr_scale": r.lr_scale, "options": {}}
    return points


def _point(init: Init) -> dict[str, Any]:
    """A point the check trains."""
    return {"scheme": init.scheme, "gain": init.gain, "lr_scale": init.lr_factor, "options": dict(init.options)}


# Trains one point on the full model (run_trial; a seam for tests).
Train = Callable[..., TrialResult]


def measure(full: TrialSource, points: dict[Role, dict[str, Any]], train: Train = run_trial) -> dict[Role, CheckRow]:
    """Train each distinct point on the full model, ``tune.steps`` × ``tune.seeds``; a point that raises
    a one-line error is a failed row (the others still run)."""
    s = full.settings
    measured: dict[tuple[str, float, float], CheckRow] = {}
    out: dict[Role, CheckRow] = {}
    for role, p in points.items():
        key = _key(p["scheme"], p["gain"], p.get("lr_scale", 1.0))
        if key in measured:
            out[role] = measured[key]
            measured[key].roles.append(role)
            continue
        row = CheckRow(
            roles=[role], number=len(measured), scheme=key[0], gain=key[1], lr_scale=key[2], options=p["options"]
        )
        try:
            result = train(full, row.scheme, row.gain, lr_scale=row.lr_scale, **row.options)
        except AutoInitError as exc:
            row.status, row.error = TrialStatus.FAILED, one_line(exc)
        else:
            row.seconds = result.seconds
            row.member_steps = sum(len(c) for c in result.curves)
            row.status = result.status
            if result.status == TrialStatus.COMPLETE:
                row.score, row.score_std = trial_score(result.curves, s.objective, s.threshold)
                row.stalled = is_stalled(result.curves)
        measured[key] = out[role] = row
    return out


# ---- cost ------------------------------------------------------------------------------------------------------


def study_cost(study: optuna.Study) -> tuple[int, float]:
    """Member-steps (optimizer steps × seeds) the study trained, and its training seconds; a trial that
    copied an earlier one's result cost nothing."""
    steps, seconds = 0, 0.0
    for t in study.get_trials(deepcopy=False):
        r = TrialRecord.of(t)
        if r.duplicate_of is None:
            steps += r.steps_trained or 0
            seconds += r.seconds or 0.0
    return steps, seconds


def cost(study: optuna.Study, rows: list[CheckRow]) -> dict[str, Any]:
    """The proxy study's and the check's cost against what the same study on the full model would have cost:
    the proxy study's member-steps at the full model's seconds per member-step, measured by the check
    (trained as sequential trials, as the check is)."""
    proxy_steps, proxy_seconds = study_cost(study)
    check_steps, check_seconds = sum(r.member_steps for r in rows), sum(r.seconds for r in rows)
    per_step = check_seconds / check_steps if check_steps else None
    full_seconds = proxy_steps * per_step if per_step is not None else None
    spent = proxy_seconds + check_seconds
    return {
        "proxy_member_steps": proxy_steps,
        "proxy_seconds": round(proxy_seconds, 3),
        "check_member_steps": check_steps,
        "check_seconds": round(check_seconds, 3),
        "full_study_member_steps": proxy_steps,
        "full_study_seconds_estimate": None if full_seconds is None else round(full_seconds, 3),
        "share_of_full_study": round(spent / full_seconds, 4) if full_seconds else None,
    }


# ---- the record in best.yaml ---------------------------------------------------------------------------------------


def _recommended_point(row: CheckRow, role: Role) -> dict[str, Any]:
    return {
        "role": role.value,
        "scheme": row.scheme,
        "gain": row.gain,
        "options": dict(row.options),
        "lr_scale": row.lr_scale,
    }


def record(full: TrialSource, study: optuna.Study, rows: dict[Role, CheckRow]) -> dict[str, Any]:
    """best.yaml's ``transfer`` (with what it recommends) from the check's rows."""
    seeds = full.settings.seeds
    j = judge(rows[Role.PICK], rows[Role.BASELINE], rows.get(Role.RUNNER_UP), seeds)
    distinct = list({id(r): r for r in rows.values()}.values())
    return {
        "verdict": j.verdict.value,
        "reason": j.reason,
        "recommends": _recommended_point(rows[j.recommends], j.recommends),
        "rows": [r.as_dict() for r in distinct],
        "steps": full.settings.steps,
        "seeds": seeds,
        "objective": full.settings.objective,
        "cost": cost(study, distinct),
        "full_config_sha256": full.sha256(),
    }


def _points_of(stored: dict[str, Any]) -> dict[str, tuple[str, float, float]]:
    rows = stored.get("rows", [])
    return {role: _key(r["scheme"], r["gain"], r.get("lr_scale", 1.0)) for r in rows for role in r["roles"]}


def stored(full: TrialSource, study: optuna.Study, points: dict[Role, dict[str, Any]]) -> dict[str, Any] | None:
    """The check stored with the proxy study for this full config and these points, or None."""
    found = study.user_attrs.get(transfer_attr(full.sha256()))
    want = {role.value: _key(p["scheme"], p["gain"], p.get("lr_scale", 1.0)) for role, p in points.items()}
    return found if isinstance(found, dict) and _points_of(found) == want else None


def with_transfer(pick: Pick, full: TrialSource, transfer: dict[str, Any] | None) -> Pick:
    """The proxy study's pick with ``proxy``, ``transfer`` and ``recommends`` (and ``keep_baseline``
    following the recommendation); without a check, only ``proxy``."""
    out = dataclasses.replace(pick, proxy=dict(full.settings.proxy or {}))
    if transfer is None:
        return out
    return dataclasses.replace(
        out,
        transfer={k: v for k, v in transfer.items() if k != "recommends"},
        recommends=dict(transfer["recommends"]),
        keep_baseline=transfer["recommends"]["role"] == Role.BASELINE.value,
    )


def read_back(full: TrialSource, study: optuna.Study, pick: Pick, rows: list[Row]) -> Pick:
    """``pick`` with the stored check (nothing trained)."""
    return with_transfer(pick, full, stored(full, study, check_points(pick, rows)))


def check(full: TrialSource, study: optuna.Study, pick: Pick, rows: list[Row], console: Console) -> Pick:
    """Run (or read back) the check of the proxy study's pick on the full model; the pick with its
    record. The check is stored with the study."""
    points = check_points(pick, rows)
    found = stored(full, study, points)
    if found is not None:
        console.print("[dim]the transfer check of this pick on the full model is read back: nothing trained[/dim]")
        return with_transfer(pick, full, found)
    s = full.settings
    distinct = len({_key(p["scheme"], p["gain"], p.get("lr_scale", 1.0)) for p in points.values()})
    console.print(
        f"checking the pick on the full model: {distinct} points ({', '.join(r.value for r in points)}) × "
        f"{s.seeds} seeds × {s.steps} steps"
    )
    transfer = record(full, study, measure(full, points))
    study.set_user_attr(transfer_attr(full.sha256()), transfer)
    console.print(check_table(transfer))
    return with_transfer(pick, full, transfer)


def check_table(transfer: dict[str, Any]):
    """The check's rows as a console table."""
    from rich.table import Table

    table = Table(title=f"transfer check on the full model: {transfer['verdict'].replace('_', ' ')}")
    for col in ("role", "scheme", "gain", "lr×", "score", "± std", "status", "s"):
        table.add_column(col, justify="left" if col in ("role", "scheme", "status") else "right", no_wrap=True)
    for r in transfer["rows"]:
        status = "stalled" if r["stalled"] and r["status"] == TrialStatus.COMPLETE.value else r["status"]
        table.add_row(
            "+".join(r["roles"]),
            r["scheme"],
            f"{r['gain']:.3g}",
            f"{r['lr_scale']:.3g}",
            "" if r["score"] is None else f"{r['score']:.4g}",
            "" if r["score_std"] is None else f"{r['score_std']:.2g}",
            status,
            f"{r['seconds']:.1f}",
        )
    return table
