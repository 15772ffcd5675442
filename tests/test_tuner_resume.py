"""Nothing lost, nothing hangs: a study killed (``kill -9``) or interrupted (Ctrl-C) at any moment, then
resumed with the same command, measures the same points and picks the same init as an uninterrupted one.

Every wait here is for a state (a process stopped, a trial in the journal), with a generous deadline.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import process_gone
from optuna.trial import TrialState
from rich.console import Console

from autoinit.tuner.records.record import GOOD_STATES, TrialRecord, TrialStatus, trial_status
from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig

pytestmark = pytest.mark.multiprocess

TESTS = Path(__file__).parent
N_TRIALS = 7  # 4 anchors (default and 3 schemes at gain 1), then 3 points the sampler proposes
TUNE = {
    "schemes": ["kaiming_normal", "xavier_uniform", "orthogonal"],
    "gain": {"low": 0.5, "high": 2.0},
    "steps": 30,
    "seeds": 1,
    "n_trials": N_TRIALS,
    "search": "tpe",
    "report_every": 10,
    # tests/scripts/tune_dying.py kills the run inside a sequential trial (run_trial, LossCurve's batch
    # hook); a worker killed mid-population is test_tuner_launcher's kill -9 test (population: the default)
    "population": "off",
}
RESIDUAL = {"class_path": "helpers.ResidualMLP", "init_args": {"lr": 0.02}}
DICT_DATA = {"class_path": "helpers.DictBlobsData", "init_args": {"n": 256, "batch_size": 16}}
DEADLINE = 240  # seconds, for anything to happen on a loaded 2-core machine


def _write(tmp_path, name, model=RESIDUAL, data=DICT_DATA, **tune):
    path = tmp_path / f"{name}.yaml"
    cfg = {
        "model": model,
        "data": data,
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {**TUNE, "output": str(tmp_path / name), **tune},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _resume(path, *overrides):
    """The same command again, in this process; a tune.timeout turns a hang into a failure."""
    console = Console(record=True, width=160)
    code = tune(TuneConfig(path, ["--tune.timeout=300", *overrides]), console)
    return code, console.export_text()


def _study(path):
    config = TuneConfig(path, [])
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(config.output / "study.journal"))
    )
    return optuna.load_study(study_name=config.study_name, storage=storage)


def _points(path):
    """The (scheme, gain, status) of every good trial, as a sorted list (a repeated point shows twice): a
    retried anchor pruned where the uninterrupted run completed it shows here."""
    return sorted(
        (t.params["scheme"], round(t.params["gain"], 6), trial_status(t).value)
        for t in _study(path).get_trials(deepcopy=False, states=GOOD_STATES)
    )


def _pick(path):
    best = yaml.safe_load((Path(TuneConfig(path, []).output) / "best.yaml").read_text())
    return best["scheme"], best["gain"]


def _assert_complete(path):
    states = [t.state for t in _study(path).get_trials(deepcopy=False)]
    assert sum(s in GOOD_STATES for s in states) == N_TRIALS
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: the points it measures and its pick."""
    tmp = tmp_path_factory.mktemp("reference")
    path = _write(tmp, "study")
    code, _ = _resume(path)
    assert code == 0
    _assert_complete(path)
    return _points(path), _pick(path)


