"""Several worker processes on one study: every trial accounted for once, dead workers replaced."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from helpers import process_gone
from optuna.trial import TrialState

from autoinit.tuner.execution.launcher import device_env
from autoinit.tuner.sources.settings import TuneSettings

pytestmark = pytest.mark.multiprocess

TINY = {
    "model": {
        "class_path": "autoinit.templates.DeepMLP",
        "init_args": {"depth": 4, "width": 16, "in_features": 32, "classes": 4},
    },
    "data": {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 512, "classes": 4, "batch_size": 32}},
    "trainer": {"accelerator": "cpu", "devices": 1},
}


def _config(tmp_path, **tune):
    path = tmp_path / "w.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **TINY,
                "tune": {
                    "steps": 10,
                    "seeds": 1,
                    "search": "tpe",  # these tests count n_trials
                    "output": str(tmp_path / "out"),
                    "schemes": ["kaiming_normal", "orthogonal", "lecun_normal"],
                    **tune,
                },
            }
        )
    )
    return path


def _tune(path, *args, **popen):
    cmd = [sys.executable, "-m", "autoinit.cli", "tune", str(path), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _study(tmp_path, name="w"):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "study.journal"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def test_two_workers_account_for_every_trial_once(tmp_path):
    proc = _tune(_config(tmp_path, n_trials=8, steps=300), "--workers", "2")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    trials = _study(tmp_path).get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 8
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both processes took trials
    anchors = [(t.params["scheme"], t.params["gain"]) for t in trials if t.params["gain"] == 1.0]
    assert sorted(anchors[:4]) == sorted(
        [("as_built", 1.0), ("kaiming_normal", 1.0), ("orthogonal", 1.0), ("lecun_normal", 1.0)]
    )


def test_kill_9_of_a_worker_mid_trial_and_the_study_completes(tmp_path):
    proc = _tune(_config(tmp_path, n_trials=6, steps=400), "--workers", "2")
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            running = _study(tmp_path).get_trials(states=(TrialState.RUNNING,))
        except Exception:
            continue
        worker = next((t.user_attrs["worker"] for t in running if "worker" in t.user_attrs), None)
        if worker is None:
            continue
        # Freeze the worker, then read the trial it is in: it cannot finish it between the read and the kill.
        pid = int(worker.split(":")[1])
        os.kill(pid, signal.SIGSTOP)
        running = _study(tmp_path).get_trials(states=(TrialState.RUNNING,))
        victim = next((t for t in running if t.user_attrs.get("worker") == worker and "gain" in t.params), None)
        if victim is None:
            os.kill(pid, signal.SIGCONT)
    assert victim is not None, "no trial started"
    os.kill(int(victim.user_attrs["worker"].split(":")[1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "died (exit -9)" in out
    trials = _study(tmp_path).get_trials()
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["error"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert (
        retries and retries[0].params == victim.params and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    )
    good = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(good) == 6


def test_worker_that_asks_to_be_replaced_gets_a_fresh_process(tmp_path):
    # sequential trials: a worker is replaced after each *trial*; a population's worker (one batch holding
    # all three trials here) is replaced after its batch, so this count is a sequential-trial specific
    config = _config(tmp_path, n_trials=3, max_worker_growth_mb=0, population="off")
    proc = _tune(config, "--workers", "2")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "asked to be replaced" in out
    trials = _study(tmp_path).get_trials()
    workers = {t.user_attrs["worker"] for t in trials if t.state.is_finished()}
    assert len(workers) >= 3  # more processes than workers: each asked to be replaced after its trial
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 3


def test_cpu_workers_share_the_cores():
    env = device_env(0, TuneSettings(workers=2))
    cores = len(os.sched_getaffinity(0))
    assert env["OMP_NUM_THREADS"] == str(max(1, cores // 2))


def test_more_workers_than_cores_is_a_one_line_error_unless_forced(tmp_path, monkeypatch, capsys):
    from autoinit.cli import main
    from autoinit.errors import AutoInitError
    from autoinit.tuner.execution import launcher

    monkeypatch.setattr(launcher, "_gpus", lambda: 0)
    monkeypatch.setattr(launcher, "_cores", lambda: 2)
    launcher.check_worker_count(TuneSettings(workers=2))
    with pytest.raises(AutoInitError, match="3 workers on 2 CPU cores: lower --workers to at most 2"):
        launcher.check_worker_count(TuneSettings(workers=3))
    launcher.check_worker_count(TuneSettings(workers=3, oversubscribe=True))
    monkeypatch.setattr(launcher, "_gpus", lambda: 2)
    with pytest.raises(AutoInitError, match="need 4 GPUs, this machine has 2"):
        launcher.check_worker_count(TuneSettings(workers=2, devices_per_trial=2, oversubscribe=True))

    monkeypatch.setattr(launcher, "_gpus", lambda: 0)
    path = _config(tmp_path, n_trials=2)
    assert main(["tune", str(path), "--workers", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "100 workers on 2 CPU cores" in err and "--force" in err
    assert not (tmp_path / "out").exists()  # refused before any work


def _blocking_config(tmp_path):
    """Workers whose trials start and then wait for tmp_path/release: a launcher stopped while both
    train, on any machine."""
    path = tmp_path / "b.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "helpers.BlockingMLP", "init_args": {"folder": str(tmp_path)}},
                "data": {"class_path": "helpers.BlobsData"},
                "trainer": {"accelerator": "cpu", "devices": 1},
                "tune": {
                    "steps": 10,
                    "seeds": 1,
                    "search": "tpe",
                    "n_trials": 4,
                    "population": "off",
                    "prescreen": False,
                    "output": str(tmp_path / "out"),
                    "schemes": ["kaiming_normal", "orthogonal"],
                },
            }
        )
    )
    return path


def _env():
    tests = os.path.dirname(__file__)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}


def _wait_for(predicate, what, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_stop_with_their_launcher_and_the_study_resumes(tmp_path, sig):
    path = _blocking_config(tmp_path)
    proc = _tune(path, "--workers", "2", env=_env())
    try:
        _wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2, "both workers inside a trial")
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")]
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
        # kill -9 gives the launcher no chance: its workers see it gone and stop as at Ctrl-C
        _wait_for(lambda: all(process_gone(pid) for pid in workers), "the workers to stop")
    finally:
        proc.kill()
    if sig == signal.SIGTERM:  # as Ctrl-C: the outputs of the finished trials, one line, exit 130
        assert proc.returncode == 130, out
        assert "interrupted" in out and "Traceback" not in out
    trials = _study(tmp_path, "b").get_trials(deepcopy=False)
    assert TrialState.RUNNING not in [t.state for t in trials]
    stopped = [t for t in trials if t.user_attrs.get("worker", "").split(":")[-1] in map(str, workers)]
    assert len(stopped) == 2 and all(t.state == TrialState.FAIL for t in stopped)
    assert all("interrupted" in t.user_attrs.get("error", "") for t in stopped)

    (tmp_path / "release").touch()
    again = _tune(path, "--workers", "2", env=_env())
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    trials = _study(tmp_path, "b").get_trials(deepcopy=False)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
    retried = {t.user_attrs.get("retry_of") for t in trials}
    assert {t.number for t in stopped} <= retried  # each interrupted trial's point ran again
