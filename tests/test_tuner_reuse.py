"""Finding a config's study again: the one function ``autoinit fit`` and ``autoinit.tune`` share."""

import optuna
import yaml

from autoinit.tuner.records.record import STUDY_ATTR_CONFIG_SHA256
from autoinit.tuner.reuse import reusable, study_for
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.storage import backend as storage


def _config(tmp_path, *overrides):
    cfg = {
        "model": {"class_path": "autoinit.templates.DeepMLP", "init_args": {"depth": 2, "width": 8}},
        "data": {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 64, "batch_size": 16}},
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {"steps": 4, "seeds": 1, "output": str(tmp_path / "out")},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path, list(overrides))


def _never(*_):
    raise AssertionError("not renamed")


def test_a_new_config_keeps_its_study_name_and_has_nothing_to_reuse(tmp_path):
    config = _config(tmp_path)
    notes = []
    target = study_for(config, _never, notes.append)
    assert target.config is config and target.source is config and target.full is None and notes == []
    assert target.finished() is None and not reusable(None, None)


def test_a_config_whose_study_was_made_from_another_setup_gets_a_study_and_folder_of_its_own(tmp_path):
    config = _config(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    other = optuna.create_study(
        study_name=config.study_name, storage=storage.open_storage(config.settings, config.output)
    )
    other.set_user_attr(STUDY_ATTR_CONFIG_SHA256, "another setup")
    name = f"{config.study_name}-{config.sha256()[:8]}"
    output = tmp_path / f"out-{config.sha256()[:8]}"
    calls, notes = [], []

    def renamed(c, n, o):
        calls.append((c, n, o))
        return _config(tmp_path, f"--tune.study_name={n}", f"--tune.output={o}")

    target = study_for(config, renamed, notes.append, what="setup")
    assert calls == [(config, name, output)]
    assert target.source is target.config and target.config.study_name == name and target.full is None
    assert target.config.output == output
    assert len(notes) == 1 and notes[0] == (
        f"study '{config.study_name}' was made from another setup: this setup's study is '{name}', in {output}"
    )


def test_a_proxy_config_tunes_its_proxy_and_keeps_the_full_model(tmp_path):
    config = _config(tmp_path, "--tune.proxy={model.init_args.width: 4}")
    target = study_for(config, _never, lambda _: None)
    assert target.full is config and target.config is config
    assert target.source.study_name == config.study_name + "-proxy"


def test_a_finished_proxy_study_is_reused_only_once_its_transfer_check_is_stored():
    from types import SimpleNamespace

    assert reusable(SimpleNamespace(transfer=None), None)
    assert not reusable(SimpleNamespace(transfer=None), object())
    assert reusable(SimpleNamespace(transfer={"verdict": "holds"}), object())
