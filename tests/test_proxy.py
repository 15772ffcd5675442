"""tune.proxy: its keys are checked against the model's and data's arguments, and its source builds the smaller
model in a study of its own."""

import pytest
import yaml

import autoinit
from autoinit import AutoInitError
from autoinit.cli import main
from autoinit.templates import DeepMLP, TeacherData
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.proxy import PROXY_SUFFIX, proxy_source
from autoinit.tuner.sources.settings import TuneSettings

MLP = {"class_path": "autoinit.templates.DeepMLP", "init_args": {"depth": 6, "width": 16, "in_features": 32}}
DATA = {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 256, "batch_size": 32}}


def _write(tmp_path, proxy):
    cfg = {
        "model": MLP,
        "data": DATA,
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {"steps": 4, "seeds": 2, "output": str(tmp_path / "out"), "proxy": proxy},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_proxy_key_the_model_does_not_take_is_one_line_naming_it_and_the_valid_keys(tmp_path, capsys):
    path = _write(tmp_path, {"model.init_args.widht": 4})
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "'model.init_args.widht'" in err and "did you mean 'model.init_args.width'" in err
    assert "valid keys: model.init_args.in_features" in err and "data.init_args.batch_size" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / ("out" + PROXY_SUFFIX)).exists()


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ({"trainer.max_steps": 3}, "'trainer.max_steps' is not an argument of the model or the data"),
        ({}, "tune.proxy is empty"),
        (5, "tune.proxy must be a mapping"),
    ],
)
def test_a_proxy_outside_the_model_and_data_is_refused(proxy, message):
    with pytest.raises(AutoInitError, match=message):
        TuneSettings(proxy=proxy)


def test_a_nested_proxy_is_read_as_dotted_keys():
    s = TuneSettings(proxy={"model": {"init_args": {"width": 4, "depth": 2}}})
    assert s.proxy == {"model.init_args.width": 4, "model.init_args.depth": 2}


def test_the_python_api_checks_proxy_keys_against_the_class_signature():
    with pytest.raises(AutoInitError, match=r"'model.init_args.depht'.*did you mean 'model.init_args.depth'"):
        autoinit.tune(DeepMLP, model_args={"depth": 6}, datamodule=TeacherData, proxy={"model.init_args.depht": 2})


def test_the_proxy_source_builds_the_smaller_model_in_a_study_of_its_own(tmp_path):
    full = TuneConfig(_write(tmp_path, {"model.init_args.width": 4, "model.init_args.depth": 2}))
    proxy = proxy_source(full)
    model, _ = proxy.build()
    assert [m.out_features for m in model.net if hasattr(m, "out_features")] == [4, 10]
    assert proxy.settings.proxy is None and proxy.settings.steps == full.settings.steps
    assert proxy.study_name == "tiny" + PROXY_SUFFIX and proxy.output == tmp_path / ("out" + PROXY_SUFFIX)
    assert proxy.sha256() != full.sha256()
    # a worker process rebuilds the proxy from its path and overrides: the same study, the same model
    again = TuneConfig(proxy.path, proxy.overrides)
    assert again.sha256() == proxy.sha256() and again.study_name == proxy.study_name


def test_a_proxy_value_of_the_wrong_type_names_the_proxy_and_the_argument(tmp_path):
    full = TuneConfig(_write(tmp_path, {"model.init_args.width": "wide"}))
    with pytest.raises(AutoInitError, match=r"^tune\.proxy: .*'width'.*int") as exc:
        proxy_source(full)
    assert "\n" not in str(exc.value)


def test_a_proxy_with_multi_device_trials_is_refused_before_any_work(tmp_path):
    from autoinit.tuner.run import tune

    full = TuneConfig(_write(tmp_path, {"model.init_args.width": 4}), ["--trainer.devices=2"])
    with pytest.raises(AutoInitError, match=r"trainer\.devices > 1"):
        tune(full)
    assert not (tmp_path / ("out" + PROXY_SUFFIX)).exists()
