"""The halving search (``tune.search: halving``, the default): screen every scheme × gain cheaply, keep the
best and train them longer over more seeds, then refine their gains — within ``tune.budget``.

The rounds, for ``steps`` S and ``seeds`` K (member-steps: optimizer steps × seeds, the unit of the budget):

- round 0: the model's own init (``as_built``) at the full S × K (the baseline of ``improvement``, never
  pruned), and every other scheme × the gain ladder (one gain for a scheme that takes none;
  :meth:`~autoinit.tuner.sources.settings.TuneSettings.gain_ladder`, × the ``lr_scale`` grid when it is tuned)
  for a prefix of ``p0`` steps with one seed, ``p0`` between S/10 and S/4 so that
  the round costs about 30% of the budget. This round is the screen: no pre-screen pass runs (in a
  population a prefix costs less than one), and no scheme is dropped for being hopeless at gain 1;
- round 1: the best third of round 0 for S/2 steps, one seed (skipped when fewer than 4 points fit);
- round 2: the best third of those (at least 2) at the full S × K;
- rounds 3…: refinement of the gain of the best three schemes at full fidelity: the midpoints (in log
  gain) between each one's best gain and its neighbours on the ladder, then half that step, while the
  budget lasts.

A round keeps the best points by their score at that round's fidelity, learning points before stalled ones
(:func:`~autoinit.tuner.records.scores.is_stalled`: a flat loss must not outrank another's first-step
transient), one of two points that trained bit for bit alike (two schemes drawing the same weights on this
model), and never drops a point within noise of the last one it keeps while the budget lasts (round 2's ties
before refinement): the cut is extended by every point whose score is within ``NOISE_Z`` standard errors of
the cut's (the seed spread measured on this study's learning multi-seed trials, else :data:`NOISE_PRIOR`).
Equal scores are ordered by a hash of the point and ``sampler_seed``, never by trial order. A round whose
points all failed does not end the search: the next round is planned from the best points that did complete
(ones that failed at a longer fidelity left out). Lower-fidelity trials are Optuna trials too (state PRUNED,
status ``screened``, their score and fidelity in the record), so the study's best trial is always a fully
trained one.

Every round is queued as Optuna trials (with their fidelity) once the previous round has finished, by
whichever process finds it so under the output folder's claim lock; the rounds already queued are recorded
on the study. So workers, a resume (with a changed budget too: the rounds still to come are planned with the
new one) and machines on one storage share the rounds.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from autoinit.errors import AutoInitError
from autoinit.schemes import get_scheme
from autoinit.tuner.records.record import STUDY_ATTR_HALVING, TrialRecord, TrialStatus, trial_status
from autoinit.tuner.records.stop_rule import Action
from autoinit.tuner.search.base import Search
from autoinit.tuner.search.space import Fidelity, Point
from autoinit.tuner.sources.settings import BASELINE_SCHEME, DEFAULT_BUDGET, LADDER_POINTS, Range, TuneSettings

ROUND_SCREEN = 0
ROUND_LONGER = 1
ROUND_FULL = 2
# Shares of the remaining budget the later rounds may take (the rest is left for refinement).
_SCREEN_SHARE, _LONGER_SHARE, _FULL_SHARE = 0.3, 0.4, 0.7
_KEEP = 3  # each round keeps about a third
_REFINE_SCHEMES = 3
_REFINE_LEVELS = 3
_FULL_POINTS_AT_LEAST = 2  # round 2 trains at least this many points besides the baseline
# A cut keeps the points whose score is within NOISE_Z standard errors of the last kept one: the error of the
# difference of two one-seed scores, √2·σ, with σ the seed spread relative to the score.
NOISE_Z = 1.0
# The relative seed spread assumed before any learning trial was measured over several seeds (a stalled
# baseline's spread says nothing about a learning init's): the quick start's fully trained points spread by
# 1.4–8% over 3 seeds (median 3%), so 2% keeps the near ties without keeping everything.
NOISE_PRIOR = 0.02


@dataclass(frozen=True)
class Measured:
    """A finished trial as the plan sees it: its point, its score at its fidelity (None when it has no
    place in a ranking: failed, diverged, pre-screened), the member-steps it cost, whether its loss stalled
    (:func:`~autoinit.tuner.records.scores.is_stalled`), and its per-seed scores."""

    point: Point
    score: float | None
    cost: int
    stalled: bool = False
    seed_scores: tuple[float, ...] = ()

    def sample_std(self) -> float | None:
        """The sample std (ddof=1) of the per-seed scores; None with fewer than 2 seeds."""
        n = len(self.seed_scores)
        if n < 2:
            return None
        mean = sum(self.seed_scores) / n
        return math.sqrt(sum((v - mean) ** 2 for v in self.seed_scores) / (n - 1))

    def lower_bound(self) -> float:
        """The score less one standard error over seeds (the score itself with one seed)."""
        assert self.score is not None
        std = self.sample_std()
        return self.score if std is None else self.score - std / math.sqrt(len(self.seed_scores))


def gains_of(scheme: str, gains: Sequence[float], anchor: float) -> list[float]:
    """The gains a search tries for ``scheme``: ``gains``, or the anchor alone for a scheme that takes none."""
    return list(gains) if get_scheme(scheme).uses_gain else [anchor]


def grid_member_steps(settings: TuneSettings, schemes: Sequence[str]) -> int:
    """The full grid's cost: schemes × 5 gains (one for a scheme that takes none) × the lr_scale grid × seeds
    × steps."""
    gains = sum(len(gains_of(s, settings.grid_gains(), settings.anchor_gain())) for s in schemes)
    return gains * len(settings.grid_lr_scales()) * settings.seeds * settings.steps


class HalvingPlan:
    """The rounds of a halving search: a pure function of the settings, the schemes and what was measured."""

    def __init__(self, settings: TuneSettings, schemes: Sequence[str]) -> None:
        self.settings, self.schemes = settings, list(schemes)
        s = settings
        self.full = Fidelity(ROUND_FULL, s.steps, s.seeds)
        self.ladder = s.gain_ladder()
        self.lr_scales = s.grid_lr_scales()
        # The baseline is measured in full in round 0: it is no screen point.
        self.screen_points = [
            (scheme, gain, lr)
            for scheme in self.schemes
            if scheme != BASELINE_SCHEME
            for gain in gains_of(scheme, self.ladder, s.anchor_gain())
            for lr in self.lr_scales
        ]
        self.min_prefix = max(1, s.steps // 10)
        grid = grid_member_steps(s, self.schemes)
        self.minimum = (
            len(self.screen_points) * self.min_prefix + (1 + _FULL_POINTS_AT_LEAST) * self.full.member_steps()
        )
        self.share = (
            s.budget if s.budget is not None else max(DEFAULT_BUDGET, math.ceil(1000 * self.minimum / grid) / 1000)
        )
        self.budget = int(self.share * grid)
        n = len(self.screen_points)
        affordable = int(_SCREEN_SHARE * self.budget / n)
        self.prefix = max(self.min_prefix, min(s.steps // 4, affordable))

    def check_budget(self) -> None:
        """One line when the budget cannot pay for round 0, the baseline and two fully trained points."""
        s, need = self.settings, self.minimum
        if self.budget < need:
            share = math.ceil(1000 * need / grid_member_steps(s, self.schemes)) / 1000
            raise AutoInitError(
                f"tune.budget {s.budget} ({self.budget} member-steps) is smaller than the halving search's round 0 "
                f"({len(self.screen_points)} points × {self.min_prefix} steps, plus the model's own init and 2 points "
                f"at {s.steps} steps × {s.seeds} seeds: {need}): give tune.budget >= {share}, or fewer schemes"
            )

    def round_points(self, index: int, measured: Sequence[Measured]) -> list[Point] | None:
        """The points of round ``index`` given the trials of the earlier rounds: [] for a round skipped,
        None once the search is done."""
        if index == ROUND_SCREEN:
            return self._screen()
        spent = sum(m.cost for m in measured)
        left = self.budget - spent
        noise = relative_noise(measured)
        if index == ROUND_LONGER:
            return self._longer(_pool(measured, ROUND_SCREEN), left, noise)
        if index == ROUND_FULL:
            pool = _pool(measured, ROUND_LONGER)
            return self._promote(pool, self.full, left, noise, share=_FULL_SHARE, at_least=_FULL_POINTS_AT_LEAST)
        if not any(
            m.score is not None
            for m in measured
            if m.point.fidelity and m.point.fidelity.is_full(self.settings) and not is_baseline(m.point, self.settings)
        ):
            # every fully trained point failed: train the next-best ones that did complete at a lower fidelity
            pool = _pool(measured, index - 1)
            points = self._promote(
                pool,
                Fidelity(index, self.full.steps, self.full.seeds),
                left,
                noise,
                share=1.0,
                at_least=_FULL_POINTS_AT_LEAST,
            )
            return points or None
        return self._refine(index, measured, left)

    def _screen(self) -> list[Point]:
        s = self.settings
        full = Fidelity(ROUND_SCREEN, s.steps, s.seeds)
        baseline = Point(BASELINE_SCHEME, s.anchor_gain(), s.anchor_lr_scale(), full)
        screen = Fidelity(ROUND_SCREEN, self.prefix, 1)
        return [baseline, *(Point(sc, g, lr, screen) for sc, g, lr in self.screen_points)]

    def _longer(self, screened: Sequence[Measured], left: int, noise: float) -> list[Point]:
        steps = self.settings.steps // 2
        if steps <= self.prefix:
            return []  # nothing between round 0's prefix and the full steps: round 2 comes next
        fidelity = Fidelity(ROUND_LONGER, steps, 1)
        # never into round 2's two fully trained points: the budget check promised them
        room = min(int(_LONGER_SHARE * left), left - _FULL_POINTS_AT_LEAST * self.full.member_steps())
        points = self._promote(screened, fidelity, room, noise, share=1.0, at_least=0)
        return points if len(points) > _KEEP else []

    def _promote(
        self, pool: Sequence[Measured], fidelity: Fidelity, left: int, noise: float, *, share: float, at_least: int
    ) -> list[Point]:
        """The best third of ``pool`` (at least ``at_least``) as ``share`` of ``left`` affords (the rest is the
        later rounds': refinement of the best), then every point within noise of the last one kept, as all of
        ``left`` affords: a tie left unresolved at the cut costs more than a refined gain of the best."""
        ranked = self._ranked(m for m in pool if not is_baseline(m.point, self.settings))
        keep = max(at_least, math.ceil(len(ranked) / _KEEP))
        affordable = int(share * left) // fidelity.member_steps()
        if affordable < at_least:
            affordable = max(0, left) // fidelity.member_steps()
        keep = min(keep, affordable, len(ranked))
        if keep:
            cut = ranked[keep - 1]
            margin = NOISE_Z * math.sqrt(2) * noise * abs(cut.score)
            ties_room = max(affordable, max(0, left) // fidelity.member_steps())
            while (
                keep < min(ties_room, len(ranked))
                and ranked[keep].stalled == cut.stalled
                and ranked[keep].score <= cut.score + margin
            ):
                keep += 1
        return [Point(m.point.scheme, m.point.gain, m.point.lr_scale, fidelity) for m in ranked[:keep]]

    def _refine(self, index: int, measured: Sequence[Measured], left: int) -> list[Point] | None:
        level = index - ROUND_FULL
        gain = self.settings.gain
        if level > _REFINE_LEVELS or not isinstance(gain, Range) or len(self.ladder) < 2:
            return None
        room = max(0, left) // self.full.member_steps()
        full = [m for m in measured if m.point.fidelity is not None and m.point.fidelity.is_full(self.settings)]
        done = {(m.point.scheme, round(m.point.lr_scale, 6), round(math.log(m.point.gain), 3)) for m in full}
        best: dict[str, Measured] = {}
        # schemes by their best lower confidence bound: of two tied schemes, the one that may be better is
        # refined first (the budget often pays for one or two points)
        for m in self._ranked(full, optimistic=True):
            best.setdefault(m.point.scheme, m)
        step = (math.log(self.ladder[1] / self.ladder[0]) if gain.log else None, self.ladder[1] - self.ladder[0])
        per_scheme: list[list[Point]] = []
        for m in list(best.values())[:_REFINE_SCHEMES]:
            mine = []
            for direction in (-1, 1):
                if gain.log:
                    g = m.point.gain * math.exp(direction * step[0] / 2**level)
                else:
                    g = m.point.gain + direction * step[1] / 2**level
                g = float(f"{gain.clamp(g):.4g}")
                key = (m.point.scheme, round(m.point.lr_scale, 6), round(math.log(g), 3))
                if key in done:
                    continue
                done.add(key)
                fidelity = Fidelity(index, self.full.steps, self.full.seeds)
                mine.append(Point(m.point.scheme, g, m.point.lr_scale, fidelity))
            per_scheme.append(mine)
        # one new gain of each scheme before a second of any: when the budget pays for two points, the best
        # two schemes (often tied within noise) each get one, not the first both of its neighbours
        points = [p for tier in itertools.zip_longest(*per_scheme) for p in tier if p is not None]
        return points[:room] or None

    def _ranked(self, pool, *, optimistic: bool = False) -> list[Measured]:
        """``pool``'s scored points, best first: learning before stalled, then by score (by the lower
        confidence bound when ``optimistic``), then by a seeded hash."""
        seed = self.settings.sampler_seed

        def tiebreak(m: Measured) -> int:
            key = f"{seed}:{m.point.scheme}:{m.point.gain:.6g}:{m.point.lr_scale:.6g}".encode()
            return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")

        scored = [m for m in pool if m.score is not None and math.isfinite(m.score)]
        # a stalled point never outranks a learning one: its flat loss can undercut another's first-step
        # transient over a short prefix, and it stays flat
        ranked = sorted(scored, key=lambda m: (m.stalled, m.lower_bound() if optimistic else m.score, tiebreak(m)))
        # Two schemes that draw the same weights on this model (delta_orthogonal is orthogonal on a Linear or
        # an LSTM) train bit for bit alike: the first of such twins stands for both, so a cut's slots and the
        # refinement's schemes go to distinct trainings (the quick start spent 18% of its budget on the twin).
        seen: set[tuple[Fidelity | None, float, tuple[float, ...]]] = set()
        distinct = []
        for m in ranked:
            key = (m.point.fidelity, m.score, m.seed_scores)
            if not m.seed_scores or key not in seen:  # (every trial records its seeds' scores)
                seen.add(key)
                distinct.append(m)
        return distinct


def relative_noise(measured: Sequence[Measured]) -> float:
    """The spread of a score over init seeds, relative to the score: the median, over the measured trials
    that learned (not stalled) with at least 2 seeds, of their sample std / |mean|; :data:`NOISE_PRIOR` when
    there are none (round 0's one-seed points say nothing of it, and a stalled baseline's near-zero spread
    nothing of a learning init's)."""
    spreads = [
        std / abs(m.score)
        for m in measured
        if not m.stalled
        and (std := m.sample_std()) is not None
        and m.score is not None
        and math.isfinite(m.score)
        and m.score != 0
    ]
    if not spreads:
        return NOISE_PRIOR
    spreads.sort()
    mid = len(spreads) // 2
    return spreads[mid] if len(spreads) % 2 else (spreads[mid - 1] + spreads[mid]) / 2


def _pool(measured: Sequence[Measured], last: int) -> list[Measured]:
    """What a round is promoted from: the completed points of the latest round up to ``last`` in which any
    completed (so a round whose points all failed falls back to the round before), less the points that
    failed at a later fidelity than the one they completed at."""
    failed = {_key(m.point) for m in measured if m.score is None and m.point.fidelity is not None}
    for r in range(last, ROUND_SCREEN - 1, -1):
        done = [
            m for m in measured if m.point.fidelity is not None and m.point.fidelity.round == r and m.score is not None
        ]
        if r < last:
            done = [m for m in done if _key(m.point) not in failed]
        if done:
            return done
    return []


def _key(point: Point) -> tuple[str, float, float]:
    return (point.scheme, round(point.gain, 6), round(point.lr_scale, 6))


def is_baseline(point: Point, settings: TuneSettings) -> bool:
    """The model's own init at full fidelity in round 0: the baseline every improvement is measured against."""
    f = point.fidelity
    return f is not None and f.round == ROUND_SCREEN and f.is_full(settings)


def measured_of(trial: FrozenTrial) -> Measured | None:
    """A finished trial as :class:`Measured` (None while it waits or runs)."""
    if trial.state in (TrialState.WAITING, TrialState.RUNNING):
        return None
    record = TrialRecord.of(trial)
    status = trial_status(trial)
    fidelity = Fidelity.from_attr(record.fidelity)
    point = Point(
        str(trial.params.get("scheme", "")),
        float(trial.params.get("gain", record.fixed_gain if record.fixed_gain is not None else 1.0)),
        float(trial.params.get("lr_scale", 1.0)),
        fidelity,
    )
    score: float | None = None
    if status == TrialStatus.COMPLETE:
        score = trial.value
    elif status == TrialStatus.SCREENED:
        score = record.score
    if record.duplicate_of is not None:
        cost = 0
    elif status == TrialStatus.PRESCREENED:
        cost = 1
    else:
        cost = record.steps_trained or 0
    return Measured(point, score, cost, record.stalled, tuple(record.seed_scores or ()))


class HalvingSearch(Search):
    """Drives a study through the rounds of a :class:`HalvingPlan`: called under the claim lock by every
    trial process, it queues the next round when the last one has finished and says what to do. Its trials
    are all queued (the sampler never proposes one), it prunes by its rounds, and its round 0 is the screen
    (no pre-screen pass: a scheme hopeless at gain 1 may train well at another gain)."""

    prescreens = False

    def __init__(self, settings: TuneSettings, schemes: Sequence[str]) -> None:
        super().__init__(settings, schemes)
        self.plan = HalvingPlan(settings, schemes)

    @classmethod
    def check_settings(cls, settings: TuneSettings) -> None:
        """A gain range must give the ladder its ``LADDER_POINTS`` distinct gains."""
        if isinstance(settings.gain, Range):
            ladder = settings.gain_ladder()
            if len(set(ladder)) < LADDER_POINTS:
                raise AutoInitError(
                    f"tune.gain range {settings.gain.low}–{settings.gain.high} is too narrow for the halving "
                    f"search's {LADDER_POINTS}-point gain ladder ({ladder}): widen it, give a list of gains, or "
                    "one fixed gain"
                )

    def check(self) -> None:
        self.plan.check_budget()

    def total(self, study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False))

    def status(self, study: optuna.Study, done: int) -> str:
        return f" — {self.describe(study)}"

    def next_action(self, study: optuna.Study) -> tuple[Action, int]:
        """(RUN, trials queued to take), (WAIT, 0) while the round's last trials run elsewhere, or
        (STOP, 0) once no round is left."""
        trials = study.get_trials(deepcopy=False)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if waiting:
            return Action.RUN, waiting
        if any(t.state == TrialState.RUNNING for t in trials):
            return Action.WAIT, 0
        queued = queued_rounds(study)
        index = len(queued)
        measured = [m for t in trials if (m := measured_of(t)) is not None]
        earlier = _before_round(measured, index)
        points = self.plan.round_points(index, earlier)
        if points is None:
            return Action.STOP, 0
        # A round half-queued by a process that died: queue only what is missing.
        present = {
            (m.point.scheme, m.point.gain, m.point.lr_scale, m.point.fidelity)
            for m in measured
            if m.point.fidelity is not None and m.point.fidelity.round == index
        }
        missing = [p for p in points if (p.scheme, p.gain, p.lr_scale, p.fidelity) not in present]
        for p in missing:
            study.enqueue_trial(_params(self.plan.settings, p), user_attrs=_attrs(p, self.plan))
        study.set_user_attr(STUDY_ATTR_HALVING, [*queued, len(points)])
        return (Action.RUN, len(missing)) if missing else self.next_action(study)

    def finished(self, study: optuna.Study) -> bool:
        """Whether the search is over: nothing queued or running, and no round left to queue."""
        trials = study.get_trials(deepcopy=False)
        if not trials or any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials):
            return False
        measured = [m for t in trials if (m := measured_of(t)) is not None]
        index = len(queued_rounds(study))
        while True:
            earlier = _before_round(measured, index)
            points = self.plan.round_points(index, earlier)
            if points is None:
                return True
            if points:
                return False
            index += 1  # a round that would be skipped

    def describe(self, study: optuna.Study | None = None) -> str:
        """The first line of a run: what round 0 ran at (a resume with another budget plans its later rounds
        anew, but its round 0 ran at the prefix of the budget it started with), and the budget."""
        p = self.plan
        s = p.settings
        screened = len({scheme for scheme, _, _ in p.screen_points})
        ran = [
            f.steps
            for t in (study.get_trials(deepcopy=False) if study is not None else [])
            if (f := Fidelity.from_attr(TrialRecord.of(t).fidelity)) is not None
            and f.round == ROUND_SCREEN
            and not f.is_full(s)
        ]
        prefix = ran[0] if ran else p.prefix
        return (
            f"halving search: {len(p.screen_points)} points ({screened} schemes × {len(p.ladder)} gains"
            + (f" × {len(p.lr_scales)} lr scales" if len(p.lr_scales) > 1 else "")
            + ") "
            f"screened at {prefix} steps × 1 seed, the best trained longer, then at {s.steps} steps × {s.seeds} "
            f"seeds beside the model's own init; budget {p.budget} member-steps ({p.share:g} of the grid"
            + (", raised from 0.25 for this small study)" if s.budget is None and p.share > DEFAULT_BUDGET else ")")
        )


def _before_round(measured: Sequence[Measured], index: int) -> list[Measured]:
    """The measured trials of the rounds before ``index`` (what round ``index`` is planned from)."""
    return [m for m in measured if m.point.fidelity is None or m.point.fidelity.round < index]


def queued_rounds(study: optuna.Study) -> list[int]:
    """The number of points of each round queued so far."""
    return list(study.user_attrs.get(STUDY_ATTR_HALVING) or [])


def spent_member_steps(study: optuna.Study) -> int:
    return sum(m.cost for t in study.get_trials(deepcopy=False) if (m := measured_of(t)) is not None)


def _params(settings: TuneSettings, point: Point) -> dict[str, object]:
    params: dict[str, object] = {"scheme": point.scheme}
    if settings.gain_is_searched:
        params["gain"] = point.gain
    if settings.lr_scale is not None:
        params["lr_scale"] = point.lr_scale
    return params


def _attrs(point: Point, plan: HalvingPlan) -> dict[str, object]:
    assert point.fidelity is not None
    values: dict[str, object] = {"fidelity": point.fidelity.to_attr()}
    if is_baseline(point, plan.settings):
        values["anchor"] = True  # the model's own init, the baseline: never pre-screened or pruned
    return TrialRecord.attrs(**values)
