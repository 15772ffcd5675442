"""Which schemes a study tries: applicability and pre-screen get their data as a fit does."""

import pytest
import yaml

from autoinit import AutoInitError
from autoinit.tuner.config import TuneConfig
from autoinit.tuner.screening import applicable_schemes, check_training, prescreen


def _config(tmp_path, model, data=None, tune=None):
    cfg = {
        "model": model,
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {"steps": 3, "seeds": 1, **(tune or {})},
    }
    if data is not None:
        cfg["data"] = data
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path)


def test_a_model_with_its_own_dataloader_gets_the_data_dependent_schemes(tmp_path):
    cfg = _config(
        tmp_path,
        {"class_path": "userland.OwnLoaderNet", "init_args": {"root": str(tmp_path / "own")}},
        tune={"schemes": ["lsuv", "yam_chow"]},
    )
    notes = []
    assert applicable_schemes(cfg, notes.append) == ["default", "lsuv", "yam_chow"] and notes == []
    stats = prescreen(cfg, "lsuv", 1.0)
    assert stats is not None and len(stats.layers) == 2


def test_dict_batches_need_tune_batch_to_input_and_then_get_every_path(tmp_path):
    model = {"class_path": "userland.ResidualDictNet", "init_args": {"input_key": "features"}}
    data = {"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "d"), "input_key": "features"}}
    cfg = _config(tmp_path, model, data, tune={"schemes": ["lsuv"]})
    with pytest.raises(
        AutoInitError, match=r"takes none of them \(x\): set tune.batch_to_input .* example_input_array"
    ):
        applicable_schemes(cfg, print)
    cfg = _config(tmp_path, model, data, tune={"schemes": ["lsuv"], "batch_to_input": "userland.to_input"})
    assert applicable_schemes(cfg, print) == ["default", "lsuv"]
    stats = prescreen(cfg, "lsuv", 1.0)
    assert stats is not None and stats.layers and not stats.hopeless
    check_training(cfg)  # one step of the trial path: no error


def test_check_training_leaves_the_users_own_exceptions_to_the_trials(tmp_path):
    cfg = _config(
        tmp_path,
        {"class_path": "helpers.FlakyMLP", "init_args": {"fail_scheme": "*"}},
        {"class_path": "helpers.BlobsData"},
    )
    check_training(cfg)  # a ValueError in training_step: each trial records it
    cfg = _config(tmp_path, {"class_path": "helpers.TinyClassifier"}, tune={"metric": "train_acc"})
    with pytest.raises(AutoInitError, match="metric 'train_acc' was not logged"):
        check_training(cfg)
