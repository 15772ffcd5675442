"""The transfer check: a depth-dependent scheme re-derives for the full model, the verdict on a pick built to
transfer and one built not to, and what best.yaml then recommends (and a fit follows)."""

import functools
import math

import lightning.pytorch as pl
import pytest
import yaml
from rich.console import Console

from autoinit.tuner.records.best import Init, Pick
from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.report.pick import TunedAutoInit
from autoinit.tuner.report.transfer import CheckRow, Role, Verdict, judge, measure
from autoinit.tuner.report.verdicts import fit_line, recommended
from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.proxy import PROXY_SUFFIX, proxy_source
from autoinit.tuner.trials.trial import run_trial

DIGITS = {"class_path": "autoinit.templates.DigitsData", "init_args": {"flat": True, "batch_size": 64}}


def _config(tmp_path, model, tune_keys, name="full.yaml"):
    cfg = {
        "model": model,
        "data": DIGITS,
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {"output": str(tmp_path / "out"), **tune_keys},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path)


class _InnerWeights(pl.Callback):
    """The std of each residual branch's first layer right after AutoInit (it runs before this)."""

    def __init__(self) -> None:
        self.stds: list[float] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.stds = [float(block[0].weight.detach().std()) for block in pl_module.blocks]


def _inner_stds(source, point):
    seen = _InnerWeights()
    train = functools.partial(run_trial, callbacks_after_init=[seen])
    rows = measure(source, {Role.PICK: point}, train=train)
    assert rows[Role.PICK].status == TrialStatus.COMPLETE
    return seen.stds


def test_the_check_re_derives_fixup_for_the_full_depth(tmp_path):
    width = 64
    model = {
        "class_path": "autoinit.templates.ResidualMLP",
        "init_args": {"in_features": 64, "classes": 10, "blocks": 8, "width": width},
    }
    full = _config(tmp_path, model, {"steps": 1, "seeds": 1, "proxy": {"model.init_args.blocks": 2}})
    point = {"scheme": "fixup", "gain": 1.0, "options": {}}
    he = math.sqrt(2 / width)
    # Fixup's branch inner layers: He × L^(−1/(2m−2)) with m = 2 layers per branch: L^(−1/2)
    for source, blocks in ((proxy_source(full), 2), (full, 8)):
        stds = _inner_stds(source, point)
        assert len(stds) == blocks
        for std in stds:
            assert std == pytest.approx(he / math.sqrt(blocks), rel=0.06)


def _mlp(depth):
    init_args = {"in_features": 64, "classes": 10, "depth": depth, "width": 32, "lr": 0.02}
    return {"class_path": "autoinit.templates.DeepMLP", "init_args": init_args}


def test_a_gain_that_works_only_at_the_proxys_depth_does_not_transfer_and_one_that_does_transfers(tmp_path):
    full = _config(tmp_path, _mlp(30), {"steps": 30, "seeds": 3, "proxy": {"model.init_args.depth": 2}})
    large = {"scheme": "kaiming_normal", "gain": 2.0, "options": {}}
    textbook = {"scheme": "kaiming_normal", "gain": 1.0, "options": {}}
    # at the proxy's depth the large gain trains
    at_proxy = measure(proxy_source(full), {Role.PICK: large})[Role.PICK]
    assert at_proxy.learns
    # at the full depth: 2^30 over 30 layers diverges; the textbook gain trains where the own init stalls
    rows = measure(
        full,
        {Role.PICK: textbook, Role.BASELINE: {"scheme": "as_built", "gain": 1.0, "options": {}}, Role.RUNNER_UP: large},
    )
    base, good, bad = rows[Role.BASELINE], rows[Role.PICK], rows[Role.RUNNER_UP]
    assert bad.status == TrialStatus.DIVERGED
    transferred = judge(good, base, bad, 3)
    assert (transferred.verdict, transferred.recommends) == (Verdict.TRANSFERRED, Role.PICK)
    failed = judge(bad, base, good, 3)  # the large gain as the pick, the textbook gain as the runner-up
    assert failed.verdict == Verdict.NOT_TRANSFERRED and "diverged" in failed.reason
    assert failed.recommends == Role.RUNNER_UP


