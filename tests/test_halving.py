"""The halving search: its rounds (pure), and its driver over an Optuna study (trials told by hand here; the
tuner tests run it end to end)."""

import dataclasses
import itertools
import math

import optuna
import pytest

from autoinit.errors import AutoInitError
from autoinit.tuner.records.record import TrialRecord, TrialStatus
from autoinit.tuner.records.stop_rule import Action
from autoinit.tuner.search.halving import (
    ROUND_FULL,
    ROUND_LONGER,
    ROUND_SCREEN,
    HalvingPlan,
    HalvingSearch,
    Measured,
    grid_member_steps,
    is_baseline,
    queued_rounds,
    spent_member_steps,
)
from autoinit.tuner.search.registry import search_for
from autoinit.tuner.search.space import Fidelity, Point, suggest
from autoinit.tuner.sources.settings import Range, TuneSettings

# As TuneSettings.scheme_names() gives them: the baseline (the model's own init, which takes no gain) first.
SCHEMES = ["as_built", "default", "kaiming_normal", "xavier_uniform", "orthogonal", "lsuv", "lecun_normal"]
# The synthetic landscape: each scheme's best gain and its score there (lower is better).
BEST = {
    "as_built": (1.0, 2.05),
    "default": (1.0, 2.0),
    "kaiming_normal": (1.2, 1.5),
    "xavier_uniform": (1.8, 1.6),
    "orthogonal": (0.9, 1.7),
    "lsuv": (0.55, 1.2),  # the tanh case: the best point sits at a small gain of one scheme
    "lecun_normal": (1.0, 1.9),
}


def synthetic_score(point: Point) -> float:
    """A smooth landscape in log gain, plus a fidelity-dependent offset (a prefix scores higher)."""
    best_gain, best = BEST[point.scheme]
    steps = point.fidelity.steps if point.fidelity else 100
    return best + 2.0 * math.log(point.gain / best_gain) ** 2 + 10.0 / steps


def test_the_gain_ladder_covers_the_range_with_its_ends():
    ladder = TuneSettings().gain_ladder()
    assert len(ladder) == 7 and ladder[0] == 0.5 and ladder[-1] == 2.0
    ratios = [b / a for a, b in itertools.pairwise(ladder)]
    assert max(ratios) / min(ratios) < 1.01  # log-spaced
    assert TuneSettings(gain=Range(0.5, 2.0, log=False)).gain_ladder() == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert TuneSettings(gain=[2.0, 1.0, 1.0]).gain_ladder() == [1.0, 2.0]
    assert TuneSettings(gain=1.3).gain_ladder() == [1.3]


def test_round_zero_is_the_baseline_and_every_scheme_on_the_ladder_for_a_prefix():
    s = TuneSettings(steps=100, seeds=3)
    plan = HalvingPlan(s, SCHEMES)
    points = plan.round_points(ROUND_SCREEN, [])
    baseline, *screen = points
    assert (baseline.scheme, baseline.gain, baseline.fidelity) == ("as_built", 1.0, Fidelity(0, 100, 3))
    assert is_baseline(baseline, s)
    assert len(screen) == (len(SCHEMES) - 1) * 7  # the baseline is measured in full, and takes no gain
    assert {p.fidelity for p in screen} == {Fidelity(ROUND_SCREEN, plan.prefix, 1)}
    assert 10 <= plan.prefix <= 25
    assert plan.budget == int(0.25 * ((len(SCHEMES) - 1) * 5 + 1) * 3 * 100) == 2325
    # round 0 costs about 30% of the budget (its prefix is cut to fit, not below S/10)
    assert len(screen) * plan.prefix <= 0.3 * plan.budget + len(screen)


def test_a_budget_smaller_than_round_zero_is_one_line_naming_a_budget_that_works():
    s = TuneSettings(steps=20, seeds=3, budget=0.05)
    with pytest.raises(AutoInitError) as err:
        HalvingPlan(s, SCHEMES).check_budget()
    msg = str(err.value)
    assert "\n" not in msg and "tune.budget" in msg and "round 0" in msg
    enough = float(msg.split("tune.budget >= ")[1].split(",")[0])
    HalvingPlan(TuneSettings(steps=20, seeds=3, budget=enough), SCHEMES).check_budget()  # the value named works
    with pytest.raises(AutoInitError):
        HalvingPlan(TuneSettings(steps=20, seeds=3, budget=enough * 0.9), SCHEMES).check_budget()


