import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import userland
import yaml
from helpers import RecordBatches, TinyClassifier, trainer
from lightning.pytorch.loggers import Logger

from autoinit import AutoInit, AutoInitError, init_model


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_initializes_before_training_like_init_model(tmp_path):
    pl.seed_everything(0)
    model = TinyClassifier(depth=4, width=64)
    rec = RecordBatches()
    trainer(tmp_path, [AutoInit("kaiming_normal", seed=3, verbose=False), rec], max_steps=1).fit(model)
    reference = TinyClassifier(depth=4, width=64)
    init_model(reference, "kaiming_normal", seed=3)
    for k, v in _params(reference).items():
        assert torch.equal(rec.start_params[k], v), k


def test_layers_built_in_configure_model_are_covered(tmp_path):
    model = TinyClassifier(lazy=True, width=256, depth=2)
    rec = RecordBatches()
    cb = AutoInit("kaiming_normal", seed=0, verbose=False)
    trainer(tmp_path, [cb, rec], max_steps=1).fit(model)
    w = rec.start_params["net.2.weight"]
    assert float(w.std()) == pytest.approx(math.sqrt(2) / math.sqrt(256), rel=0.02)
    assert cb.report is not None and cb.report["net.2.weight"].scheme == "kaiming_normal"


@pytest.mark.multiprocess
def test_ddp_two_ranks_identical_and_equal_to_single_process(tmp_path):
    script = Path(__file__).parent / "scripts" / "ddp_checksums.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0 == rank1
    model = TinyClassifier(lazy=True)
    model.configure_model()
    init_model(model, "kaiming_normal", seed=123)
    single = {k: float(v.double().sum()) + float((v.double() ** 2).sum()) for k, v in model.state_dict().items()}
    assert rank0 == pytest.approx(single, rel=1e-12, abs=1e-12)


def test_resume_keeps_restored_weights_bit_for_bit(tmp_path):
    model = TinyClassifier()
    t = trainer(tmp_path, [AutoInit("orthogonal", seed=1, verbose=False)], max_steps=4, enable_checkpointing=True)
    t.fit(model)
    ckpt = tmp_path / "resume.ckpt"
    t.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)
    state = saved["callbacks"]["AutoInit"]
    assert state["initialized"] is True and state["scheme"] == "orthogonal" and state["seed"] == 1
    assert state["summary"]["initialized"] == 8

    for callbacks in ([AutoInit("orthogonal", seed=1, verbose=False)], [AutoInit("xavier_uniform", seed=9)]):
        rec = RecordBatches()
        trainer(tmp_path, [*callbacks, rec], max_steps=6).fit(TinyClassifier(), ckpt_path=ckpt)
        for k, v in saved["state_dict"].items():
            assert torch.equal(rec.start_params[k], v), k


def test_resume_from_checkpoint_saved_without_the_callback(tmp_path):
    t = trainer(tmp_path, [], max_steps=2)
    t.fit(TinyClassifier())
    ckpt = tmp_path / "plain.ckpt"
    t.save_checkpoint(ckpt)
    rec = RecordBatches()
    trainer(tmp_path, [AutoInit("kaiming_normal", seed=0), rec], max_steps=3).fit(TinyClassifier(), ckpt_path=ckpt)
    saved = torch.load(ckpt, weights_only=False)["state_dict"]
    assert all(torch.equal(rec.start_params[k], v) for k, v in saved.items())


def test_frozen_parameters_left_alone(tmp_path):
    model = TinyClassifier()
    model.net[0].requires_grad_(False)
    before = model.net[0].weight.detach().clone()
    rec = RecordBatches()
    trainer(tmp_path, [AutoInit("kaiming_normal", seed=0, verbose=False), rec], max_steps=1).fit(model)
    assert torch.equal(rec.start_params["net.0.weight"], before)
    assert not torch.equal(rec.start_params["net.2.weight"], model.net[2].weight)  # trained one step after init


@pytest.mark.parametrize("scheme", ["lsuv", "kaiming_normal"])
def test_sample_batch_has_no_side_effect_on_training_batches(tmp_path, scheme):
    def batches(callbacks):
        pl.seed_everything(42)
        rec = RecordBatches()
        trainer(tmp_path, [*callbacks, rec], max_steps=12).fit(TinyClassifier(shuffle=True))
        return rec.hashes

    without = batches([])
    with_cb = batches([AutoInit(scheme, verbose=False)])
    assert with_cb == without and len(without) == 12


def test_lsuv_uses_example_input_array_or_a_train_batch(tmp_path):
    for example in (True, False):
        cb = AutoInit("lsuv", seed=0, verbose=False)
        trainer(tmp_path, [cb], max_steps=1).fit(TinyClassifier(example=example))
        assert cb.report.activation_source == "traced"
        assert cb.report["net.0.weight"].scheme == "lsuv"