def _wait(predicate, what):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if (value := predicate()) is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _stopped(proc):
    if proc.poll() is not None:
        raise AssertionError(f"the run ended (exit {proc.returncode}) instead of stopping: {proc.stdout.read()}")
    with open(f"/proc/{proc.pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T" or None


@pytest.mark.parametrize(
    ("moment", "n"),
    [
        ("before_first_step", 2),  # the kaiming_normal anchor, its point chosen, no step taken
        ("mid_trial", 2),  # the same anchor, after its first report to the pruner
        ("between_suggestions", 6),  # a sampled point: its scheme chosen, its gain not yet
        ("writing_outputs", 1),  # the study is complete; best.yaml is half written
    ],
)
def test_kill_9_then_the_same_command_completes_the_same_search(tmp_path, reference, moment, n):
    path = _write(tmp_path, "study")
    cmd = [sys.executable, str(TESTS / "scripts" / "tune_dying.py"), moment, str(n), str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        if moment == "mid_trial":
            # It stopped itself mid-trial: the trial is RUNNING with a reported value; kill it from outside.
            _wait(lambda: _stopped(proc), "the run to stop mid-trial")
            running = _study(path).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            assert len(running) == 1 and running[0].intermediate_values
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, out
    before = _study(path).get_trials(deepcopy=False)
    if moment == "writing_outputs":
        assert sum(t.state in GOOD_STATES for t in before) == N_TRIALS
    else:
        assert [t.state for t in before].count(TrialState.RUNNING) == 1  # what kill -9 leaves behind
        assert sum(t.state in GOOD_STATES for t in before) < N_TRIALS

    if moment == "before_first_step":  # the very command line again, in its own process
        again = [sys.executable, "-m", "autoinit.cli", "tune", str(path), "--tune.timeout=300"]
        done = subprocess.run(again, capture_output=True, text=True, env=_env(), timeout=DEADLINE)
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        code, text = _resume(path)
        assert code == 0, text
    _assert_complete(path)
    assert _points(path) == reference[0]
    assert _pick(path) == reference[1]
    trials = _study(path).get_trials(deepcopy=False)
    killed = [t for t in trials if t.state == TrialState.FAIL]
    if moment == "writing_outputs":
        assert killed == []
    else:
        assert len(killed) == 1 and "is gone" in TrialRecord.of(killed[0]).error
        retries = [t for t in trials if TrialRecord.of(t).retry_of == killed[0].number]
        if moment == "between_suggestions":
            assert retries == []  # no point was chosen yet: the sampler proposes the same one again
        else:
            # the anchor ran again, to the end (an anchor is never pruned; it may diverge)
            assert [TrialRecord.of(t).anchor for t in retries] == [True]
            assert trial_status(retries[0]) in (TrialStatus.COMPLETE, TrialStatus.DIVERGED)


def test_ctrl_c_then_resume_measures_what_an_uninterrupted_run_does(tmp_path):
    """Ctrl-C in an anchor while the next anchor is still queued: the resume queues neither again."""
    schemes = ["kaiming_normal", "orthogonal", "xavier_uniform"]  # FlakyMLP interrupts orthogonal
    model = {"class_path": "helpers.FlakyMLP", "init_args": {"interrupt_file": str(tmp_path / "no-such-file")}}
    data = {"class_path": "helpers.BlobsData"}
    plain = _write(tmp_path, "plain", model=model, data=data, schemes=schemes)
    assert _resume(plain)[0] == 0

    marker = tmp_path / "interrupt-once"
    marker.write_text("")
    model = {"class_path": "helpers.FlakyMLP", "init_args": {"interrupt_file": str(marker)}}
    path = _write(tmp_path, "interrupted", model=model, data=data, schemes=schemes)
    code, text = _resume(path)
    assert code == 130 and "interrupted" in text
    states = [t.state for t in _study(path).get_trials(deepcopy=False)]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.WAITING]
    code, _ = _resume(path)
    assert code == 0
    _assert_complete(path)
    anchors = [t.params for t in _study(path).get_trials(deepcopy=False) if TrialRecord.of(t).anchor]
    assert len(anchors) == 5  # four anchors, one of them twice: interrupted, then its retry
    assert _points(path) == _points(plain)
    with (Path(TuneConfig(path, []).output) / "trials.csv").open() as f:
        assert [r["state"] for r in csv.DictReader(f)].count("failed") == 1


def _children(pid):
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # ppid
                kids.append(int(entry.name))
    return kids


def test_sigint_stops_every_worker_and_keeps_finished_trials(tmp_path):
    path = _write(tmp_path, "study", steps=200, n_trials=6)
    cmd = [sys.executable, "-m", "autoinit.cli", "tune", str(path), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:

        def finished():
            try:
                good = _study(path).get_trials(deepcopy=False, states=GOOD_STATES)
            except Exception:  # the launcher has not created the study yet
                return None
            return [t.number for t in good] or None

        finished_before = _wait(finished, "a finished trial")
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert all(process_gone(pid) for pid in workers)
    trials = _study(path).get_trials(deepcopy=False)
    assert {t.number for t in trials if t.state in GOOD_STATES} >= set(finished_before)
    assert TrialState.RUNNING not in [t.state for t in trials]

    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=DEADLINE)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = _study(path).get_trials(deepcopy=False)
    assert sum(t.state in GOOD_STATES for t in trials) == 6
    assert TrialState.RUNNING not in [t.state for t in trials] and TrialState.WAITING not in [t.state for t in trials]


@pytest.mark.parametrize("moment", ["ctrl_c_starting", "ctrl_c_writing_outputs"])
def test_ctrl_c_at_any_moment_is_one_line_exit_130_and_the_study_resumes(tmp_path, moment):
    path = _write(tmp_path, "study", n_trials=4)
    cmd = [sys.executable, str(TESTS / "scripts" / "tune_dying.py"), moment, "1", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=DEADLINE)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0 and "interrupted" in done.stderr, done.stderr
    again = [sys.executable, "-m", "autoinit.cli", "tune", str(path), "--tune.timeout=300"]
    done = subprocess.run(again, capture_output=True, text=True, env=_env(), timeout=DEADLINE)
    assert done.returncode == 0, done.stdout + done.stderr
    states = [t.state for t in _study(path).get_trials(deepcopy=False)]
    assert sum(s in GOOD_STATES for s in states) == 4 and TrialState.RUNNING not in states
    assert _pick(path)[0]  # best.yaml whole again