def test_the_default_budget_is_a_quarter_of_the_grid_or_what_a_small_study_needs():
    assert HalvingPlan(TuneSettings(steps=100, seeds=3), SCHEMES).share == 0.25
    small = HalvingPlan(TuneSettings(steps=100, seeds=1), ["as_built", "default", "kaiming_normal"])
    assert small.share > 0.25 and small.budget >= small.minimum
    small.check_budget()
    assert _simulate(small)  # and it runs to the end


def test_settings_refuse_what_halving_cannot_use():
    with pytest.raises(AutoInitError, match=r"tune\.budget must be a positive share"):
        TuneSettings(budget=0)
    with pytest.raises(AutoInitError, match=r"too narrow for the halving search's 7-point gain ladder"):
        search_for(TuneSettings(gain=Range(1.0, 1.001)), SCHEMES)
    search_for(TuneSettings(gain=Range(1.0, 1.001), search="tpe"), SCHEMES)  # a sampled search has no ladder


def _measure(points, cost_of=None):
    return [Measured(p, synthetic_score(p), p.fidelity.member_steps()) for p in points]


def test_each_round_keeps_the_best_third_by_score_at_that_fidelity():
    s = TuneSettings(steps=100, seeds=3)
    plan = HalvingPlan(s, SCHEMES)
    r0 = _measure(plan.round_points(ROUND_SCREEN, []))
    r1 = plan.round_points(ROUND_LONGER, r0)
    screened = sorted((m for m in r0 if not is_baseline(m.point, s)), key=lambda m: m.score)
    assert len(r1) == math.ceil(len(screened) / 3) or len(r1) * 50 <= 0.4 * (plan.budget - sum(m.cost for m in r0))
    assert [(p.scheme, p.gain) for p in r1] == [(m.point.scheme, m.point.gain) for m in screened[: len(r1)]]
    assert {p.fidelity for p in r1} == {Fidelity(ROUND_LONGER, 50, 1)}
    r2 = plan.round_points(ROUND_FULL, r0 + _measure(r1))
    assert 2 <= len(r2) <= math.ceil(len(r1) / 3)
    assert {p.fidelity for p in r2} == {Fidelity(ROUND_FULL, 100, 3)}
    assert (r2[0].scheme, r2[0].gain) == ("lsuv", 0.5)  # the ladder point nearest lsuv's best gain 0.55


@pytest.mark.parametrize(("schemes", "steps"), [(SCHEMES[:4], 40), (SCHEMES[:4], 25)])
def test_round_one_leaves_round_two_its_two_fully_trained_points(schemes, steps):
    # A user's 4-scheme study (40 steps × 2 seeds, the default budget of 400 member-steps): round 1 took 80
    # of the 208 left after round 0, and round 2 could afford one full point (80 each) instead of two.
    s = TuneSettings(steps=steps, seeds=2)
    plan = HalvingPlan(s, schemes)
    r0 = _measure(plan.round_points(ROUND_SCREEN, []))
    r1 = _measure(plan.round_points(ROUND_LONGER, r0))
    r2 = plan.round_points(ROUND_FULL, r0 + r1)
    assert len(r2) >= 2
    assert sum(m.cost for m in r0 + r1) + sum(p.fidelity.member_steps() for p in r2) <= plan.budget


def test_the_first_line_counts_the_lr_scale_grid_in_the_screen():
    tuned = TuneSettings(steps=30, seeds=2, gain=[0.5, 1.0, 2.0], lr_scale=Range(0.5, 2.0, log=True))
    assert "27 points (3 schemes × 3 gains × 3 lr scales) screened" in HalvingSearch(tuned, SCHEMES[:4]).describe()
    plain = TuneSettings(steps=30, seeds=2, gain=[0.5, 1.0, 2.0])
    assert "9 points (3 schemes × 3 gains) screened" in HalvingSearch(plain, SCHEMES[:4]).describe()


