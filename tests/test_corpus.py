"""The character corpus from the standard library's sources: fixed vocabulary, deterministic text."""

import sysconfig

import pytest
import torch

from autoinit import corpus
from autoinit.errors import AutoInitError


def test_vocabulary_is_fixed():
    assert corpus.VOCAB == 97
    assert corpus.encode("\n !~a").tolist() == [1, 2, 3, 96, 67]
    assert corpus.encode("é\t€").tolist() == [0, 0, 0]  # one unknown id per character, not per byte


def test_corpus_reads_the_modules_in_order_and_stops_at_chars():
    first = corpus.module_text(corpus.STDLIB_MODULES[0])
    second = corpus.module_text(corpus.STDLIB_MODULES[1])
    n = len(first) + 100
    ids = corpus.corpus(n)
    assert len(ids) == n
    assert torch.equal(ids, corpus.encode(first + second[:100]))
    assert torch.equal(corpus.corpus(n), ids)


def test_missing_stdlib_sources_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    with pytest.raises(AutoInitError, match=r"cannot be read .*ships its \.py sources"):
        corpus.corpus(100)


def test_too_short_a_corpus_is_refused():
    with pytest.raises(AutoInitError, match="at least 2 characters"):
        corpus.corpus(1)
