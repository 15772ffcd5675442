"""optuna-dashboard reads a tune's study: opened the way the dashboard opens it (``optuna_dashboard.wsgi``
with the storage string a user passes to ``optuna-dashboard``), every trial is there with its intermediate
values (the running-mean loss reported every ``report_every`` steps)."""

import io
import json
from wsgiref.util import setup_testing_defaults

import optuna_dashboard
from rich.console import Console

import autoinit


def _get(app, path):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200"), status
    return json.loads(body)


def _tune(tmp_path, **keys):
    from helpers import BlobsData, TinyClassifier

    return autoinit.tune(
        TinyClassifier,
        datamodule=BlobsData,
        trainer={"accelerator": "cpu"},
        steps=12,
        seeds=2,
        n_trials=3,
        report_every=4,
        schemes=["kaiming_normal"],
        gain=[0.5, 1.0],
        search="grid",  # every trial a new point, so every trial is trained (none copied from a duplicate)
        pruner="none",
        output=str(tmp_path / "out"),
        console=Console(quiet=True),
        **keys,
    )


def _check(storage, result):
    app = optuna_dashboard.wsgi(storage)
    studies = _get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == [result.study_name]
    detail = _get(app, f"/api/studies/{studies[0]['study_id']}")
    trials = sorted(detail["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in trials] == [r.number for r in result.trials]
    for t in trials:
        steps = [v["step"] for v in t["intermediate_values"]]
        assert steps == [4, 8, 12, 16, 20, 24]  # seeds × steps, every report_every
        assert t["state"] == "Complete"
        assert t["values"][0] == next(r.score for r in result.trials if r.number == t["number"])


def test_dashboard_reads_the_journal_file(tmp_path):
    result = _tune(tmp_path)
    _check(str(tmp_path / "out" / "study.journal"), result)


def test_dashboard_reads_an_rdb_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = _tune(tmp_path, storage=url)
    _check(url, result)
