"""autoinit.data: training data outside a fit, the way Lightning's fit gets it."""

import lightning.pytorch as pl
import pytest
import torch
import userland
from torch.utils.data import DataLoader, TensorDataset

from autoinit import data
from autoinit.errors import AutoInitError


class Recording(pl.LightningDataModule):
    def __init__(self, calls, fail=""):
        super().__init__()
        self.calls, self.fail = calls, fail

    def prepare_data(self):
        self.calls.append("dm.prepare_data")
        if self.fail == "prepare_data":
            raise ConnectionError("could not reach yann.lecun.com\nsecond line")

    def setup(self, stage):
        self.calls.append(f"dm.setup({stage})")

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.arange(10.0).reshape(5, 2)), batch_size=2)


class RecordingNet(pl.LightningModule):
    def __init__(self, calls):
        super().__init__()
        self.calls = calls
        self.lin = torch.nn.Linear(2, 1)

    def prepare_data(self):
        self.calls.append("model.prepare_data")

    def setup(self, stage):
        self.calls.append(f"model.setup({stage})")


def test_hooks_run_in_lightnings_order_once_per_object():
    calls = []
    dm, model = Recording(calls), RecordingNet(calls)
    batch = data.first_batch(model, dm)
    assert torch.equal(batch[0], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    data.first_batch(model, dm)
    assert calls == ["dm.prepare_data", "model.prepare_data", "dm.setup(fit)", "model.setup(fit)"]
    assert data.has_run(dm, "prepare_data") and data.has_run(model, "setup")


@pytest.mark.parametrize(
    ("env", "per_node", "runs"),
    [
        ({"LOCAL_RANK": "1"}, True, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, True, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, False, True),
    ],
)
def test_prepare_data_follows_lightnings_rank_rule(monkeypatch, env, per_node, runs):
    for key in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_LOCALID", "SLURM_NODEID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    calls = []
    dm = Recording(calls)
    dm.prepare_data_per_node = per_node
    data.prepare(RecordingNet(calls), dm)
    assert ("dm.prepare_data" in calls) is runs
    assert "dm.setup(fit)" in calls  # setup runs on every rank


def test_download_in_prepare_data_load_in_setup(tmp_path):
    dm = userland.FileData(str(tmp_path / "mnist"), n=40, batch_size=8, shuffle=False)
    batch = data.first_batch(userland.ResidualDictNet(), dm)
    x, _ = userland.make_samples(40)
    assert set(batch) == {"x", "y"} and torch.equal(batch["x"], x[:8])
    assert (tmp_path / "mnist" / "prepare_calls").read_text().count("\n") == 1


def test_model_with_its_own_data_hooks(tmp_path):
    model = userland.OwnLoaderNet(str(tmp_path / "own"), n=20)
    pl.seed_everything(0)
    x, y = data.first_batch(model)
    assert x.shape == (16, userland.FEATURES) and y.shape == (16,)
    assert (tmp_path / "own" / "own.pt").is_file()


def test_errors_are_one_line_in_the_users_words(tmp_path):
    with pytest.raises(AutoInitError) as err:
        data.first_batch(RecordingNet([]), Recording([], fail="prepare_data"))
    assert str(err.value) == (
        "Recording.prepare_data() failed: ConnectionError: could not reach yann.lecun.com: fix it so that "
        "Trainer.fit can run it"
    )
    with pytest.raises(AutoInitError, match=r"yields no batch .*drop_last=True"):
        data.first_batch(userland.ResidualDictNet(), userland.FileData(str(tmp_path), n=5, batch_size=8))
    with pytest.raises(AutoInitError, match="no training data: RecordingNet defines no train_dataloader"):
        data.first_batch(RecordingNet([]))

    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            raise KeyError("image_0.png")

    with pytest.raises(AutoInitError, match=r"first batch: KeyError: image_0\.png: fix the dataset"):
        data.next_batch(DataLoader(Broken(), batch_size=2))


def test_several_train_loaders_combined_as_in_fit():
    a = DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)
    b = DataLoader(TensorDataset(torch.ones(6, 3)), batch_size=3)
    batch = data.next_batch({"a": a, "b": b})
    assert torch.equal(batch["a"][0], torch.zeros(2, 2)) and torch.equal(batch["b"][0], torch.ones(3, 3))


