"""The proxy of a model: the same config with ``tune.proxy``'s overrides (a narrower, shallower model), tuned
in a study of its own (``<study_name>-proxy`` in ``<output>-proxy``: never mixed with a study of the full
model), whose pick :mod:`autoinit.tuner.report.transfer` then checks on the full model.

A proxy key must be an argument of the model or the data as the config resolves it (LightningCLI's
``model.init_args.<name>``, or the model class's signature for :func:`autoinit.tune`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autoinit.errors import AutoInitError
from autoinit.tuner.sources.source import TrialSource

# What a proxy study's name and output folder add to the full model's.
PROXY_SUFFIX = "-proxy"


def check_proxy_keys(proxy: dict[str, Any], valid: Iterable[str], where: str) -> None:
    """A one-line error naming a proxy key that is not among ``valid`` (the model's and data's arguments),
    with the closest valid key and the list of them."""
    valid = list(valid)
    for key in proxy:
        if key in valid:
            continue
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        listed = ", ".join(valid) if valid else "none"
        raise AutoInitError(
            f"{where}: tune.proxy key '{key}' is not an argument of the model or the data{hint}; valid keys: {listed}"
        )


def describe(proxy: dict[str, Any]) -> str:
    """``width=64, depth=6``: the proxy's overrides, by their last name."""
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in proxy.items())


def proxy_source(full: TrialSource, *, study_name: str | None = None, output: Path | None = None) -> TrialSource:
    """The source whose trials build the proxy of ``full``'s model: ``full`` with ``tune.proxy``'s overrides
    and no proxy of its own, in the study ``<study_name>-proxy`` writing to ``<output>-proxy`` (or the
    ``study_name`` and ``output`` given)."""
    proxy = full.settings.proxy
    if not proxy:
        raise AutoInitError("no tune.proxy: nothing to tune a proxy of")
    name = study_name or full.study_name + PROXY_SUFFIX
    out = output or full.output.with_name(full.output.name + PROXY_SUFFIX)
    return full.derive(proxy, study_name=name, output=out)
