"""The flat module paths of autoinit 0.1 still import for one release, with a warning, as the same modules."""

import importlib
import importlib.util
import sys

import pytest

from autoinit.tuner import _moved


@pytest.mark.parametrize("old", ["halving", "search_space", "trial_log", "worker"])
def test_an_old_path_warns_and_gives_the_new_module(old, monkeypatch):
    new = importlib.import_module(f"autoinit.tuner.{_moved.MOVED[old]}")
    monkeypatch.delitem(sys.modules, f"autoinit.tuner.{old}", raising=False)
    with pytest.warns(DeprecationWarning, match=f"autoinit.tuner.{old} moved to autoinit.tuner.{_moved.MOVED[old]}"):
        aliased = importlib.import_module(f"autoinit.tuner.{old}")
    assert aliased is new
    assert new.__spec__.name == f"autoinit.tuner.{_moved.MOVED[old]}"  # its own spec, not the old path's


def test_every_old_path_names_a_module():
    for new in _moved.MOVED.values():
        assert importlib.util.find_spec(f"autoinit.tuner.{new}") is not None, new


def test_a_layer_package_re_exports_the_old_modules_names():
    from autoinit.tuner.storage import open_storage
    from autoinit.tuner.storage.backend import open_storage as at_its_module

    assert open_storage is at_its_module


@pytest.mark.parametrize("name", ["Progress", "progress", "good_trials"])
def test_a_name_that_left_its_layer_warns_once_and_is_the_same_object(name, monkeypatch):
    import warnings

    from autoinit.tuner import study
    from autoinit.tuner.records import counts

    monkeypatch.delitem(study.__dict__, name, raising=False)  # as in a fresh process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(f"from autoinit.tuner.study import {name} as old", {}, scope := {})
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
        f"autoinit.tuner.study.{name} moved to autoinit.tuner.records.counts.{name}: import it from there "
        "(the old path goes in the next release)"
    ]
    assert scope["old"] is getattr(counts, name)
    assert name not in study.__all__  # not advertised at its old place