def test_equal_scores_are_ordered_by_the_seeded_hash_not_by_trial_order():
    s = TuneSettings(steps=100, seeds=3)
    plan = HalvingPlan(s, SCHEMES)
    fid = Fidelity(ROUND_SCREEN, plan.prefix, 1)
    pool = [Measured(Point(sc, g, 1.0, fid), 1.0, 10) for sc in SCHEMES for g in plan.ladder]
    picks = plan.round_points(ROUND_LONGER, pool)
    assert plan.round_points(ROUND_LONGER, pool[::-1]) == picks
    order = [(p.scheme, p.gain) for p in picks]
    assert order != [(m.point.scheme, m.point.gain) for m in pool[: len(picks)]]  # not the trials' order
    other = HalvingPlan(TuneSettings(steps=100, seeds=3, sampler_seed=1), SCHEMES).round_points(ROUND_LONGER, pool)
    assert other != picks


def _simulate(plan: HalvingPlan) -> list[Measured]:
    measured: list[Measured] = []
    index = 0
    while (points := plan.round_points(index, measured)) is not None:
        measured += _measure(points)
        index += 1
        assert index < 20
    return measured


@pytest.mark.parametrize("budget", [0.15, 0.25, 0.5])
def test_a_whole_search_stays_within_its_budget_and_finds_the_best_gain_of_the_best_scheme(budget):
    s = TuneSettings(steps=100, seeds=3, budget=budget)
    plan = HalvingPlan(s, SCHEMES)
    measured = _simulate(plan)
    spent = sum(m.cost for m in measured)
    assert spent <= plan.budget <= budget * grid_member_steps(s, SCHEMES)
    full = [m for m in measured if m.point.fidelity.is_full(s)]
    best = min(full, key=lambda m: m.score)
    assert best.point.scheme == "lsuv"
    if budget >= 0.5:  # room for refinement: between the ladder's 0.5 and 0.63, near the true best 0.55
        assert abs(math.log(best.point.gain / 0.55)) <= math.log(2.0 / 0.5) / 6 / 4 + 1e-9
    grid_best = min(synthetic_score(Point(sc, g, 1.0, plan.full)) for sc in SCHEMES for g in s.grid_gains())
    assert best.score <= grid_best * 1.02  # regret against the 5-gain grid: at most 2%


def test_refinement_is_skipped_when_the_gains_are_a_list():
    s = TuneSettings(steps=100, seeds=3, gain=[0.5, 1.0, 2.0])
    measured = _simulate(HalvingPlan(s, SCHEMES))
    assert {m.point.gain for m in measured} <= {0.5, 1.0, 2.0}
    assert max(m.point.fidelity.round for m in measured) <= ROUND_FULL


# ---- the driver, over a real (in-memory) Optuna study -------------------------------------------------


def _run_queued(study: optuna.Study, settings: TuneSettings, limit: int | None = None) -> int:
    """Take and tell queued trials as the objective would (synthetic scores); returns how many."""
    done = 0
    while limit is None or done < limit:
        if not any(t.state == optuna.trial.TrialState.WAITING for t in study.get_trials(deepcopy=False)):
            break
        trial = study.ask()
        record = TrialRecord.of(trial)
        fid = Fidelity.from_attr(record.fidelity)
        point = dataclasses.replace(suggest(trial, settings, SCHEMES), fidelity=fid)
        score = synthetic_score(point)
        TrialRecord.write(trial, steps_trained=fid.member_steps())
        if fid.is_full(settings):
            study.tell(trial, score)
        else:
            TrialRecord.write(trial, score=score, status=TrialStatus.SCREENED)
            trial.report(score, fid.member_steps())
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        done += 1
    return done


def _study(settings):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))


def test_the_driver_queues_round_after_round_and_stops_within_the_budget():
    s = TuneSettings(steps=100, seeds=3)
    search, study = HalvingSearch(s, SCHEMES), _study(s)
    actions = []
    while True:
        action, room = search.next_action(study)
        actions.append(action)
        if action == Action.STOP:
            break
        assert action == Action.RUN and room > 0
        _run_queued(study, s)
    rounds = queued_rounds(study)
    assert rounds[0] == 1 + (len(SCHEMES) - 1) * 7 and len(rounds) >= 3
    assert spent_member_steps(study) <= search.plan.budget
    assert study.best_trial.params["scheme"] == "lsuv"  # the best trial is a fully trained one
    assert TrialRecord.of(study.best_trial).fidelity["steps"] == 100
    # what it measured equals the pure plan's simulation
    assert sorted((t.params["scheme"], t.params["gain"]) for t in study.trials) == sorted(
        (m.point.scheme, m.point.gain) for m in _simulate(search.plan)
    )


