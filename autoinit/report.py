"""What ``init_model`` did, one row per parameter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KEPT = "as built"  # the scheme column of a parameter kept as the model built it


@dataclass
class ReportRow:
    """One parameter: where it lives, its fans, the activation after its layer, and what was done."""

    name: str
    layer_type: str
    fan_in: int | None
    fan_out: int | None
    activation: str
    scheme: str | None  # None when the parameter was left alone
    gain: float | None
    std: float | None
    note: str = ""
    residual: str = ""  # where the layer sits in a residual branch, or "classifier head" (traced models)

    @property
    def initialized(self) -> bool:
        """Written by the scheme (not kept as built, not left alone)."""
        return self.scheme is not None and self.scheme != KEPT

    @property
    def kept(self) -> bool:
        """Kept as the model built it: its own init (the note says why)."""
        return self.scheme == KEPT


@dataclass
class InitReport:
    """The result of :func:`autoinit.init_model`. ``str(report)`` is a table, ``to_dict()`` plain data."""

    scheme: str
    gain: float
    seed: int | None
    activation_source: str  # "traced" (from sample_input) or "module order"
    rows: list[ReportRow] = field(default_factory=list)
    structure: str = ""  # the residual branches and classifier head found by the trace ('' for a plain net)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> ReportRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def initialized(self) -> list[ReportRow]:
        return [r for r in self.rows if r.initialized]

    @property
    def kept(self) -> list[ReportRow]:
        """Parameters kept as the model built them (its own init), each with the reason."""
        return [r for r in self.rows if r.kept]

    @property
    def left_alone(self) -> list[ReportRow]:
        """Parameters not selected (include/exclude, frozen): never written, never judged."""
        return [r for r in self.rows if r.scheme is None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "gain": self.gain,
            "seed": self.seed,
            "activation_source": self.activation_source,
            "structure": self.structure,
            "parameters": [asdict(r) for r in self.rows],
        }

    def summary(self) -> str:
        text = (
            f"autoinit: scheme={self.scheme} gain={self.gain:g} — {len(self.initialized)} parameters "
            f"initialized, {len(self.kept)} kept as built, {len(self.left_alone)} left alone "
            f"(activations: {self.activation_source})"
        )
        return f"{text}; {self.structure}" if self.structure else text

    def __str__(self) -> str:
        header = ("parameter", "layer", "fan_in", "fan_out", "activation", "scheme", "gain", "std", "note")
        body = [
            (
                r.name,
                r.layer_type,
                "" if r.fan_in is None else str(r.fan_in),
                "" if r.fan_out is None else str(r.fan_out),
                r.activation,
                r.scheme or "—",
                "" if r.gain is None else f"{r.gain:.3g}",
                "" if r.std is None else f"{r.std:.4g}",
                "; ".join(filter(None, [r.residual, r.note])),
            )
            for r in self.rows
        ]
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [self.summary(), fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*row).rstrip() for row in body]
        return "\n".join(lines)


@dataclass
class Ledger:
    """What is done to each parameter while initializing, by parameter name: the scheme labels and notes
    of its report row, or why it is left alone."""

    labels: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    left_alone: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)  # kept as the model built it, and why

    def record(self, param: str, label: str, note: str = "") -> None:
        self.labels.setdefault(param, []).append(label)
        if note:
            self.annotate(param, note)

    def relabel(self, param: str, label: str, note: str) -> None:
        self.labels[param] = [label]
        self.notes[param] = [note]

    def annotate(self, param: str, note: str) -> None:
        self.notes.setdefault(param, []).append(note)