def test_next_batch_leaves_the_rngs_alone():
    loader = DataLoader(TensorDataset(torch.arange(32.0)), batch_size=4, shuffle=True)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    data.next_batch(loader)
    assert torch.equal(torch.rand(3), expected)


def test_replayable():
    x = TensorDataset(torch.zeros(4, 2))
    assert data.replayable(DataLoader(x)) and data.replayable({"a": DataLoader(x), "b": [DataLoader(x)]})
    assert not data.replayable(DataLoader(userland.OneShotStream(8)))
    assert not data.replayable(iter([1, 2])) and not data.replayable(b for b in [1])
    assert not data.replayable({"a": DataLoader(x), "b": DataLoader(userland.OneShotStream(8))})


class Net(torch.nn.Module):
    def forward(self, x, mask=None):
        return x


class KwNet(torch.nn.Module):
    def forward(self, input_ids, **kwargs):
        return input_ids


def test_default_batch_to_input():
    t = torch.ones(2, 3)
    assert data.default_batch_to_input(t, Net()) is t
    assert data.default_batch_to_input((t, 0), Net()) is t and data.default_batch_to_input([t, 0]) is t
    assert data.default_batch_to_input({"x": t, "y": 1, "mask": 2}, Net()) == {"x": t, "mask": 2}
    assert data.default_batch_to_input(({"x": t, "y": 1}, 0), Net()) == {"x": t}  # (features dict, label)
    assert data.default_batch_to_input({"input_ids": t, "labels": 1}, KwNet()) == {"input_ids": t, "labels": 1}
    with pytest.raises(data.NoModelInput) as err:
        data.default_batch_to_input({"features": t, "y": 1}, Net())
    assert (
        err.value.reason
        == "a training batch is a dict with keys (features, y) and Net.forward takes none of them (x, mask)"
    )
    assert "example_input_array" in str(err.value) and "batch_to_input" in str(err.value)

    class Needs(torch.nn.Module):
        def forward(self, x, mask):
            return x

    with pytest.raises(data.NoModelInput, match=r"Needs.forward also needs mask: set example_input_array"):
        data.default_batch_to_input({"x": t}, Needs())
    with pytest.raises(data.NoModelInput, match="empty tuple"):
        data.default_batch_to_input((), Net())


def test_model_input_and_load_callable():
    batch = {"features": torch.ones(2, 8), "y": torch.zeros(2)}
    assert data.model_input(batch, Net(), "userland.to_input") is batch["features"]
    assert data.model_input(batch, Net(), lambda b: (b["features"],))[0] is batch["features"]
    with pytest.raises(
        AutoInitError, match=r"batch_to_input \(userland.to_input\) failed on a training batch: KeyError: features"
    ):
        data.model_input({"x": 1}, Net(), userland.to_input)
    assert data.load_callable("userland.FileData.setup") is userland.FileData.setup
    assert data.load_callable(len) is len
    for spec, message in [
        ("userland.nope", "cannot import 'userland.nope': 'userland' has no attribute 'nope'"),
        ("nopkg_xyz.fn", "cannot import 'nopkg_xyz.fn': no module named 'nopkg_xyz'"),
        ("userland.FEATURES", "'userland.FEATURES' is a int, not a function"),
        ("to_input", "expected a function or a dotted import path such as 'mypkg.data.to_input', got 'to_input'"),
    ]:
        with pytest.raises(AutoInitError) as err:
            data.load_callable(spec)
        assert str(err.value).startswith(message), str(err.value)
