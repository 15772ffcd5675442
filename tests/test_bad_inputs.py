"""Every mistake a new user makes is one line naming the problem (exit status 2 on the command line), and
none loses finished work.

The user's code is written fresh for each test as a module *next to the config* (imported the way
``python -m`` and LightningCLI scripts would import it): a model with a ``mode`` to misbehave, and a
datamodule that "downloads" in ``prepare_data`` and loads in ``setup``, with tuple or dict batches.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from autoinit import AutoInit, AutoInitError, init_model
from autoinit.cli import main

USER_CODE = textwrap.dedent(
    """
    from pathlib import Path

    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset, TensorDataset


    def samples(n):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 8, generator=g)
        return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


    class Records(Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"features": self.x[i], "label": self.y[i]}


    class Net(pl.LightningModule):
        def __init__(self, width: int = 16, mode: str = "ok"):
            super().__init__()
            if mode == "init_error":
                raise ValueError(f"width must be even, got {width}")
            self.mode = mode
            self.net = nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 3))
            if mode == "frozen":
                self.net.requires_grad_(False)
            if mode == "no_parameters":
                self.net = nn.Identity()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = (batch["features"], batch["label"]) if isinstance(batch, dict) else batch
            loss = nn.functional.cross_entropy(self(x), y)
            return None if self.mode == "none" else loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)


    class Files(pl.LightningDataModule):
        def __init__(
            self,
            root: str,
            n: int = 128,
            batch_size: int = 16,
            records: bool = False,
            nan_every: int = 0,
            label_offset: int = 0,
        ):
            super().__init__()
            self.root, self.n, self.batch_size, self.records = Path(root), n, batch_size, records
            self.nan_every, self.label_offset = nan_every, label_offset

        def prepare_data(self):
            self.root.mkdir(parents=True, exist_ok=True)
            x, y = samples(self.n)
            if self.nan_every:
                x[:: self.nan_every, 0] = float("nan")
            torch.save((x, y + self.label_offset), self.root / "data.pt")

        def setup(self, stage):
            x, y = torch.load(self.root / "data.pt")
            self.data = Records(x, y) if self.records else TensorDataset(x, y)

        def train_dataloader(self):
            return DataLoader(self.data, batch_size=self.batch_size, shuffle=True, drop_last=True)


    def features(batch):
        return batch["features"]
    """
)


def _project(folder: Path, **tune) -> Path:
    """The user's module and a tune config next to it; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    module = "user_" + re.sub(r"\W", "_", folder.parent.name + "_" + folder.name)  # unique: imports are cached
    (folder / f"{module}.py").write_text(USER_CODE)
    config = {
        "model": {"class_path": f"{module}.Net"},
        "data": {"class_path": f"{module}.Files", "init_args": {"root": str(folder / "download")}},
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {
            "steps": 3,
            "seeds": 1,
            "schemes": ["kaiming_normal"],
            "gain": 1.0,
            "n_trials": 2,
            "search": "tpe",
            "output": str(folder / "out"),
            **tune,
        },
    }
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("autoinit: error: ")
    return err


def _finished_trials(output: Path, study_name: str = "cfg") -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(output / "study.journal")))
    study = optuna.load_study(study_name=study_name, storage=storage)
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def _write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# (id, how to change the project: config-file text or config-editing function, extra CLI args, expected words)
def _model_mode(mode):
    return lambda cfg: cfg["model"].setdefault("init_args", {}).update(mode=mode)


