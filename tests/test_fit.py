"""`autoinit fit config.yaml`: tune (or reuse the finished study of the same config), then LightningCLI fit
with the pick; LightningCLI's fit options, resume included, still work."""

import csv

import lightning.pytorch as pl
import pytest
import torch
import yaml

from autoinit.cli import main
from autoinit.fit import split_args
from autoinit.tuner.sources.config import TuneConfig


class RecordStart(pl.Callback):
    """Saves the model's weights as training starts (after AutoInit, after a checkpoint restore)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module):
        torch.save({k: v.detach().clone() for k, v in pl_module.state_dict().items()}, self.path)


def _config(tmp_path, tune=True, callbacks=(), **trainer):
    cfg = {
        "model": {
            "class_path": "autoinit.templates.DeepMLP",
            "init_args": {"depth": 4, "width": 16, "in_features": 32, "classes": 4},
        },
        "data": {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 256, "classes": 4}},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 6,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}},
            "callbacks": [
                {"class_path": "test_fit.RecordStart", "init_args": {"path": str(tmp_path / "start.pt")}},
                *callbacks,
            ],
            **trainer,
        },
    }
    if tune:
        cfg["tune"] = {
            "schemes": ["kaiming_normal"],
            "gain": 1.0,
            "steps": 6,
            "seeds": 1,
            "n_trials": 2,
            "search": "tpe",
            "output": str(tmp_path / "out"),
        }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hparams(tmp_path, version):
    return yaml.safe_load((tmp_path / "lightning_logs" / f"version_{version}" / "hparams.yaml").read_text())


def _trials(tmp_path):
    with (tmp_path / "out" / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_split_args_separates_fit_options():
    assert split_args(["--trainer.max_epochs=3", "--ckpt_path", "a.ckpt", "--model.init_args.x=1"]) == (
        ["--trainer.max_epochs=3", "--model.init_args.x=1"],
        {"ckpt_path": "a.ckpt"},
    )
    assert split_args(["--ckpt_path=b.ckpt"]) == ([], {"ckpt_path": "b.ckpt"})


def test_fit_tunes_fits_with_the_pick_logs_it_then_reuses_the_study(tmp_path, capsys, monkeypatch):
    # the config's own AutoInit is replaced by the pick (kaiming_normal or default, never xavier)
    own = {"class_path": "autoinit.AutoInit", "init_args": {"scheme": "xavier_uniform", "verbose": False}}
    path = _config(tmp_path, callbacks=[own])
    assert main(["fit", str(path), "--trainer.max_steps=8"]) == 0
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    hp = _hparams(tmp_path, 0)
    assert hp["autoinit/scheme"] == best["scheme"] != "xavier_uniform"
    assert hp["autoinit/improvement"] == pytest.approx(best["improvement"])
    assert hp["autoinit/score"] == pytest.approx(best["score"])
    assert hp["autoinit/config_sha256"] == best["config_sha256"] and hp["autoinit/study"] == "cfg"
    # the fit itself ran, for the overridden number of steps
    assert list((tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("*-step=8.ckpt"))
    assert len(_trials(tmp_path)) == 2
    trials = (tmp_path / "out" / "trials.csv").read_text()
    capsys.readouterr()

    # Trainer keys a trial sets itself change nothing: the finished study is reused, nothing tuned; nor
    # does where the config is given from (a relative path from another folder: the hash is its contents).
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["fit", "../cfg.yaml", "--trainer.max_steps=10", "--trainer.max_epochs=50"]) == 0
    monkeypatch.chdir(tmp_path)
    out = capsys.readouterr().out
    assert "is finished for this config: its pick is reused, nothing tuned" in out
    assert (tmp_path / "out" / "trials.csv").read_text() == trials
    assert _hparams(tmp_path, 1)["autoinit/scheme"] == best["scheme"]

    # A changed model is tuned in a study of its own (the first stays for when the change is undone).
    assert main(["fit", str(path), "--model.init_args.width=12"]) == 0
    out = capsys.readouterr().out
    sha = TuneConfig(path, ["--model.init_args.width=12"]).sha256()
    assert f"this config's study is 'cfg-{sha[:8]}'" in out and "trials done" in out


def test_resume_keeps_the_restored_weights_and_tunes_nothing(tmp_path, capsys):
    path = _config(tmp_path)
    assert main(["fit", str(path)]) == 0
    ckpt = next((tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("*.ckpt"))
    trials = (tmp_path / "out" / "trials.csv").read_text()
    saved = torch.load(ckpt, weights_only=False)["state_dict"]
    capsys.readouterr()
    assert main(["fit", str(path), "--ckpt_path", str(ckpt), "--trainer.max_steps=9"]) == 0
    assert "restored weights are kept, nothing is tuned" in capsys.readouterr().out
    start = torch.load(tmp_path / "start.pt")
    assert all(torch.equal(start[k], saved[k]) for k in saved)
    assert (tmp_path / "out" / "trials.csv").read_text() == trials
    # without --ckpt_path the fit starts from a fresh init: not the checkpoint's weights
    assert main(["fit", str(path)]) == 0
    start = torch.load(tmp_path / "start.pt")
    assert not all(torch.equal(start[k], saved[k]) for k in saved)


def test_no_tune_section_fits_with_autoinit_defaults_or_the_configs_own(tmp_path, capsys):
    path = _config(tmp_path, tune=False)
    assert main(["fit", str(path)]) == 0
    assert "no tune section in cfg.yaml: fitting with AutoInit() defaults" in capsys.readouterr().out
    assert _hparams(tmp_path, 0)["autoinit/scheme"] == "auto"
    own = {"class_path": "autoinit.AutoInit", "init_args": {"scheme": "orthogonal", "verbose": False}}
    path = _config(tmp_path, tune=False, callbacks=[own])
    assert main(["fit", str(path)]) == 0
    assert "fitting with the config's AutoInit('orthogonal')" in capsys.readouterr().out
    assert _hparams(tmp_path, 1)["autoinit/scheme"] == "orthogonal"
    assert not (tmp_path / "out").exists()


def test_bad_input_is_one_line_before_any_work(tmp_path, capsys):
    path = _config(tmp_path)
    assert main(["fit", str(path), "--ckpt_path=missing.ckpt"]) == 2
    assert capsys.readouterr().err == (
        "autoinit: error: --ckpt_path 'missing.ckpt': no such checkpoint file: pass the .ckpt to resume from "
        "(or 'last')\n"
    )
    assert main(["fit", str(path), "--tune.stepz=3"]) == 2
    assert "unknown key 'tune.stepz'" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "none.yaml")]) == 2
    assert "no config file at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "lightning_logs").exists()
