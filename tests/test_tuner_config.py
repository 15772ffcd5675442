import pytest
import yaml

from autoinit import AutoInitError
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.settings import Range

BASE = {
    "model": {"class_path": "autoinit.templates.DeepMLP", "init_args": {"depth": 4, "width": 16}},
    "data": {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 256}},
    "trainer": {"accelerator": "cpu", "devices": 1},
    "tune": {"steps": 10, "seeds": 1},
}


def _write(tmp_path, data, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_parses_defaults_overrides_and_builds_fresh_objects(tmp_path):
    cfg = TuneConfig(_write(tmp_path, BASE), ["--tune.steps=25", "--model.init_args.depth=6"])
    s = cfg.settings
    assert (s.steps, s.seeds, s.objective, s.search, s.budget, s.pruner) == (25, 1, "auc", "halving", None, "median")
    assert s.gain == Range(0.5, 2.0, True)
    assert cfg.study_name == "cfg" and str(cfg.output) == "autoinit-out/cfg"
    m1, d1 = cfg.build()
    m2, _ = cfg.build()
    assert m1 is not m2 and m1.hparams.depth == 6 and type(d1).__name__ == "TeacherData"


def test_sha256_ignores_run_only_keys(tmp_path):
    path = _write(tmp_path, BASE)
    a = TuneConfig(path).sha256()
    assert TuneConfig(path, ["--tune.n_trials=99", "--tune.workers=2"]).sha256() == a
    assert TuneConfig(path, ["--tune.steps=11"]).sha256() != a
    assert TuneConfig(path, ["--model.init_args.width=8"]).sha256() != a


def test_sha256_is_what_the_config_says_not_where_it_lives(tmp_path, monkeypatch):
    path = _write(tmp_path, BASE)
    absolute = TuneConfig(path.resolve()).sha256()
    monkeypatch.chdir(tmp_path)
    assert TuneConfig(path.name).sha256() == absolute
    (tmp_path / "copy").mkdir()
    assert TuneConfig(_write(tmp_path / "copy", BASE)).sha256() == absolute


def test_optimizer_section_is_linked(tmp_path):
    data = {**BASE, "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.123}}}
    model, _ = TuneConfig(_write(tmp_path, data)).build()
    opt = model.configure_optimizers()
    opt = opt[0] if isinstance(opt, (list, tuple)) else opt
    assert type(opt).__name__ == "Adam" and opt.param_groups[0]["lr"] == 0.123


@pytest.mark.parametrize(
    ("change", "overrides", "message"),
    [
        ({}, ["--tune.stepz=3"], "unknown key 'tune.stepz' (tune keys: schemes, gain, steps"),
        ({"tune": {"stepz": 3}}, [], "'stepz'"),
        ({}, ["--tune.steps=abc"], "'tune.steps': Expected a <class 'int'>"),
        ({}, ["--tune.search=cmaes"], "'tune.search'"),
        ({}, ["--tune.sampler=tpe"], "tune.sampler was renamed tune.search"),
        ({"model": {"class_path": "nope.Model"}}, [], "'model': the class cannot be imported (No module named 'nope')"),
        ({}, ["--model.init_args.depht=3"], "'model': Option 'depht' is not accepted"),
        ({}, ["--model.init_args.depth=abc"], "'model': 'depth': Expected a <class 'int'>. Got value: abc"),
        ({}, ["--tune.schemes=[kaiming]"], "unknown scheme 'kaiming': did you mean"),
        ({}, ["--tune.steps=0"], "tune.steps must be > 0"),
        ({}, ["--tune.objective=steps_to"], "needs tune.threshold"),
        ({"tune": {"gain": {"low": 2.0, "high": 1.0}}}, [], "0 < low < high"),
        ({"tune": {"gain": {"lo": 0.5, "high": 1.0}}}, [], "lo"),
    ],
)
def test_config_errors_are_one_line(tmp_path, change, overrides, message):
    data = {**BASE, **{k: ({**BASE[k], **v} if k in BASE and isinstance(v, dict) else v) for k, v in change.items()}}
    if "model" in change:
        data["model"] = change["model"]
    with pytest.raises(AutoInitError) as err:
        TuneConfig(_write(tmp_path, data), overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(AutoInitError, match="no config file at"):
        TuneConfig(tmp_path / "nope.yaml")


def test_a_module_next_to_the_config_imports_and_the_current_folder_comes_first(tmp_path, monkeypatch):
    import sys

    project = tmp_path / "project"
    project.mkdir()
    (project / "nextdoor_model.py").write_text(
        "from autoinit.templates import DeepMLP\n\nclass NextDoor(DeepMLP):\n    pass\n"
    )
    data = {**BASE, "model": {"class_path": "nextdoor_model.NextDoor", "init_args": {"depth": 3}}}
    path = _write(project, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(elsewhere))])
    model, _ = TuneConfig(path).build()
    assert type(model).__name__ == "NextDoor"
    assert sys.path[0] == str(elsewhere)  # as python -m puts it
    assert sys.path[-1] == str(project)  # last: never shadows an installed package


def test_changes_from_names_the_keys_that_differ(tmp_path):
    path = _write(tmp_path, BASE)
    stored = TuneConfig(path).measured()
    assert "tune.n_trials" not in stored and stored["tune.steps"] == 10
    changed = TuneConfig(path, ["--tune.steps=11", "--tune.n_trials=3"]).changes_from(stored)
    assert changed == "tune.steps (10 → 11)"
    many = TuneConfig(path, ["--tune.steps=11", "--tune.seeds=2", "--model.init_args.depth=5", "--tune.data_seed=3"])
    assert many.changes_from(stored) == (
        "model.init_args.depth (4 → 5), tune.steps (10 → 11), tune.seeds (1 → 2) and 1 more"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cfg.yaml is empty: a tune config needs a model section"),
        ("# only a comment\n", "cfg.yaml is empty"),
        ("- model\n- data\n", "cfg.yaml holds a list, not a mapping of sections"),
        ("model:\n  class_path: x\n  init_args: [1, 2\ntune: {}\n", "cfg.yaml is not valid YAML at line 4, column 5"),
    ],
)
def test_yaml_that_is_no_config_is_one_line(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(AutoInitError) as err:
        TuneConfig(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_model_init_that_raises_is_quoted_in_the_users_words(tmp_path):
    data = {**BASE, "model": {"class_path": "autoinit.templates.DeepMLP", "init_args": {"activation": "swishy"}}}
    with pytest.raises(AutoInitError) as err:
        TuneConfig(_write(tmp_path, data))
    assert "Does not validate" not in str(err.value) and "DeepMLP.__init__ raised" in str(err.value)
