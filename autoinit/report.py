"""What ``init_model`` did, one row per parameter."""

from __future__ import annotations

import re
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
        return self._table([(r.name, *_cells(r)) for r in self.rows])

    def compact(self) -> str:
        """The table with the rows of repeated blocks merged: rows whose names (and notes) differ only in
        integers — a block's index, "branch 3/12" — and that agree on every other column but ``std`` are one
        row, with ``{0..11}`` ranges in place of the integers (``h.{0..11}.attn.c_proj.weight``) and the range
        of their stds. What the callback logs: a 12-block model's 150 rows read as one block's.
        ``str(report)`` keeps every row."""
        groups: dict[tuple[str, ...], list[ReportRow]] = {}
        for r in self.rows:
            *cells, _, note = _cells(r)
            groups.setdefault((_INDEX.sub("#", r.name), *cells, _INTEGER.sub("#", note)), []).append(r)
        body = []
        for (name, *cells, note), rows in groups.items():
            stds = [r.std for r in rows if r.std is not None]
            low, high = (min(stds), max(stds)) if stds else (None, None)
            std = _cells(rows[0])[-2] if low == high else f"{low:.3g}–{high:.3g}"
            body.append(
                (_fill(name, [_INDEX.findall(r.name) for r in rows]), *cells, std,
                 _fill(note, [_INTEGER.findall(_cells(r)[-1]) for r in rows]))
            )  # fmt: skip
        return self._table(body)

    def _table(self, body: list[tuple[str, ...]]) -> str:
        header = ("parameter", "layer", "fan_in", "fan_out", "activation", "scheme", "gain", "std", "note")
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [self.summary(), fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*row).rstrip() for row in body]
        return "\n".join(lines)


# A numeric segment of a parameter's dotted path: the index of a block in a ModuleList / Sequential.
_INDEX = re.compile(r"(?<=\.)\d+(?=\.)|^\d+(?=\.)")
# An integer in a note ("branch 3/12"), not a digit of a decimal ("std 0.02", "a=1.41").
_INTEGER = re.compile(r"(?<![\d.])\d+(?![\d.])")


def _cells(r: ReportRow) -> tuple[str, ...]:
    """A row's columns after its name, as the table prints them."""
    return (
        r.layer_type,
        "" if r.fan_in is None else str(r.fan_in),
        "" if r.fan_out is None else str(r.fan_out),
        r.activation,
        r.scheme or "—",
        "" if r.gain is None else f"{r.gain:.3g}",
        "" if r.std is None else f"{r.std:.4g}",
        "; ".join(filter(None, [r.residual, r.note])),
    )


def _fill(pattern: str, integers: list[list[str]]) -> str:
    """``pattern`` with each ``#`` replaced by the span of the integers the merged rows had there."""
    for column in zip(*integers, strict=True):
        pattern = pattern.replace("#", _span(sorted({int(i) for i in column})), 1)
    return pattern


def _span(values: list[int]) -> str:
    """``[3]`` → ``3``; ``[0, 1, 2]`` → ``{0..2}``; ``[0, 2, 5]`` → ``{0,2,5}``."""
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f"{{{values[0]}..{values[-1]}}}"
    return "{" + ",".join(map(str, values)) + "}"


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