class _Capture(Logger):
    def __init__(self):
        super().__init__()
        self.hparams = {}

    @property
    def name(self):
        return "capture"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        self.hparams.update(params)

    def log_metrics(self, metrics, step=None):
        pass


def test_report_logged_and_hyperparameters(tmp_path, caplog):
    logger = _Capture()
    with caplog.at_level(logging.INFO):
        trainer(tmp_path, [AutoInit("xavier_normal", gain=1.5, seed=4)], logger=logger).fit(TinyClassifier())
    assert logger.hparams["autoinit/scheme"] == "xavier_normal" and logger.hparams["autoinit/gain"] == 1.5
    assert "net.0.weight" in caplog.text and "autoinit: scheme=xavier_normal gain=1.5" in caplog.text


def test_errors_before_training(tmp_path):
    with pytest.raises(AutoInitError, match="did you mean 'kaiming_normal'"):
        AutoInit("kaiming_norm")
    with pytest.raises(AutoInitError, match="unknown option 'tol'"):
        AutoInit("kaiming_normal", tol=0.1)
    model = TinyClassifier(n=0)  # an empty dataset: no batch can be had
    with pytest.raises(AutoInitError, match="needs a batch of data"):
        trainer(tmp_path, [AutoInit("lsuv")]).fit(model)


def test_from_file_and_its_errors(tmp_path):
    good = tmp_path / "best.yaml"
    good.write_text(
        yaml.safe_dump({"scheme": "kaiming_uniform", "gain": 1.25, "options": {"mode": "fan_out"}, "score": 1.0})
    )
    cb = AutoInit.from_file(good)
    assert (cb.scheme, cb.gain, cb.options) == ("kaiming_uniform", 1.25, {"mode": "fan_out"})
    with pytest.raises(AutoInitError, match="no file at"):
        AutoInit.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scheme: [unclosed\n")
    with pytest.raises(AutoInitError, match="not valid YAML"):
        AutoInit.from_file(bad)
    bad.write_text("gain: 2\n")
    with pytest.raises(AutoInitError, match="no 'scheme' key"):
        AutoInit.from_file(bad)
    bad.write_text("scheme: nope\n")
    with pytest.raises(AutoInitError, match="unknown scheme 'nope'"):
        AutoInit.from_file(bad)


def _cli(args):
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI(TinyClassifier, args=args, run=False, save_config_callback=None)


def test_lightning_cli_from_config_and_command_line(tmp_path):
    config = tmp_path / "fit.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "accelerator": "cpu",
                    "max_steps": 2,
                    "logger": False,
                    "enable_checkpointing": False,
                    "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path),
                    "callbacks": [
                        {
                            "class_path": "autoinit.AutoInit",
                            "init_args": {"scheme": "kaiming_normal", "seed": 5, "options": {"mode": "fan_out"}},
                        }
                    ],
                }
            }
        )
    )
    cli = _cli(["--config", str(config)])
    cbs = [c for c in cli.trainer.callbacks if isinstance(c, AutoInit)]
    assert len(cbs) == 1 and cbs[0].scheme == "kaiming_normal" and cbs[0].options == {"mode": "fan_out"}
    cli.trainer.fit(cli.model)
    assert cbs[0].initialized

    cli = _cli(
        [
            "--trainer.accelerator=cpu",
            "--trainer.max_steps=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.callbacks+=autoinit.AutoInit",
            "--trainer.callbacks.scheme=orthogonal",
            "--trainer.callbacks.gain=0.5",
        ]
    )
    cbs = [c for c in cli.trainer.callbacks if isinstance(c, AutoInit)]
    assert len(cbs) == 1 and cbs[0].scheme == "orthogonal" and cbs[0].gain == 0.5


# ---- a new user's data: dict batches, prepare_data/setup, a model's own loader, one-shot streams ----------
def _fit(tmp_path, model, callbacks, datamodule=None, max_steps=4):
    pl.seed_everything(7)
    trainer(tmp_path, callbacks, max_steps=max_steps).fit(model, datamodule=datamodule)
    return model


def _notes(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "autoinit"]


def test_dict_batches_trace_activations_and_leave_training_batches_alone(tmp_path, caplog):
    def run(callbacks):
        dm = userland.FileData(str(tmp_path / "data"), n=96)
        return _fit(tmp_path, userland.ResidualDictNet(), callbacks, dm).seen

    without = run([])
    cb = AutoInit(verbose=False)
    with caplog.at_level(logging.INFO):
        assert run([cb]) == without and len(without) == 4
    assert cb.report.activation_source == "traced" and _notes(caplog) == []
    # torch.relu follows fc1 inside forward; module order (no ReLU module) would say linear
    fc1 = cb.report["blocks.0.fc1.weight"]
    assert fc1.activation.startswith("relu") and fc1.scheme.startswith(
        "auto→kaiming_normal"
    )  # ×L^(−1/(2m−2)) in a norm-free residual net


