"""The Hugging Face templates: each builds with the library's own init, learns, and reads deterministic data."""

import pytest
import torch

pytest.importorskip("transformers")

from autoinit import corpus
from autoinit.templates import DigitsData, StdlibTextClasses, StdlibTextLM
from autoinit.templates_hf import HFGPT2, HFBert, HFConvNext, HFViT

TEMPLATES = {
    "gpt2": (lambda: HFGPT2(seq_len=32, width=64, layers=2), lambda: StdlibTextLM(chars=20_000, seq_len=32)),
    "bert": (lambda: HFBert(seq_len=32), lambda: StdlibTextClasses(n=64, seq_len=32, batch_size=16)),
    "vit": (lambda: HFViT(layers=2), lambda: DigitsData(batch_size=16, standardize=True)),
    "convnext": (lambda: HFConvNext(), lambda: DigitsData(batch_size=16, standardize=True)),
}


def _batch(data):
    data.setup()
    return next(iter(data.train_dataloader()))


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_learns_a_batch(name):
    make_model, make_data = TEMPLATES[name]
    model, batch = make_model(), _batch(make_data())
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    losses = []
    for step in range(20):
        loss = model.training_step(batch, step)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


def test_models_have_their_librarys_init_after_construction():
    torch.manual_seed(0)
    gpt = HFGPT2(width=128, layers=4).model
    assert gpt.lm_head.weight is gpt.transformer.wte.weight  # tied head
    assert float(gpt.transformer.wte.weight.std()) == pytest.approx(0.02, rel=0.05)  # N(0, 0.02), not PyTorch's N(0, 1)
    proj = gpt.transformer.h[0].attn.c_proj.weight  # residual projection: 0.02 / sqrt(2 * layers)
    assert float(proj.std()) == pytest.approx(0.02 / 8**0.5, rel=0.05)
    vit = HFViT().model.vit.embeddings
    assert float(vit.position_embeddings.std()) == pytest.approx(0.02, rel=0.1)  # (truncated) normal, std 0.02
    block = HFConvNext().model.convnext.encoder.stages[0].layers[0]
    assert torch.all(block.layer_scale_parameter == 1e-6)


def test_templates_use_eager_attention_and_no_dropout():
    bert = HFBert().model.config
    assert bert.hidden_dropout_prob == 0.0 and bert.attention_probs_dropout_prob == 0.0
    for model in (HFGPT2(layers=1), HFBert(layers=1), HFViT(layers=1)):
        assert model.model.config._attn_implementation == "eager"


def test_text_lm_batches_are_dicts_of_the_corpus_windows():
    data = StdlibTextLM(chars=5000, seq_len=50, batch_size=4)
    data.setup()
    windows = data.dataset.tensors["input_ids"]
    assert windows.shape == (100, 50)
    assert torch.equal(windows.flatten(), corpus.corpus(5000))
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"input_ids", "labels"} and batch["input_ids"].shape == (4, 50)
    assert torch.equal(batch["input_ids"], batch["labels"])


def test_text_classes_are_deterministic_per_seed():
    def tensors(seed):
        data = StdlibTextClasses(classes=3, n=20, seq_len=16, seed=seed)
        data.setup()
        return data.dataset.tensors

    a, b, c = tensors(0), tensors(0), tensors(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["input_ids"], c["input_ids"])
    assert torch.equal(a["labels"], torch.arange(3).repeat_interleave(20))
    assert torch.equal(a["attention_mask"], torch.ones(60, 16, dtype=torch.long))
    assert int(a["input_ids"].min()) >= 0 and int(a["input_ids"].max()) < corpus.VOCAB


def test_text_classes_reject_more_classes_than_modules():
    with pytest.raises(ValueError, match="classes must be between 2 and"):
        StdlibTextClasses(classes=len(corpus.STDLIB_MODULES) + 1)


def test_standardized_digits_have_zero_mean_and_unit_std():
    data = DigitsData(standardize=True)
    data.setup()
    x = data.dataset.tensors[0]
    assert x.shape == (1797, 1, 8, 8)
    assert abs(float(x.mean())) < 1e-4 and float(x.std()) == pytest.approx(1.0, abs=1e-4)