def _row(number, score, std, *, stalled=False, status=TrialStatus.COMPLETE, roles=(Role.PICK,)):
    return CheckRow(
        roles=list(roles),
        number=number,
        scheme=f"s{number}",
        gain=1.0,
        score=score,
        score_std=std,
        stalled=stalled,
        status=status,
    )


@pytest.mark.parametrize(
    ("pick", "runner_up", "verdict", "recommends"),
    [
        (_row(1, 1.0, 0.01), None, Verdict.TRANSFERRED, Role.PICK),
        (_row(1, 1.995, 0.01), None, Verdict.TIED, Role.BASELINE),
        (_row(1, 1.995, 0.01), _row(2, 1.0, 0.01), Verdict.TIED, Role.RUNNER_UP),
        (_row(1, 3.0, 0.01), None, Verdict.NOT_TRANSFERRED, Role.BASELINE),
        (_row(1, 1.0, 0.0, stalled=True), _row(2, 2.5, 0.01), Verdict.NOT_TRANSFERRED, Role.BASELINE),
        (_row(1, None, None, status=TrialStatus.FAILED), None, Verdict.NOT_TRANSFERRED, Role.BASELINE),
    ],
)
def test_the_verdict_rules(pick, runner_up, verdict, recommends):
    base = _row(0, 2.0, 0.01, roles=(Role.BASELINE,))
    j = judge(pick, base, runner_up, 3)
    assert (j.verdict, j.recommends) == (verdict, recommends)


def test_the_pick_being_the_own_init_is_a_tie_that_keeps_it():
    base = _row(0, 2.0, 0.01, roles=(Role.BASELINE, Role.PICK))
    j = judge(base, base, _row(2, 1.99, 0.01), 3)
    assert (j.verdict, j.recommends) == (Verdict.TIED, Role.BASELINE)


def test_a_tune_with_a_proxy_records_the_check_reads_it_back_and_the_fit_follows_it(tmp_path):
    tune_keys = {
        "steps": 6,
        "seeds": 2,
        "schemes": ["kaiming_normal"],
        "gain": 1.0,
        "search": "grid",
        "proxy": {"model.init_args.depth": 2, "model.init_args.width": 8},
    }
    full = _config(tmp_path, _mlp(4), tune_keys)
    console = Console(record=True, width=200)
    assert tune(full, console) == 0
    out = tmp_path / ("out" + PROXY_SUFFIX)
    text = (out / "best.yaml").read_text()
    best = yaml.safe_load(text)
    assert yaml.safe_dump(Pick.from_yaml_dict(best).to_yaml_dict(), sort_keys=False) == text  # proxy keys too
    assert best["proxy"] == {"model.init_args.depth": 2, "model.init_args.width": 8}
    transfer = best["transfer"]
    assert transfer["verdict"] in {v.value for v in Verdict}
    roles = sorted(role for row in transfer["rows"] for role in row["roles"])
    # one scheme beside the own init: the runner-up is it when the proxy picked the own init, else none
    assert roles == (["baseline", "pick", "runner_up"] if best["scheme"] == "as_built" else ["baseline", "pick"])
    assert len(transfer["rows"]) == 2
    assert transfer["cost"]["check_member_steps"] == 2 * 2 * 6
    assert transfer["cost"]["proxy_member_steps"] == 2 * 2 * 6
    rec = best["recommends"]
    pick = Pick.from_yaml_dict(best)
    assert recommended(pick) == Init.from_yaml_dict(rec) and best["keep_baseline"] == (rec["role"] == "baseline")
    callback = TunedAutoInit.from_pick(best)
    assert (callback.scheme, callback.gain) == (rec["scheme"], rec["gain"])
    assert fit_line(pick).startswith("fitting with the ")
    text = console.export_text()
    assert "on the proxy (depth=2, width=8)" in text and "On the full model the pick" in text
    # run again: the study is finished and the check is stored with it
    again = Console(record=True, width=200)
    assert tune(full, again) == 0
    assert "read back: nothing trained" in again.export_text()
    assert yaml.safe_load((out / "best.yaml").read_text())["transfer"]["rows"] == transfer["rows"]
    assert not (tmp_path / "out").exists()  # the full model's own study folder is never touched