def test_a_scheme_that_uses_no_data_never_draws_a_batch(tmp_path, monkeypatch, caplog):
    from autoinit import callback

    drawn = []
    monkeypatch.setattr(callback, "train_dataloader_of", lambda t: drawn.append(t))
    cb = AutoInit("default", verbose=False)
    model = userland.ResidualDictNet(input_key="features")  # forward(x) takes no key of the batch
    with caplog.at_level(logging.INFO):
        _fit(tmp_path, model, [cb], userland.FileData(str(tmp_path), input_key="features"), max_steps=1)
    assert drawn == [] and _notes(caplog) == [] and cb.initialized


def test_no_usable_input_falls_back_or_fails_in_one_line(tmp_path, caplog):
    def dm():
        return userland.FileData(str(tmp_path), n=64, input_key="features")

    cb = AutoInit(verbose=False)
    with caplog.at_level(logging.INFO):
        _fit(tmp_path, userland.ResidualDictNet(input_key="features"), [cb], dm(), max_steps=1)
    assert cb.initialized and cb.report.activation_source == "module order"
    (note,) = _notes(caplog)
    assert note.startswith(
        "autoinit: activations taken from module order: a training batch is a dict with keys (features, y) "
        "and ResidualDictNet.forward takes none of them (x)"
    )
    assert "example_input_array" in note and "batch_to_input" in note

    with pytest.raises(AutoInitError) as err:
        _fit(tmp_path, userland.ResidualDictNet(input_key="features"), [AutoInit("lsuv")], dm())
    message = str(err.value)
    assert "scheme 'lsuv' needs a batch of data" in message and "takes none of them (x)" in message
    assert "example_input_array" in message and "batch_to_input" in message and "\n" not in message

    for fn in ("userland.to_input", userland.to_input):
        cb = AutoInit("lsuv", batch_to_input=fn, verbose=False)
        _fit(tmp_path, userland.ResidualDictNet(input_key="features"), [cb], dm(), max_steps=1)
        assert cb.report.activation_source == "traced" and cb.report["stem.weight"].scheme == "lsuv"
    with pytest.raises(AutoInitError, match=r"cannot import 'userland\.to_inptu': 'userland' has no attribute"):
        AutoInit(batch_to_input="userland.to_inptu")


def test_batch_to_input_from_a_lightning_cli_config(tmp_path):
    from lightning.pytorch.cli import LightningCLI

    args = [
        "--trainer.callbacks+=autoinit.AutoInit",
        "--trainer.callbacks.batch_to_input=userland.to_input",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    cli = LightningCLI(TinyClassifier, args=args, run=False, save_config_callback=None)
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, AutoInit)]
    assert cb.batch_to_input is userland.to_input


def test_model_with_its_own_data_hooks(tmp_path):
    cb = AutoInit(verbose=False)
    _fit(tmp_path, userland.OwnLoaderNet(str(tmp_path / "own")), [cb], max_steps=2)
    assert cb.report.activation_source == "traced"
    assert cb.report["net.0.weight"].activation.startswith("tanh")


def test_one_shot_stream_is_drawn_from_only_when_the_scheme_needs_data(tmp_path, caplog):
    without = _fit(tmp_path, userland.StreamNet(), [], max_steps=6).seen
    assert len(without) == 6

    cb = AutoInit(verbose=False)
    with caplog.at_level(logging.INFO):
        assert _fit(tmp_path, userland.StreamNet(), [cb], max_steps=6).seen == without
    assert cb.report.activation_source == "module order"
    (note,) = _notes(caplog)
    assert "one-shot stream" in note and "example_input_array" in note

    # with example_input_array nothing is drawn, whatever the scheme
    cb = AutoInit("lsuv", verbose=False)
    assert _fit(tmp_path, userland.StreamNet(example=True), [cb], max_steps=6).seen == without
    assert cb.report.activation_source == "traced"

    # a scheme that needs data draws, and says so: the stream's first batch is then not trained on
    seven = _fit(tmp_path, userland.StreamNet(), [], max_steps=7).seen
    caplog.clear()
    cb = AutoInit("lsuv", verbose=False)
    with caplog.at_level(logging.INFO):
        assert _fit(tmp_path, userland.StreamNet(), [cb], max_steps=6).seen == seven[1:]
    assert cb.report.activation_source == "traced"
    (note,) = _notes(caplog)
    assert note.startswith("autoinit: scheme 'lsuv' draws its sample batch from a one-shot train dataloader")