def test_a_study_is_finished_only_once_no_round_is_left():
    s = TuneSettings(steps=100, seeds=3)
    search, study = HalvingSearch(s, SCHEMES), _study(s)
    assert not search.finished(study)  # nothing measured yet
    search.next_action(study)
    _run_queued(study, s, limit=5)
    assert not search.finished(study)  # round 0 still queued
    _run_queued(study, s)
    assert not search.finished(study)  # rounds left to queue
    while search.next_action(study)[0] != Action.STOP:
        _run_queued(study, s)
    assert search.finished(study)


def test_the_driver_waits_while_a_round_still_runs_elsewhere():
    s = TuneSettings(steps=100, seeds=3)
    search, study = HalvingSearch(s, SCHEMES), _study(s)
    search.next_action(study)
    _run_queued(study, s, limit=len(SCHEMES) * 7)  # all but one
    running = study.ask()  # the last one, taken by another process
    assert search.next_action(study) == (Action.WAIT, 0)
    study.tell(running, state=optuna.trial.TrialState.FAIL)
    action, room = search.next_action(study)
    assert action == Action.RUN and queued_rounds(study)[1] == room  # a failed point is simply not promoted


def test_a_half_queued_round_is_completed_not_queued_twice():
    s = TuneSettings(steps=100, seeds=3)
    search, study = HalvingSearch(s, SCHEMES), _study(s)
    points = search.plan.round_points(ROUND_SCREEN, [])
    for p in points[:10]:  # a process died while queuing round 0
        study.enqueue_trial({"scheme": p.scheme, "gain": p.gain}, user_attrs={"fidelity": p.fidelity.to_attr()})
    _run_queued(study, s)
    action, room = search.next_action(study)
    assert (action, room) == (Action.RUN, len(points) - 10)
    assert queued_rounds(study) == [len(points)]
    assert len(study.trials) == len(points)


def test_resuming_with_another_budget_keeps_the_rounds_done_and_plans_the_rest_with_the_new_one():
    s = TuneSettings(steps=100, seeds=3, budget=0.25)
    search, study = HalvingSearch(s, SCHEMES), _study(s)
    for _ in range(2):  # rounds 0 and 1
        search.next_action(study)
        _run_queued(study, s)
    before = [(t.number, t.params, t.state) for t in study.trials]
    bigger = TuneSettings(steps=100, seeds=3, budget=0.5)
    resumed = HalvingSearch(bigger, SCHEMES)
    while resumed.next_action(study)[0] != Action.STOP:
        _run_queued(study, bigger)
    assert [(t.number, t.params, t.state) for t in study.trials][: len(before)] == before
    assert queued_rounds(study)[:2] == [1 + (len(SCHEMES) - 1) * 7, queued_rounds(study)[1]]
    assert spent_member_steps(study) <= resumed.plan.budget
    assert spent_member_steps(study) > search.plan.budget  # the larger budget was spent


# ---- robust promotion ------------------------------------------------------------------------------------


def _screened(plan, scores, *, stalled=()):
    fid = Fidelity(ROUND_SCREEN, plan.prefix, 1)
    return [
        Measured(Point(sc, g, 1.0, fid), score, fid.member_steps(), stalled=(sc, g) in stalled)
        for (sc, g), score in scores.items()
    ]


def test_a_point_within_noise_of_the_cut_survives_it():
    # 12 screened points with room for all: a third (4, lsuv up to 1.03) are the cut; the 5th and 6th are
    # 0.5% and 1% above it — within noise (2% relative spread, √2 for a difference of two one-seed scores) —
    # so they are kept too; the rest, 10% above, are not.
    s = TuneSettings(steps=100, seeds=3, budget=1.0)
    plan = HalvingPlan(s, SCHEMES)
    scores = {("lsuv", g): 1.0 + 0.01 * i for i, g in enumerate(plan.ladder[:4])}
    scores[("orthogonal", 1.0)] = 1.035
    scores[("auto", 1.0)] = 1.04
    scores.update({("xavier_uniform", g): 1.14 + 0.01 * i for i, g in enumerate(plan.ladder[:6])})
    pool = _screened(plan, scores)
    r1 = plan.round_points(ROUND_LONGER, pool)
    kept = {(p.scheme, p.gain) for p in r1}
    assert ("orthogonal", 1.0) in kept and ("auto", 1.0) in kept
    assert not any(sc == "xavier_uniform" for sc, _ in kept)
    assert len(r1) == 6


