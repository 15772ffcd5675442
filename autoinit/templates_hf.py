"""Tiny Hugging Face ``transformers`` models as LightningModules: real library models, built from their
config objects with random weights (never downloaded), for tune configs, tests and benchmarks. Needs the
``hf`` extra: ``pip install 'lightning-autoinit[hf]'``.

Each wrapper holds the library model as ``self.model``, built in ``__init__``, so the weights it has after
construction are the library's own init (``post_init()`` → the model's ``_init_weights``: N(0, 0.02)
linears and embeddings, 1/√(2L)-scaled residual projections in GPT-2, truncated-normal position
embeddings and CLS token in ViT, LayerScale γ = 1e-6 in ConvNeXt). Training uses the loss the library
computes from ``labels``, and AdamW.

Attention runs HF's ``"eager"`` implementation (matmul, softmax, masked fill): every op in it has a
``torch.vmap`` batching rule, so the tuner trains candidates as one stacked population, each member
exactly as alone. ``"sdpa"`` (``scaled_dot_product_attention``) trains too, but vmap has no batching rule
for its CPU kernels, so a population would run it member by member. Dropout defaults to 0: a few dozen
steps compare inits, and dropout noise only blurs them (a population draws its own dropout masks, so a
member's curve would not equal its sequential trial's).

Models: :class:`HFGPT2` (causal LM, tied output head; batches ``{"input_ids", "labels"}`` from
:class:`~autoinit.templates.StdlibTextLM`), :class:`HFBert` (sequence classification; batches from
:class:`~autoinit.templates.StdlibTextClasses`), :class:`HFViT` and :class:`HFConvNext` (image
classification on 8×8 single-channel images, batches ``(pixel_values, labels)`` from
:class:`~autoinit.templates.DigitsData`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

try:
    import transformers
except ImportError as exc:  # pragma: no cover - the hf extra is missing
    raise ImportError(
        f"autoinit.templates_hf needs Hugging Face transformers ({exc}): pip install 'lightning-autoinit[hf]'"
    ) from exc

from autoinit import corpus


class _HFModule(pl.LightningModule):
    """A ``transformers`` model in ``self.model``, trained on the loss it computes, with AdamW."""

    model: Any

    def __init__(self, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, dict):
            loss = self(**batch).loss
        else:
            inputs, labels = batch
            loss = self(inputs, labels=labels).loss
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class HFGPT2(_HFModule):
    """Hugging Face ``GPT2LMHeadModel``: ``layers`` pre-LN blocks of ``width`` units over a character
    vocabulary (:data:`autoinit.corpus.VOCAB`), learned positions, the output head tied to the token
    embedding. ``forward(input_ids, labels=None)`` returns HF's ``CausalLMOutput`` (logits, and the
    next-token loss when ``labels`` are given)."""

    def __init__(
        self,
        vocab: int = corpus.VOCAB,
        seq_len: int = 64,
        width: int = 128,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
        attention: str = "eager",
        lr: float = 3e-3,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.save_hyperparameters()
        config = transformers.GPT2Config(
            vocab_size=vocab,
            n_positions=seq_len,
            n_embd=width,
            n_layer=layers,
            n_head=heads,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            bos_token_id=0,
            eos_token_id=0,
            attn_implementation=attention,
        )
        self.model = transformers.GPT2LMHeadModel(config)
        # transformers finds the loss from the class name, and "GPT2LMHeadModel" names none: it would warn
        # once and fall back to this very loss.
        self.model.loss_type = "ForCausalLM"

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        return self.model(input_ids=input_ids, labels=labels)


class HFBert(_HFModule):
    """Hugging Face ``BertForSequenceClassification``: ``layers`` post-LN encoder blocks of ``width``
    units over a character vocabulary, a pooler and a ``classes``-way head. ``forward(input_ids,
    attention_mask=None, labels=None)`` returns HF's ``SequenceClassifierOutput``."""

    def __init__(
        self,
        vocab: int = corpus.VOCAB,
        seq_len: int = 64,
        classes: int = 2,
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.0,
        attention: str = "eager",
        lr: float = 1e-3,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.save_hyperparameters()
        config = transformers.BertConfig(
            vocab_size=vocab,
            max_position_embeddings=seq_len,
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * width,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=classes,
            pad_token_id=0,
            attn_implementation=attention,
        )
        self.model = transformers.BertForSequenceClassification(config)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class HFViT(_HFModule):
    """Hugging Face ``ViTForImageClassification`` on ``image_size``² images of ``channels`` channels:
    ``patch``×``patch`` patches, a CLS token and learned position embeddings (raw parameters), ``layers``
    pre-LN blocks of ``width`` units and a linear head. ``forward(pixel_values, labels=None)`` returns
    HF's ``ImageClassifierOutput``."""

    def __init__(
        self,
        image_size: int = 8,
        channels: int = 1,
        patch: int = 2,
        classes: int = 10,
        width: int = 64,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
        attention: str = "eager",
        lr: float = 3e-3,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.save_hyperparameters()
        config = transformers.ViTConfig(
            image_size=image_size,
            num_channels=channels,
            patch_size=patch,
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=2 * width,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=classes,
            attn_implementation=attention,
        )
        self.model = transformers.ViTForImageClassification(config)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        return self.model(pixel_values=pixel_values, labels=labels)


class HFConvNext(_HFModule):
    """Hugging Face ``ConvNextForImageClassification`` on small images of ``channels`` channels: a
    ``patch``×``patch`` stem, stages of ConvNeXt blocks (7×7 depthwise conv, LayerNorm, inverted MLP,
    LayerScale γ) of ``widths`` channels and ``depths`` blocks, downsampling 2× between stages, and a
    linear head. ``forward(pixel_values, labels=None)`` returns HF's ``ImageClassifierOutput``."""

    def __init__(
        self,
        channels: int = 1,
        patch: int = 1,
        classes: int = 10,
        widths: tuple[int, ...] = (32, 64),
        depths: tuple[int, ...] = (2, 2),
        drop_path: float = 0.0,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.save_hyperparameters()
        if len(widths) != len(depths):
            raise ValueError(f"widths and depths need one entry a stage, got {len(widths)} and {len(depths)}")
        config = transformers.ConvNextConfig(
            num_channels=channels,
            patch_size=patch,
            num_stages=len(widths),
            hidden_sizes=list(widths),
            depths=list(depths),
            drop_path_rate=drop_path,
            num_labels=classes,
        )
        self.model = transformers.ConvNextForImageClassification(config)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        return self.model(pixel_values=pixel_values, labels=labels)
