import lightning.pytorch as pl
import pytest
import torch

from autoinit import AutoInit, init_model
from autoinit.templates import (
    DeepMLP,
    DigitsData,
    LSTMClassifier,
    SequenceData,
    SmallCNN,
    SmallTransformer,
    TeacherData,
)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (DeepMLP(depth=5, width=16), TeacherData(n=256)),
        (DeepMLP(in_features=64, depth=4, width=16, activation="crelu"), DigitsData(flat=True)),
        (SmallCNN(depth=2, channels=8, activation="tanh"), DigitsData()),
        (SmallTransformer(depth=1), SequenceData(n=256)),
        (LSTMClassifier(hidden=16), SequenceData(n=256)),
    ],
)
def test_template_trains_with_autoinit(tmp_path, model, data):
    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[AutoInit(seed=0, verbose=False), Record()],
    ).fit(model, datamodule=data)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


def test_templates_get_the_expected_auto_schemes():
    report = init_model(SmallCNN(depth=2, channels=8, activation="tanh"), sample_input=torch.rand(4, 1, 8, 8), seed=0)
    assert report["features.2.weight"].scheme == "auto→delta_orthogonal"
    report = init_model(LSTMClassifier(hidden=16), seed=0)
    assert report["lstm.weight_hh_l0"].scheme == "orthogonal"
    report = init_model(DeepMLP(depth=3, width=8, activation="crelu"), seed=0)
    assert report["net.2.weight"].scheme == "auto→looks_linear"


def test_sequence_labels_are_majority_tokens():
    data = SequenceData(n=50, vocab=5, seq_len=9)
    data.setup()
    x, y = data.dataset.tensors
    for tokens, label in zip(x, y, strict=True):
        counts = torch.bincount(tokens, minlength=5)
        assert counts[label] == counts.max()
