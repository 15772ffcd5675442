"""Several machines on one PostgreSQL study: the same command on each, one killed mid-trial."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from postgres_server import PASSWORD, PostgresServer

from autoinit.tuner.records.record import TrialRecord

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def postgres():
    # Not under pytest's tmp_path: that is private to root, and the server runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="autoinit-pg-"))
    server = PostgresServer(base)
    if not server.available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: .ci/run installs it")
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def _config(tmp_path, name, **tune):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "class_path": "autoinit.templates.DeepMLP",
                    "init_args": {"depth": 4, "width": 16, "in_features": 32, "classes": 4},
                },
                "data": {
                    "class_path": "autoinit.templates.TeacherData",
                    "init_args": {"n": 512, "classes": 4, "batch_size": 32},
                },
                "trainer": {"accelerator": "cpu", "devices": 1},
                "tune": {
                    "seeds": 1,
                    "search": "tpe",  # counts n_trials
                    # sequential trials: one machine's population could finish every trial before the
                    # other starts (population trials on an RDB are covered in test_tuner_population)
                    "population": "off",
                    "schemes": ["kaiming_normal", "orthogonal"],
                    "heartbeat_interval": 1,
                    "study_name": name,
                    **tune,
                },
            }
        )
    )
    return path


def _machine_cmd(path, url, out):
    return [sys.executable, "-m", "autoinit.cli", "tune", str(path), "--storage", url, f"--tune.output={out}"]


def _machine(path, url, out):
    return subprocess.Popen(_machine_cmd(path, url, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_machines_share_a_study_and_survive_a_killed_one(postgres, tmp_path):
    # trials long enough that the second machine (a fresh process: imports, checks) joins while the first
    # still has trials to run, on a slow or loaded machine too
    path = _config(tmp_path, "shared", n_trials=6, steps=1500)
    a = _machine(path, postgres.url, tmp_path / "a")
    time.sleep(3)  # let the first machine create the study
    b = _machine(path, postgres.url, tmp_path / "b")
    storage = optuna.storages.RDBStorage(postgres.url)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            running = optuna.load_study(study_name="shared", storage=storage).get_trials(states=(TrialState.RUNNING,))
        except KeyError:
            continue
        pid_b = str(b.pid)
        if not any(t.user_attrs.get("worker", "").endswith(":" + pid_b) for t in running):
            continue
        # Freeze b, then read the trial it is in: it cannot finish that trial between the read and the kill.
        os.kill(b.pid, signal.SIGSTOP)
        running = optuna.load_study(study_name="shared", storage=storage).get_trials(states=(TrialState.RUNNING,))
        victim = next(
            (t for t in running if t.user_attrs.get("worker", "").endswith(":" + pid_b) and "gain" in t.params), None
        )
        if victim is None:
            os.kill(b.pid, signal.SIGCONT)
    assert victim is not None, "machine b never ran a trial"
    os.kill(b.pid, signal.SIGKILL)
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=10)
    assert a.returncode == 0, out_a
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL  # heartbeat went stale
    # queued again by Optuna's heartbeat callback, or by autoinit's owner check (whichever saw it gone first)
    retried = [
        t
        for t in trials
        if t.system_attrs.get("failed_trial") == victim.number
        or t.system_attrs.get("retry_history", [None])[0] == victim.number
        or TrialRecord.of(t).retry_of == victim.number
    ]
    assert retried and retried[0].params == victim.params
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) >= 6
    # credentials never appear in logs or output files
    assert PASSWORD not in out_a + out_b
    for folder in (tmp_path / "a", tmp_path / "b"):
        for f in folder.glob("*"):
            if f.is_file() and f.suffix != ".png":
                assert PASSWORD not in f.read_text(errors="ignore"), f
    assert "127.0.0.1" in out_a and "***" in out_a


def test_a_run_killed_while_a_population_claims_its_trials_is_resumed_not_waited_on(postgres, tmp_path):
    """kill -9 after a population claimed its first trial and asked its second: the same command again
    fails both (the first's owner is gone, the second never got one) and completes the study."""
    name = "claiming"
    path = _config(tmp_path, name, n_trials=4, steps=20, population="auto")
    out = tmp_path / "out"
    script = Path(__file__).parent / "scripts" / "tune_dying.py"
    cmd = [sys.executable, str(script), "claiming", "2", str(path), "--storage", postgres.url, f"--tune.output={out}"]
    died = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
    storage = optuna.storages.RDBStorage(postgres.url)
    left = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [t.state for t in left] == [TrialState.RUNNING] * 2 + [TrialState.WAITING]
    # the claimed trial beat at once: from another machine, too, it would go stale
    beating = storage.engine.connect().exec_driver_sql("select trial_id from trial_heartbeats").fetchall()
    ours = {t._trial_id for t in left}  # the server holds the other tests' studies too
    assert [row[0] for row in beating if row[0] in ours] == [left[0]._trial_id]

    again = subprocess.run(
        [*_machine_cmd(path, postgres.url, out), "--tune.timeout=300"], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert TrialState.RUNNING not in [t.state for t in trials] and TrialState.WAITING not in [t.state for t in trials]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
    assert [t.state for t in trials[:2]] == [TrialState.FAIL] * 2


def test_a_database_outage_mid_trial_is_one_line_and_the_study_resumes(tmp_path):
    # a server of its own: this one goes down
    base = Path(tempfile.mkdtemp(prefix="autoinit-pg-"))
    server = PostgresServer(base)
    if not server.available:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    server.start()
    try:
        name = "outage"
        path = _config(tmp_path, name, n_trials=4, steps=1500)  # sequential trials (the config's population: off)
        proc = _machine(path, server.url, tmp_path / "out")
        storage = optuna.storages.RDBStorage(server.url)

        def mid_trial():
            try:
                running = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                return False
            return any(t.intermediate_values for t in running)

        deadline = time.monotonic() + 240
        while not mid_trial():
            assert time.monotonic() < deadline and proc.poll() is None, "no trial reported a value"
            time.sleep(0.3)
        storage.engine.dispose()
        server.stop()
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 2, out
        assert "Traceback" not in out and PASSWORD not in out
        last = out.strip().splitlines()[-1]
        assert last.startswith("autoinit: error: lost the connection to the storage postgresql://autoinit:***@")
        assert "run the same command again" in last

        server.restart()
        again = subprocess.run(
            [*_machine_cmd(path, server.url, tmp_path / "out"), "--tune.timeout=300"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        trials = optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(server.url)).get_trials()
        assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
        assert TrialState.RUNNING not in [t.state for t in trials]
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
