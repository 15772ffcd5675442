"""Character-level text that ships with every Python: the standard library's own ``.py`` sources.

No download and no extra package: the files are read from ``sysconfig.get_paths()["stdlib"]``, always the
same modules in the same order (:data:`STDLIB_MODULES`), so a corpus is deterministic for a given Python
(another Python version ships other text: never pin its content). Characters map to a fixed vocabulary of
:data:`VOCAB` ids, whatever the corpus: 0 for any character outside it, 1 for a newline, 2… for the
printable ASCII characters (space to ``~``).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import torch

from autoinit.errors import AutoInitError

# Long, prose-rich modules present in every supported Python (3.10+), in the order a corpus reads them.
STDLIB_MODULES = ("argparse", "textwrap", "difflib", "inspect", "dataclasses", "functools", "typing", "enum")
VOCAB = 2 + (ord("~") - ord(" ") + 1)  # unknown, newline, printable ASCII: 97


def module_text(name: str) -> str:
    """The source of the standard-library module ``name`` (one of :data:`STDLIB_MODULES`)."""
    path = Path(sysconfig.get_paths()["stdlib"]) / f"{name}.py"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AutoInitError(
            f"the text corpus reads the standard library's sources and {path} cannot be read ({exc.strerror}): "
            "use a Python installation that ships its .py sources"
        ) from None


def encode(text: str) -> torch.Tensor:
    """Character ids (int64) of ``text`` in the fixed vocabulary."""
    codes = torch.from_numpy(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64))
    printable = (codes >= ord(" ")) & (codes <= ord("~"))
    ids = torch.where(printable, codes - ord(" ") + 2, torch.zeros_like(codes))
    return torch.where(codes == ord("\n"), torch.ones_like(codes), ids)


def corpus(chars: int) -> torch.Tensor:
    """The first ``chars`` character ids of :data:`STDLIB_MODULES` read one after another."""
    if chars < 2:
        raise AutoInitError(f"a text corpus needs at least 2 characters, got chars={chars}")
    parts: list[torch.Tensor] = []
    total = 0
    for name in STDLIB_MODULES:
        parts.append(encode(module_text(name)[: chars - total]))
        total += len(parts[-1])
        if total >= chars:
            break
    return torch.cat(parts)[:chars]
