"""The bundled example configs, shipped inside the package (package data) so that
``autoinit tune --example quickstart`` works from ``pip install`` alone, without a checkout.

This folder is their one source. A checkout's top-level ``configs/`` holds the same files for reading and
editing (the layout the README and CI use); ``tests/test_configs.py`` checks the two are byte-identical,
and ``autoinit examples --write configs`` refreshes the copy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from autoinit.errors import AutoInitError, one_line

FOLDER = Path(__file__).resolve().parent


def names() -> list[str]:
    """The example names: the bundled YAML files' stems, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def path(name: str) -> Path:
    """The bundled config called ``name`` (``quickstart`` or ``quickstart.yaml``); one line naming the valid
    names otherwise."""
    stem = name.removesuffix(".yaml")
    if stem not in names():
        raise AutoInitError(f"no example called '{name}': valid names are {', '.join(names())} (autoinit examples)")
    return FOLDER / f"{stem}.yaml"


def description(name: str) -> str:
    """The first sentence of the config's leading comment."""
    lines = []
    for line in path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or not line.strip("# ") or line.startswith("#    "):
            break  # the comment's first paragraph ends at a blank or an indented (command) line
        lines.append(line.lstrip("#").strip())
    # a sentence ends at '.', '?' or '!' followed by a capital ("He et al. (2015)" does not end one)
    return re.split(r"(?<=[.?!])\s+(?=[A-Z])", " ".join(lines), maxsplit=1)[0].removesuffix(":")


def write(folder: Path) -> list[Path]:
    """Copy every bundled config into ``folder`` (created if needed), overwriting files of the same name."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copyfile(FOLDER / f"{n}.yaml", folder / f"{n}.yaml")) for n in names()]
    except OSError as exc:
        raise AutoInitError(
            f"cannot write the examples to '{folder}' ({one_line(exc)}): give a folder you can write"
        ) from None