CASES = [
    ("unknown key", None, ["--tune.stepz=3"], "unknown key 'tune.stepz'"),
    ("wrong type", None, ["--tune.steps=abc"], "'tune.steps': Expected a <class 'int'>"),
    (
        "class does not import",
        lambda cfg: cfg["model"].update(class_path="nowhere.Net"),
        [],
        "the class cannot be imported (No module named 'nowhere')",
    ),
    (
        "model __init__ raises",
        _model_mode("init_error"),
        ["--model.init_args.width=17"],
        "Net.__init__ raised ValueError: width must be even, got 17",
    ),
    ("empty YAML", "\n# nothing yet\n", [], "cfg.yaml is empty: a tune config needs a model section"),
    ("YAML syntax error", "model:\n  class_path: a\n   init_args: {\n", [], "at line 3, column 13"),
    (
        "training_step returns None",
        _model_mode("none"),
        [],
        "Net.training_step returned None: it must return the loss",
    ),
    ("empty dataset", None, ["--data.init_args.n=8"], "yields no batch"),
    ("unwritable output", None, ["--tune.output={folder}/cfg.yaml/out"], "cannot write to the output folder"),
    ("unknown scheme", None, ["--tune.schemes=[kaiming]"], "unknown scheme 'kaiming': did you mean"),
    ("Keras name", None, ["--tune.schemes=[he_normal]"], "did you mean 'kaiming_normal'"),
    ("bad gain range", lambda cfg: cfg["tune"].update(gain={"low": 2.0, "high": 0.5}), [], "0 < low < high"),
    ("negative steps", None, ["--tune.steps=-3"], "tune.steps must be > 0"),
    (
        "accumulate_grad_batches 0",
        None,
        ["--trainer.accumulate_grad_batches=0"],
        "trainer.accumulate_grad_batches must be a positive integer",
    ),
    ("accumulate_grad_batches 1.5", None, ["--trainer.accumulate_grad_batches=1.5"], "accumulate_grad_batches"),
    (
        "dict batch, forward takes none of its keys",
        None,
        ["--data.init_args.records=true"],
        "forward takes none of them (x): set tune.batch_to_input",
    ),
    ("batch_to_input does not import", None, ["--tune.batch_to_input=nowhere.fn"], "tune.batch_to_input: cannot"),
    ("metric never logged", None, ["--tune.metric=train_acc"], "metric 'train_acc' was not logged"),
    ("objective steps_to without threshold", None, ["--tune.objective=steps_to"], "needs tune.threshold"),
    ("missing config file", "<missing>", [], "no config file at"),
    ("negative sampler seed", None, ["--tune.sampler_seed=-1"], "tune.sampler_seed must be an integer in [0, 2**32"),
    ("negative data seed", None, ["--tune.data_seed=-1"], "tune.data_seed must be an integer in [0, 2**32 - 1]"),
    ("data seed past 2**32", None, ["--tune.data_seed=8589934592"], "tune.data_seed must be an integer in [0,"),
    ("gain nan", None, ["--tune.gain=nan"], "'tune.gain': got nan (not a finite number), expected one of: Range"),
    ("gain inf", None, ["--tune.gain=inf"], "'tune.gain': got inf (not a finite number)"),
    ("gain huge", None, ["--tune.gain=1e308"], "tune.gain values must be positive numbers <= 100, got 1e+308"),
    ("gain range huge", lambda cfg: cfg["tune"].update(gain={"low": 0.5, "high": 1e9}), [], "high must be <= 100"),
    ("no schemes", None, ["--tune.schemes=[]"], "tune.schemes is empty: name the schemes to compare"),
    ("frozen model", _model_mode("frozen"), [], "every parameter of Net is frozen (requires_grad=False)"),
    ("model without parameters", _model_mode("no_parameters"), [], "Net has no parameters: there is nothing"),
    (
        "NaN inputs",
        None,
        ["--data.init_args.nan_every=10"],
        "the first training batch of Files holds NaN or inf values (",  # how many: which samples come first
    ),
    ("study name with a path", None, ["--tune.study_name=../../x"], "tune.study_name must be a plain name"),
    (
        "labels out of range",
        None,
        ["--data.init_args.label_offset=5"],
        "the labels of Files are out of range for the model's outputs (IndexError: Target ",
    ),
]


