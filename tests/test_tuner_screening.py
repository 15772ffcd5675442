"""Which schemes a study tries: applicability and pre-screen get their data as a fit does."""

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.utilities.seed import isolate_rng
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from autoinit import AutoInitError, data
from autoinit.inspection import measure
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.trials.screening import (
    applicable_schemes,
    check_training,
    prescreen,
    sample_input,
    screen_points,
    screened_out,
)


class DropoutResNet(pl.LightningModule):
    """A residual net with dropout (the pass draws from the RNG) and its own shuffled loader over data drawn
    at build time (the build draws from it too)."""

    def __init__(self, depth: int = 12, width: int = 16) -> None:
        super().__init__()
        self.inp = nn.Linear(6, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(depth))
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(width, 2)
        self.x, self.y = torch.randn(64, 6), torch.randint(0, 2, (64,))

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + self.drop(block(h))
        return self.out(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16, shuffle=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


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
    assert applicable_schemes(cfg, notes.append) == (["as_built", "lsuv", "yam_chow"], 0) and notes == []
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
    assert applicable_schemes(cfg, print) == (["as_built", "lsuv"], 0)
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


def _fresh_prescreen(config, scheme, gain):
    """The pre-screen pass as it was before the shared build: a fresh model and batch per point."""
    with isolate_rng():
        pl.seed_everything(config.settings.data_seed, verbose=False)
        model, datamodule = config.build()
        batch = data.first_batch(model, datamodule)
        return measure(model, batch, sample_input(config, model, batch), scheme, gain, seed=0, jacobian_samples=0)


@pytest.mark.parametrize(
    "model",
    [
        {"class_path": "autoinit.templates.DeepMLP", "init_args": {"in_features": 8, "classes": 3, "depth": 20}},
        {"class_path": "test_tuner_screening.DropoutResNet"},
    ],
)
def test_screen_points_gives_todays_verdicts_from_one_build(tmp_path, monkeypatch, model):
    data_section = {"class_path": "helpers.BlobsData"} if "DeepMLP" in model["class_path"] else None
    cfg = _config(tmp_path, model, data_section, tune={"data_seed": 3})
    points = [("xavier_normal", 0.5), ("kaiming_normal", 1.0), ("lsuv", 1.0), ("orthogonal", 3.0), ("as_built", 9.0)]
    expected = [_fresh_prescreen(cfg, s, g) for s, g in points]
    builds = []
    real_build = cfg.build
    monkeypatch.setattr(cfg, "build", lambda: builds.append(1) or real_build())
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    verdicts = screen_points(cfg, [*points, points[0]])
    assert torch.rand(1) == before  # the caller's RNG does not move
    for (scheme, gain), stats, verdict in zip(points, expected, verdicts, strict=False):
        got = prescreen(cfg, scheme, gain)
        # the same numbers as a fresh build's pass, to the last bit (dropout and data order included)
        assert (got.loss, got.forward_ratio, got.backward_ratio) == (
            stats.loss,
            stats.forward_ratio,
            stats.backward_ratio,
        )
        assert verdict == screened_out(cfg, scheme, gain)
    assert verdicts[-1] == verdicts[0]
    assert len(builds) == 1  # one build for every point, repeated and single calls included
    if "DeepMLP" in model["class_path"]:
        # the 20-layer ReLU MLP at half the Xavier gain: the signal vanishes, the point is screened out
        assert verdicts[0] is not None and verdicts[0].startswith("forward ×")
        assert verdicts[1] is None and verdicts[4] is None


def test_a_forward_that_rejects_the_data_is_one_line_not_every_scheme_skipped(tmp_path):
    # 5 input features against BlobsData's 8 (a model built for 3-channel images fed 1-channel ones): the
    # baseline itself cannot run, so the study cannot start — not 17 "skipping" notes and a crash after them.
    cfg = _config(
        tmp_path,
        {"class_path": "helpers.TinyClassifier", "init_args": {"features": 5}},
        {"class_path": "helpers.BlobsData"},
    )
    notes = []
    with pytest.raises(
        AutoInitError, match=r"the model's own init \(as_built\) cannot run: the forward pass .* failed"
    ):
        applicable_schemes(cfg, notes.append)
    assert notes == []


def test_a_study_with_nothing_beside_the_baseline_is_one_line(tmp_path):
    # tune.schemes: [as_built] (or every other scheme skipped): no point to compare — the halving plan divided
    # by its empty screen.
    cfg = _config(tmp_path, {"class_path": "helpers.TinyClassifier"}, tune={"schemes": ["as_built"]})
    with pytest.raises(AutoInitError, match=r"no scheme beside the model's own init \(as_built\)"):
        applicable_schemes(cfg, print)
