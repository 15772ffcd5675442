"""The search protocol: tune.search's value names one Search class, whose hooks say how the study is driven;
no module outside the search layer asks which kind a study runs."""

import ast
import typing
from pathlib import Path

import optuna
import pytest

import autoinit
from autoinit.tuner.records.record import STUDY_ATTR_ANCHORS
from autoinit.tuner.search.base import Search
from autoinit.tuner.search.halving import HalvingSearch
from autoinit.tuner.search.registry import SEARCHES, SearchKind, search_for, search_type
from autoinit.tuner.search.sampled import GridSearch, SampledSearch
from autoinit.tuner.sources.settings import TuneSettings

SCHEMES = ["as_built", "kaiming_normal", "xavier_uniform"]
TUNER = Path(autoinit.__file__).parent / "tuner"


def test_every_value_of_tune_search_names_a_search():
    values = typing.get_args(typing.get_type_hints(TuneSettings)["search"])
    assert sorted(values) == sorted(k.value for k in SearchKind) == sorted(k.value for k in SEARCHES)
    assert all(issubclass(cls, Search) for cls in SEARCHES.values())


@pytest.mark.parametrize("kind", ["tpe", "gp", "random", "grid"])
def test_a_sampled_search_counts_trials_and_prescreens(kind):
    search = search_for(TuneSettings(search=kind, n_trials=20), SCHEMES)
    assert isinstance(search, SampledSearch) and search.prescreens
    assert search.model_based == (kind in ("tpe", "gp"))
    # a grid has 3 schemes × 5 gains here: fewer points than n_trials
    assert search.target_trials() == (15 if kind == "grid" else 20)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for _ in range(search.target_trials() - 1):
        study.tell(study.ask(), 1.0)
    assert not search.finished(study)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)  # a pruned trial is a good one too
    assert search.finished(study)


def test_the_halving_search_runs_its_rounds_not_a_count():
    search = search_for(TuneSettings(), SCHEMES)
    assert isinstance(search, HalvingSearch) and not search.prescreens and not search.model_based
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for _ in range(30):  # any number of good trials: its rounds, not a count, say when it is over
        study.tell(study.ask(), 1.0)
    assert not search.finished(study)
    assert isinstance(search.pruner(), optuna.pruners.NopPruner)


def test_a_sampled_search_queues_its_anchors_once_and_a_grid_none():
    study = optuna.create_study()
    tpe = search_for(TuneSettings(search="tpe"), SCHEMES)
    tpe.prepare(study)
    tpe.prepare(study)
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == len(SCHEMES)
    assert [a["scheme"] for a in study.user_attrs[STUDY_ATTR_ANCHORS]] == SCHEMES
    grid = optuna.create_study()
    GridSearch(TuneSettings(search="grid"), SCHEMES).prepare(grid)
    assert grid.get_trials() == []


def test_search_type_is_the_class_without_building_it():
    assert search_type(TuneSettings(search="gp")) is SEARCHES[SearchKind.GP]


def _reads_the_search_kind(path: Path) -> list[int]:
    """Lines where ``path`` reads ``tune.search``: ``.search`` of ``settings``, ``s``, ``self`` (the settings
    class) or of any ``.settings``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "search" and isinstance(node.ctx, ast.Load):
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id in ("settings", "s", "self")) or (
                isinstance(owner, ast.Attribute) and owner.attr == "settings"
            ):
                lines.append(node.lineno)
    return lines


def test_no_module_outside_the_search_layer_reads_the_search_kind():
    outside = [
        f"{p.relative_to(TUNER)}:{line}"
        for p in sorted(TUNER.rglob("*.py"))
        if "search" not in p.relative_to(TUNER).parts[:1]
        for line in _reads_the_search_kind(p)
    ]
    assert outside == []
