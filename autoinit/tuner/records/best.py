"""best.yaml's record: :class:`Pick`, the one place its keys are written and read (``autoinit tune`` writes
it, ``TuneResult`` holds one, ``TunedAutoInit`` and ``AutoInit.from_file`` read it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from autoinit.errors import AutoInitError

# Written only when set: a tuned learning-rate factor, a proxy study's proxy/transfer check/recommendation,
# the study's name (``TuneResult.to_yaml``), and a seed a user may add by hand (``AutoInit.from_file``).
_OPTIONAL = frozenset({"lr_scale", "proxy", "transfer", "recommends", "study", "seed"})


@dataclass(frozen=True, kw_only=True)
class Init:
    """A point of best.yaml (``baseline``, ``recommends``, an entry of ``tied_with``): a scheme, its gain and
    options, the learning-rate factor (None: not tuned, not written); ``score`` where listed; ``role``: how a
    proxy study's transfer check names it ("pick", "runner_up", "baseline"), else None."""

    scheme: str
    gain: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    lr_scale: float | None = None
    score: float | None = None
    role: str | None = None

    def to_yaml_dict(self) -> dict[str, Any]:
        """As best.yaml's ``baseline`` and ``tied_with`` list a point: scheme, gain, then score and lr_scale
        when set."""
        out: dict[str, Any] = {"scheme": self.scheme, "gain": self.gain}
        if self.score is not None:
            out["score"] = self.score
        if self.lr_scale is not None:
            out["lr_scale"] = self.lr_scale
        return out

    @property
    def lr_factor(self) -> float:
        """The factor on the learning rate a fit applies (1 when not tuned)."""
        return 1.0 if self.lr_scale is None else self.lr_scale

    @classmethod
    def from_yaml_dict(cls, data: Mapping[str, Any]) -> Init:
        """From one of best.yaml's points (a missing key: its default)."""
        return cls(
            scheme=data["scheme"],
            gain=data.get("gain", 1.0),
            options=dict(data.get("options") or {}),
            lr_scale=data.get("lr_scale"),
            score=data.get("score"),
            role=data.get("role"),
        )


@dataclass(frozen=True, kw_only=True)
class Pick:
    """What a tune picked, as best.yaml holds it; the field order is the file's key order.

    Attributes:
        scheme, gain, options: the best init (``AutoInit(scheme, gain, options=options)``).
        score, score_std: its score (lower is better) and the std over init seeds; ``objective``: what the
            score measures ("auc", "final", "steps_to").
        baseline: the model's own init's point (``scheme``, ``gain``, ``lr_scale`` when tuned);
            ``baseline_score``: its score; ``own_init_is_default``: whether it is PyTorch's default (None: not
            known); ``default_score``: PyTorch's default's score when the study trained it.
        improvement: ``(baseline_score - score) / baseline_score``; ``significant``: Welch's t-test of the
            pick against the baseline over seeds (None with one seed); ``tied_with``: the points tied with it.
        stalled, baseline_stalled: the pick's / the baseline's loss never left its start.
        steps, seeds, trial, config_sha256, autoinit_version: how and from what it was measured.
        lr_scale: the best learning-rate factor when ``lr_scale`` was tuned, else None (not written).
        keep_baseline: the verdict is to keep the model's own init (``verdicts.baseline_kept``).
        proxy, transfer, recommends: a proxy study's overrides, its transfer check on the full model, and the
            init that check recommends (not written otherwise).
        study: the study's name (``TuneResult.to_yaml``); seed: an init seed added to the file by hand.

    A file's keys this version does not know (an older or newer autoinit's) are ignored on reading; a key
    missing from it takes its default.
    """

    scheme: str
    gain: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    score_std: float | None = None
    objective: str | None = None
    baseline: dict[str, Any] | None = None
    baseline_score: float | None = None
    own_init_is_default: bool | None = None
    default_score: float | None = None
    improvement: float | None = None
    significant: bool | None = None
    tied_with: list[dict[str, Any]] | None = None
    stalled: bool = False
    baseline_stalled: bool | None = None
    steps: int | None = None
    seeds: int | None = None
    trial: int | None = None
    config_sha256: str | None = None
    autoinit_version: str | None = None
    lr_scale: float | None = None
    keep_baseline: bool = False
    proxy: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    recommends: dict[str, Any] | None = None
    study: str | None = None
    seed: int | None = None

    def to_yaml_dict(self) -> dict[str, Any]:
        """best.yaml's content, in its key order (optional keys only when set)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in _OPTIONAL:
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_yaml_dict(cls, data: Any, where: str = "best.yaml") -> Pick:
        """From best.yaml's content: unknown keys ignored, missing ones at their defaults; one line naming
        ``where`` when it is not a pick (no ``scheme``, ``options`` not a mapping)."""
        if not isinstance(data, Mapping) or data.get("scheme") is None:
            raise AutoInitError(
                f"{where} has no 'scheme' key: expected the best.yaml written by `autoinit tune` (scheme, gain, "
                "options)"
            )
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise AutoInitError(f"'options' in {where} must be a mapping, got {options!r}")
        known = {f.name for f in fields(cls)} - {"options"}
        return cls(options=dict(options), **{k: v for k, v in data.items() if k in known and v is not None})

    @property
    def init(self) -> Init:
        """The picked init."""
        return Init(scheme=self.scheme, gain=self.gain, options=dict(self.options), lr_scale=self.lr_scale)

    @property
    def baseline_init(self) -> Init | None:
        """The model's own init as measured (None when the study has no baseline)."""
        return None if not self.baseline else Init.from_yaml_dict(self.baseline)

    @property
    def recommended_init(self) -> Init | None:
        """What a proxy study's transfer check recommends (None without a check)."""
        return None if not self.recommends else Init.from_yaml_dict(self.recommends)

    @property
    def tied(self) -> list[Init]:
        """The points tied with the pick, best first (none with one seed)."""
        return [Init.from_yaml_dict(t) for t in self.tied_with or ()]
