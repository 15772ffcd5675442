"""The scheme documentation, generated from the registered :class:`~autoinit.schemes.base.Scheme`
objects: docs/schemes.md's table (:func:`markdown_table`) and ``autoinit schemes`` (:func:`text_listing`)."""

from __future__ import annotations

from autoinit.schemes.auto import AUTO_TABLE
from autoinit.schemes.base import DataUse, Scheme
from autoinit.schemes.registry import builtin_scheme_names, get_scheme, registered_schemes

_DATA = {
    DataUse.REQUIRED: "required",
    DataUse.TRACE: "required (traced)",
    DataUse.OPTIONAL: "optional",
    DataUse.NONE: "unused",
}
LEGEND = "`n_in`, `n_out`: the layer's fans; `a`: the gain of the activation after the layer; `g`: the `gain` argument."


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(schemes: list[Scheme] | None = None) -> str:
    """docs/schemes.md's scheme table: one row per scheme (built-ins by default, in registration order)."""
    schemes = schemes if schemes is not None else [get_scheme(n) for n in builtin_scheme_names()]
    lines = ["| scheme | weights | options | `sample_input` | paper |", "|---|---|---|---|---|"]
    for s in schemes:
        options = ", ".join(f"`{o.name}`" for o in s.options)
        lines.append(f"| `{s.name}` | {_cell(s.formula)} | {options} | {_DATA[s.data]} | {_cell(s.paper)} |")
    return "\n".join(lines) + "\n"


def text_listing() -> str:
    """What ``autoinit schemes`` prints: every registered scheme with its formula, paper and example."""
    schemes = registered_schemes()
    width = max(len(s.name) for s in schemes)
    out: list[str] = []
    for s in schemes:
        data = "  [needs data]" if s.needs_data else ""
        out.append(f"{s.name:<{width}}  {s.formula.replace('`', '')}{data}")
        if s.paper:
            out.append(f"{'':<{width}}  — {s.paper}")
        if s.options:
            out.append(f"{'':<{width}}  options: " + "; ".join(f"{o.name}: {o.doc}" for o in s.options))
        if s.example:
            out.append(f"{'':<{width}}  e.g. {s.example}")
    out.append("\nauto picks, per layer, by the activation that follows it:")
    for acts, scheme, reason in AUTO_TABLE:
        out.append(f"  {', '.join(acts):<40} → {scheme}: {reason}")
    out.append("\n" + LEGEND.replace("`", ""))
    return "\n".join(out)