def test_the_noise_is_the_seed_spread_of_learning_trials_not_of_a_stalled_baseline():
    from autoinit.tuner.search.halving import NOISE_PRIOR, relative_noise

    full = Fidelity(0, 100, 3)
    stalled = Measured(Point("default", 1.0, 1.0, full), 2.3, 300, stalled=True, seed_scores=(2.3, 2.3001, 2.2999))
    assert relative_noise([stalled]) == NOISE_PRIOR  # a flat baseline says nothing of a learning init's spread
    learning = Measured(Point("default", 1.0, 1.0, full), 2.0, 300, seed_scores=(1.9, 2.0, 2.1))
    assert relative_noise([stalled, learning]) == pytest.approx(0.1 / 2.0)  # sample std 0.1 over the mean 2


def test_a_stalled_point_is_never_promoted_over_a_learning_one():
    # Round 0 of the quick start: a flat loss at chance (2.3026) undercuts a learning point whose first step
    # spiked (AUC 2.3001 over 16 steps): the learning points go first, however their prefix scored.
    s = TuneSettings(steps=100, seeds=3)
    plan = HalvingPlan(s, SCHEMES)
    flat = {
        (sc, g): 2.2990 - 0.0001 * i for i, (sc, g) in enumerate((sc, g) for sc in SCHEMES[:4] for g in plan.ladder)
    }
    learning = {("lsuv", g): 2.3001 + 0.001 * i for i, g in enumerate(plan.ladder)}
    pool = _screened(plan, {**flat, **learning}, stalled=set(flat))
    r1 = plan.round_points(ROUND_LONGER, pool)
    assert [(p.scheme, p.gain) for p in r1[:7]] == [("lsuv", g) for g in plan.ladder]
    assert len(r1) > 7  # the stalled ones fill the rest of the third, after every learning point


def test_refinement_gives_each_of_the_best_schemes_a_gain_before_a_second_to_any():
    s = TuneSettings(steps=100, seeds=3)
    plan = HalvingPlan(s, SCHEMES)
    full = plan.full
    measured = [
        # tied within noise: auto a hair better by mean, lsuv (wider spread) by its lower bound
        Measured(Point("auto", 1.0, 1.0, full), 1.900, 300, seed_scores=(1.86, 1.90, 1.94)),
        Measured(Point("lsuv", 0.5, 1.0, full), 1.902, 300, seed_scores=(1.84, 1.90, 1.966)),
    ]
    r3 = plan._refine(3, measured, left=2 * full.member_steps())
    assert [p.scheme for p in r3] == ["lsuv", "auto"]  # lsuv's only new gain (0.5 is the range's end), then auto's
    assert r3[0].gain == pytest.approx(0.5612, rel=1e-3)


# ---- a round whose points all failed (issue 20, defect 11) ---------------------------------------------


def test_a_round_whose_points_all_failed_is_followed_by_one_from_the_next_best_points():
    s = TuneSettings(steps=100, seeds=3)
    plan = HalvingPlan(s, SCHEMES)
    r0 = _measure(plan.round_points(ROUND_SCREEN, []))
    r1_points = plan.round_points(ROUND_LONGER, r0)
    r1 = [Measured(p, None, 0) for p in r1_points]  # a training_step that raises past the prefix
    r2 = plan.round_points(ROUND_FULL, r0 + r1)
    assert len(r2) >= 2  # planned from round 0's points, less those that just failed longer
    failed = {(p.scheme, p.gain) for p in r1_points}
    assert not failed & {(p.scheme, p.gain) for p in r2}
    # and when round 2's points all fail too, round 3 trains the next ones in full, until none is left
    measured = r0 + r1 + [Measured(p, None, 0) for p in r2]
    r3 = plan.round_points(3, measured)
    assert r3 and {p.fidelity.steps for p in r3} == {100}
    assert not {(p.scheme, p.gain) for p in r3} & (failed | {(p.scheme, p.gain) for p in r2})
    nothing = [Measured(m.point, None, 0) for m in r0]
    assert plan.round_points(ROUND_LONGER, nothing) == [] and plan.round_points(ROUND_FULL, nothing) == []
    assert plan.round_points(3, nothing) is None  # nothing can be trained: the search ends