@pytest.mark.parametrize(("change", "args", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_bad_input_is_one_line(tmp_path, capsys, change, args, words):
    path = _project(tmp_path / "proj")
    if isinstance(change, str):
        if change == "<missing>":
            path.unlink()
        else:
            path.write_text(change)
    elif change is not None:
        cfg = yaml.safe_load(path.read_text())
        change(cfg)
        path.write_text(yaml.safe_dump(cfg))
    args = [a.replace("{folder}", str(path.parent)) for a in args]
    err = _one_line_error(capsys, main(["tune", str(path), *args]))
    assert words in err
    assert not (path.parent / "out" / "best.yaml").exists()


def test_fit_to_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    path = _project(tmp_path / "proj")
    err = _one_line_error(capsys, main(["fit", str(path), f"--tune.output={path}/out"]))  # a folder under a file
    assert "cannot write to the output folder" in err and "set tune.output to a folder you can write" in err


def test_inspect_bad_inputs_are_one_line(tmp_path, capsys):
    path = _project(tmp_path / "proj")
    assert words_of(capsys, main(["inspect", str(path), "--schemes=he_normal"])) >= {"kaiming_normal"}
    err = _one_line_error(capsys, main(["inspect", str(path), "--gain=-1"]))
    assert "--gain must be a positive finite number" in err
    err = _one_line_error(capsys, main(["inspect", str(path), "--model.init_args.mode=init_error"]))
    assert "Net.__init__ raised ValueError: width must be even, got 16" in err


def words_of(capsys, code: int) -> set[str]:
    return set(re.findall(r"\w+", _one_line_error(capsys, code)))


def test_inspect_takes_batch_to_input_from_the_config(tmp_path, capsys):
    path = _project(tmp_path / "proj")
    module = yaml.safe_load(path.read_text())["model"]["class_path"].split(".")[0]
    args = ["--data.init_args.records=true", f"--out={tmp_path / 'inspect.png'}", "--schemes=lsuv"]
    err = _one_line_error(capsys, main(["inspect", str(path), *args]))
    assert "forward takes none of them" in err
    assert main(["inspect", str(path), *args, f"--tune.batch_to_input={module}.features"]) == 0
    assert "lsuv" in capsys.readouterr().out


def test_resume_with_a_changed_config_names_the_key_and_keeps_the_trials(tmp_path, capsys):
    path = _project(tmp_path / "proj")
    assert main(["tune", str(path)]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, main(["tune", str(path), "--tune.steps=4", "--model.init_args.width=8"]))
    assert "changed: model.init_args.width (16 → 8), tune.steps (3 → 4)" in err
    assert len(_finished_trials(path.parent / "out")) == 2
    assert main(["tune", str(path), "--tune.n_trials=3"]) == 0  # resumable keys may change
    assert len(_finished_trials(path.parent / "out")) == 3


def test_outputs_that_cannot_be_written_at_the_end_lose_no_trial(tmp_path, capsys, monkeypatch):
    from autoinit.tuner.report import outputs

    path = _project(tmp_path / "proj")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "plot_curves", disk_full)
    err = _one_line_error(capsys, main(["tune", str(path)]))
    assert "No space left on device" in err and "2 finished trials are safe" in err
    assert "run the same command again" in err
    out = path.parent / "out"
    assert not (out / "loss_curves.png").exists()
    assert len(_finished_trials(out)) == 2
    monkeypatch.undo()
    assert main(["tune", str(path)]) == 0
    assert "2 trials done, 0 to run" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"best.yaml", "trials.csv", "loss_curves.png"}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_python_api_bad_inputs_are_one_line():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    cases = [
        (lambda: init_model(model, "he_normal"), "did you mean 'kaiming_normal'"),
        (lambda: init_model(model, "kaimin"), "unknown scheme 'kaimin'"),
        (lambda: init_model(model, "kaiming_normal", gain=-1.0), "gain must be a positive finite number"),
        (lambda: init_model(model, "lsuv"), "pass sample_input="),
        (lambda: AutoInit("glorot_uniform"), "did you mean 'xavier_uniform'"),
        (lambda: AutoInit(batch_to_input="nowhere.fn"), "cannot import 'nowhere.fn'"),
        (lambda: AutoInit(gain=float("nan")), "gain must be a positive finite number"),
    ]
    for call, words in cases:
        with pytest.raises(AutoInitError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.multiprocess
def test_real_command_line_from_another_folder(tmp_path):
    """``python -m autoinit`` from a folder that is not the project's: the module next to the config
    imports; a mistake is exit status 2 and one line on stderr, no traceback."""
    path = _project(tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "autoinit", "tune", str(path), *args]
        return subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, timeout=600)

    bad = run("--model.init_args.mode=none")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "autoinit: error: Net.training_step returned None: it must return the loss (or a dict with a 'loss' key) "
        "— the tuner scores the loss of every step"
    ]
    good = run()
    assert good.returncode == 0, good.stderr
    assert "outputs in" in good.stdout and "Traceback" not in good.stderr


def test_from_file_on_a_binary_file_is_one_line(tmp_path):
    path = tmp_path / "best.yaml"
    path.write_bytes(b"\xff\xfe\x00scheme: x\x81")
    with pytest.raises(AutoInitError) as err:
        AutoInit.from_file(path)
    assert "is not a UTF-8 text file" in str(err.value) and "\n" not in str(err.value)


def test_from_file_applies_a_tuned_lr_scale_or_says_it_does_not(tmp_path):
    from autoinit.tuner.report.pick import TunedAutoInit

    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"scheme": "kaiming_normal", "gain": 1.0, "lr_scale": 0.5}))
    with pytest.warns(UserWarning, match=r"lr_scale=0.5, which AutoInit does not apply"):
        AutoInit.from_file(path)
    assert TunedAutoInit.from_file(path).lr_scale == 0.5
