"""best.yaml's record: one Pick, written and read in one place, the file byte for byte as before."""

import dataclasses
import re

import pytest
import yaml

from autoinit.errors import AutoInitError
from autoinit.tuner.records.best import Init, Pick

# The quick start's best.yaml as autoinit tune wrote it before the Pick record existed (its key order and
# formatting are what a Pick must write).
QUICKSTART_BEST_YAML = """\
scheme: kaiming_uniform
gain: 1.0
options: {}
score: 1.8978567771116894
score_std: 0.06468767964500148
objective: auc
baseline:
  scheme: as_built
  gain: 1.0
baseline_score: 2.304207659562429
own_init_is_default: true
default_score: null
improvement: 0.1763516759283345
significant: null
tied_with:
- scheme: kaiming_normal
  gain: 1.0
  score: 1.931840070883433
- scheme: orthogonal
  gain: 1.0
  score: 1.9403211466471353
stalled: false
baseline_stalled: true
steps: 100
seeds: 3
trial: 101
config_sha256: df1354ef5f812842117589f4b3faf5cad86de5eeeccf297c96b720c412e7b9a0
autoinit_version: 0.1.0
keep_baseline: false
"""


def _every_field_set() -> Pick:
    return Pick(
        scheme="orthogonal",
        gain=1.41,
        options={"mode": "fan_out"},
        score=1.5,
        score_std=0.25,
        objective="final",
        baseline={"scheme": "as_built", "gain": 1.0, "lr_scale": 1.0},
        baseline_score=2.0,
        own_init_is_default=False,
        default_score=3.0,
        improvement=0.25,
        significant=True,
        tied_with=[{"scheme": "xavier_normal", "gain": 2.0, "score": 1.75, "lr_scale": 0.5}],
        stalled=True,
        baseline_stalled=False,
        steps=200,
        seeds=4,
        trial=17,
        config_sha256="ab" * 32,
        autoinit_version="9.9.9",
        lr_scale=0.5,
        keep_baseline=True,
        proxy={"model.init_args.depth": 2},
        transfer={"verdict": "tied", "reason": "within noise"},
        recommends={"role": "baseline", "scheme": "as_built", "gain": 1.0, "options": {}, "lr_scale": 1.0},
        study="cfg",
        seed=7,
    )


def test_every_field_round_trips_through_yaml_in_field_order():
    pick = _every_field_set()
    assert all(
        getattr(pick, f.name) != f.default for f in dataclasses.fields(Pick) if f.default is not dataclasses.MISSING
    )
    data = pick.to_yaml_dict()
    assert list(data) == [f.name for f in dataclasses.fields(Pick)]
    assert Pick.from_yaml_dict(yaml.safe_load(yaml.safe_dump(data, sort_keys=False))) == pick


def test_the_quick_starts_best_yaml_is_read_and_written_back_byte_for_byte():
    data = yaml.safe_load(QUICKSTART_BEST_YAML)
    assert set(data) <= {f.name for f in dataclasses.fields(Pick)}  # every key written is a field
    pick = Pick.from_yaml_dict(data)
    assert pick.lr_scale is None and pick.proxy is None and pick.study is None  # optional keys: not written
    assert yaml.safe_dump(pick.to_yaml_dict(), sort_keys=False) == QUICKSTART_BEST_YAML


def test_an_older_files_unknown_keys_are_ignored_and_missing_ones_take_defaults():
    pick = Pick.from_yaml_dict({"scheme": "lsuv", "gain": 0.5, "retired_key": 3, "options": None})
    assert pick == Pick(scheme="lsuv", gain=0.5)
    assert pick.to_yaml_dict()["keep_baseline"] is False and "retired_key" not in pick.to_yaml_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"gain": 1.0}, "best.yaml has no 'scheme' key"),
        (["scheme"], "best.yaml has no 'scheme' key"),
        ({"scheme": "lsuv", "options": [1]}, "'options' in best.yaml must be a mapping, got [1]"),
    ],
)
def test_a_file_that_is_no_pick_is_one_line(data, message):
    with pytest.raises(AutoInitError, match="^" + re.escape(message)):
        Pick.from_yaml_dict(data)


def test_the_points_in_a_pick_read_as_inits():
    pick = _every_field_set()
    assert pick.init == Init(scheme="orthogonal", gain=1.41, options={"mode": "fan_out"}, lr_scale=0.5)
    assert pick.baseline_init == Init(scheme="as_built", gain=1.0, lr_scale=1.0)
    assert pick.recommended_init == Init(scheme="as_built", gain=1.0, lr_scale=1.0, role="baseline")
    assert pick.tied == [Init(scheme="xavier_normal", gain=2.0, lr_scale=0.5, score=1.75)]
    bare = Pick(scheme="default")
    assert bare.baseline_init is None and bare.recommended_init is None and bare.tied == []
    assert bare.init.lr_factor == 1.0


def test_a_point_is_written_as_best_yaml_lists_it():
    assert Init(scheme="as_built", gain=1.0).to_yaml_dict() == {"scheme": "as_built", "gain": 1.0}
    tied = Init(scheme="lsuv", gain=0.5, score=1.5, lr_scale=2.0).to_yaml_dict()
    assert list(tied.items()) == [("scheme", "lsuv"), ("gain", 0.5), ("score", 1.5), ("lr_scale", 2.0)]