def test_a_budget_resume_describes_the_round_zero_prefix_that_ran():
    s = TuneSettings(steps=100, seeds=3, budget=0.25)
    search, study = HalvingSearch(s, SCHEMES), _study(s)
    search.next_action(study)
    _run_queued(study, s)  # round 0 ran at this budget's prefix
    resumed = HalvingSearch(TuneSettings(steps=100, seeds=3, budget=0.5), SCHEMES)
    assert resumed.plan.prefix != search.plan.prefix  # the new budget would screen longer
    assert f"screened at {search.plan.prefix} steps × 1 seed" in resumed.describe(study)
    assert f"screened at {resumed.plan.prefix} steps × 1 seed" in resumed.describe(_study(s))  # a new study


def test_twins_that_trained_alike_take_one_slot_of_a_cut():
    # delta_orthogonal draws orthogonal's weights on a Linear: each of its points scores bit for bit as
    # orthogonal's. The twins stand for one training, so the cut's slots go to distinct points.
    s = TuneSettings(steps=100, seeds=3, budget=1.0)
    plan = HalvingPlan(s, [*SCHEMES, "delta_orthogonal"])
    scores = {("orthogonal", g): 1.0 + 0.1 * i for i, g in enumerate(plan.ladder)}
    scores.update({("delta_orthogonal", g): 1.0 + 0.1 * i for i, g in enumerate(plan.ladder)})
    scores.update({("xavier_uniform", g): 1.05 + 0.1 * i for i, g in enumerate(plan.ladder)})
    fid = Fidelity(ROUND_SCREEN, plan.prefix, 1)
    pool = [Measured(Point(sc, g, 1.0, fid), v, plan.prefix, seed_scores=(v,)) for (sc, g), v in scores.items()]
    r1 = plan.round_points(ROUND_LONGER, pool)
    kept = [(p.scheme, p.gain) for p in r1]
    # 21 points, 14 distinct: a third is 5, each twin pair once
    assert len(r1) == 5
    assert len({g for sc, g in kept if sc in ("orthogonal", "delta_orthogonal")}) == 3
    assert sum(sc == "xavier_uniform" for sc, _ in kept) == 2


def test_a_tie_at_round_twos_cut_is_trained_before_any_gain_is_refined():
    # Round 2's share (70% of the 1,800 member-steps left) pays for 4 full points (300 each): the LSTM's case,
    # where the grid's best (orthogonal·1) came 4th of round 1 within noise and was left for a refinement of
    # another scheme's gain. A point within noise of the cut takes the refinement's budget; one beyond noise
    # does not, though the budget would pay for it.
    s = TuneSettings(steps=100, seeds=3, budget=0.5)
    plan = HalvingPlan(s, SCHEMES)
    longer = Fidelity(ROUND_LONGER, 50, 1)
    names = [(sc, g) for sc in SCHEMES[1:] for g in plan.ladder][:15]
    scores = [2.0, 2.01, 2.02, 2.03, 2.04, 2.2, *(2.3 + 0.01 * i for i in range(9))]
    pairs = zip(names, scores, strict=True)
    r1 = [Measured(Point(sc, g, 1.0, longer), v, 50, seed_scores=(v,)) for (sc, g), v in pairs]
    spent = sum(m.cost for m in r1)
    baseline = Point("as_built", 1.0, 1.0, Fidelity(ROUND_SCREEN, 100, 3))
    flat = Measured(baseline, 2.3, plan.budget - 1800 - spent, stalled=True, seed_scores=(2.3, 2.3, 2.3))
    r2 = plan.round_points(ROUND_FULL, [flat, *r1])
    assert [(p.scheme, p.gain) for p in r2] == names[:5]  # the 4 of the share, the tie at 2.04; not 2.2
