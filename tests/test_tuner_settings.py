"""TuneSettings cannot hold an invalid value; the tune key table of docs/tuner.md stays in step with it."""

import dataclasses
import re
from pathlib import Path

import pytest

from autoinit import AutoInitError
from autoinit.schemes.registry import builtin_scheme_names, list_schemes
from autoinit.tuner.sources.settings import Range, TuneSettings

TUNER_DOC = Path(__file__).resolve().parents[1] / "docs" / "tuner.md"


def test_construction_validates_and_replace_revalidates():
    s = TuneSettings(steps=5)
    with pytest.raises(AutoInitError, match=r"tune\.steps must be > 0"):
        TuneSettings(steps=0)
    with pytest.raises(AutoInitError, match=r"tune\.n_trials must be > 0"):
        dataclasses.replace(s, n_trials=0)
    with pytest.raises(AutoInitError, match=r"needs tune\.threshold"):
        dataclasses.replace(s, objective="steps_to")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 0


def test_anchor_gain_and_ladder():
    assert TuneSettings().anchor_gain() == 1.0
    assert TuneSettings(gain=Range(1.5, 3.0)).anchor_gain() == 1.5  # clamped into the range
    assert TuneSettings(gain=Range(0.1, 0.5)).anchor_gain() == 0.5
    assert TuneSettings(gain=[0.5, 0.9, 2.0]).anchor_gain() == 0.9
    assert TuneSettings(gain=2.5).anchor_gain() == 2.5 and not TuneSettings(gain=2.5).gain_is_searched
    assert TuneSettings(gain=Range(0.5, 2.0)).grid_gains() == [0.5, 0.7071, 1.0, 1.4142, 2.0]
    assert TuneSettings(gain=Range(0.5, 2.5, log=False)).grid_gains() == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert TuneSettings(lr_scale=Range(2.0, 4.0)).anchor_lr_scale() == 2.0
    assert TuneSettings(lr_scale=Range(0.5, 2.0)).grid_lr_scales() == [0.5, 1.0, 2.0]


def test_all_is_the_registry_order():
    names = TuneSettings().scheme_names()
    assert names == builtin_scheme_names() and names[:2] == ["as_built", "default"]
    assert set(names) <= set(list_schemes())
    assert TuneSettings(schemes=["lsuv"]).scheme_names() == ["as_built", "lsuv"]


def _key_table() -> dict[str, list[str]]:
    text = TUNER_DOC.read_text()
    section = text[text.index("## `tune` keys") :]
    section = section[: section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(\w+)` \|", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip().strip("|").split("|")]
    return rows


def test_docs_document_every_tune_key_once():
    assert list(_key_table()) == [f.name for f in dataclasses.fields(TuneSettings)]


def test_docs_mark_exactly_the_resumable_keys():
    marked = {key for key, cells in _key_table().items() if cells[2] == "yes"}
    assert marked == set(TuneSettings.resumable_keys())
    assert {"n_trials", "workers", "storage"} <= marked and "steps" not in marked
