"""Finding a source's study again: a finished study made from the same config is reused (nothing is
tuned again), and a config that changed gets a study of its own instead of a refusal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import optuna

from autoinit.noise import quiet_optuna_info
from autoinit.tuner.records.record import STUDY_ATTR_CONFIG_SHA256, STUDY_ATTR_SCHEMES
from autoinit.tuner.report.outputs import check_writable
from autoinit.tuner.search.registry import search_for
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.study.lifecycle import create_study

if TYPE_CHECKING:
    from autoinit.tuner.report.result import TuneResult

S = TypeVar("S", bound=TrialSource)


def _open_storage(source: TrialSource) -> optuna.storages.BaseStorage:
    check_writable(source.output)  # a journal lives there: a folder it cannot be written in is one line
    quiet_optuna_info()
    return storage.open_storage(source.settings, source.output)


def _summaries(source: TrialSource) -> list[optuna.study.StudySummary]:
    return optuna.get_all_study_summaries(_open_storage(source), include_best_trial=False)


def study_name_for(source: TrialSource) -> str:
    """The study this source's trials go to: its own name when that study is new or was made from the same
    config; else a study of this config already in the storage; else ``<name>-<first 8 of its hash>``."""
    sha = source.sha256()
    by_name = {s.study_name: s.user_attrs.get(STUDY_ATTR_CONFIG_SHA256) for s in _summaries(source)}
    stored = by_name.get(source.study_name)
    if stored is None or stored == sha:
        return source.study_name
    same = [name for name, h in by_name.items() if h == sha]
    return same[0] if same else f"{source.study_name}-{sha[:8]}"


def finished_study(source: TrialSource) -> optuna.Study | None:
    """The source's study when it was made from the same config and already holds its target number of
    good trials (then there is nothing to tune); else None."""
    study = _stored_study(source, _open_storage(source))
    return study if study is not None and _is_finished(source, study) else None


def _stored_study(source: TrialSource, study_storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=source.study_name, storage=study_storage)
    except KeyError:
        return None


def _is_finished(source: TrialSource, study: optuna.Study) -> bool:
    if study.user_attrs.get(STUDY_ATTR_CONFIG_SHA256) != source.sha256():
        return False
    schemes = list(study.user_attrs.get(STUDY_ATTR_SCHEMES) or [])
    if not schemes:
        return False
    return search_for(source.settings, schemes).finished(study)


def resume_finished(source: TrialSource) -> tuple[optuna.Study, list[str]] | None:
    """The source's study and its recorded schemes when a resume has nothing left to run: finished
    (:func:`finished_study`) even after :func:`~autoinit.tuner.study.lifecycle.create_study`'s resume bookkeeping
    (lost trials failed, interrupted ones queued again). Then ``autoinit tune`` builds nothing — no
    applicability check, no probe — and only writes the outputs again. None: the ordinary path. The
    storage is opened once (each opening replays the whole journal: ~2,100 records for a quick start)."""
    if not _may_hold_a_study(source):
        return None  # opening it would create it: a run refused at its checks leaves no storage behind
    study_storage = _open_storage(source)
    study = _stored_study(source, study_storage)
    if study is None or not _is_finished(source, study):
        return None
    schemes = list(study.user_attrs[STUDY_ATTR_SCHEMES])
    study = create_study(source, schemes, study_storage)
    return (study, schemes) if _is_finished(source, study) else None


def _may_hold_a_study(source: TrialSource) -> bool:
    """Whether the source's storage may hold a study already, told without creating it: a journal file or
    SQLite database that exists, or another database's URL."""
    target = storage.storage_target(source.settings, source.output)
    if not storage.is_rdb(target):
        return Path(target).exists()
    if target.startswith("sqlite:///"):
        return Path(target.removeprefix("sqlite:///")).exists()
    return True


@dataclass(frozen=True, kw_only=True)
class StudyFor:
    """Where a config's trials go. ``config``: the config to tune (renamed when its study name was taken by
    another setup); ``source``: whose trials the study holds (``config``, or its proxy); ``full``: the full
    model of a proxy study, else None."""

    config: TrialSource
    source: TrialSource
    full: TrialSource | None

    def finished(self) -> TuneResult | None:
        """The result of the finished study of this setup, read back (None: there is something to tune)."""
        from autoinit.tuner.report.result import TuneResult

        study = finished_study(self.source)
        return None if study is None else TuneResult.from_study(self.source, study, full=self.full)


def study_for(
    config: S, renamed: Callable[[S, str, Path], S], note: Callable[[str], None], *, what: str = "config"
) -> StudyFor:
    """The study ``config``'s trials go to (``autoinit fit`` and ``autoinit.tune`` alike): its own name, or
    when that study was made from another setup, ``<name>-<hash>`` in the output folder ``<output>-<hash>``
    (an output folder holds one study's files). ``renamed(config, name, output)``: the config with that
    study name and output; ``note``: told of the renaming (``what``: the caller's word for a config)."""
    from autoinit.tuner.sources.proxy import proxy_source

    full = config if config.settings.proxy is not None else None
    source: TrialSource = config if full is None else proxy_source(config)
    name = study_name_for(source)
    if name != source.study_name:
        output = source.output.with_name(source.output.name + name[len(source.study_name) :])
        note(f"study '{source.study_name}' was made from another {what}: this {what}'s study is '{name}', in {output}")
        if full is None:
            config = renamed(config, name, output)
            source = config
        else:
            source = proxy_source(config, study_name=name, output=output)
    return StudyFor(config=config, source=source, full=full)


def reusable(result: TuneResult | None, full: TrialSource | None) -> bool:
    """Whether a finished study's result stands as the pick with nothing tuned: a proxy study's only once its
    transfer check on the full model is stored."""
    return result is not None and (full is None or result.transfer is not None)
