"""Which :class:`~autoinit.tuner.search.base.Search` a study runs: ``tune.search``'s value, a closed set,
names one."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import optuna

from autoinit.tuner.search.base import Search
from autoinit.tuner.search.halving import HalvingSearch
from autoinit.tuner.search.sampled import GPSearch, GridSearch, RandomSearch, TPESearch
from autoinit.tuner.sources.settings import TuneSettings


class SearchKind(str, enum.Enum):
    """``tune.search``'s values (the settings' ``Literal``, kept equal by a test)."""

    HALVING = "halving"
    TPE = "tpe"
    GP = "gp"
    RANDOM = "random"
    GRID = "grid"


SEARCHES: dict[SearchKind, type[Search]] = {
    SearchKind.HALVING: HalvingSearch,
    SearchKind.TPE: TPESearch,
    SearchKind.GP: GPSearch,
    SearchKind.RANDOM: RandomSearch,
    SearchKind.GRID: GridSearch,
}


def search_type(settings: TuneSettings) -> type[Search]:
    return SEARCHES[SearchKind(settings.search)]


def search_for(settings: TuneSettings, schemes: Sequence[str]) -> Search:
    """The study's search over ``schemes`` (refusing settings it cannot use, in one line)."""
    return search_type(settings)(settings, schemes)


def make_sampler(settings: TuneSettings, schemes: Sequence[str], *, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The configured search's sampler in process ``worker``."""
    return search_for(settings, schemes).sampler(worker)
