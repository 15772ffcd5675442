"""A trial's owner: host, pid and process start time; the lease a journal-storage owner renews."""

import subprocess
import sys
import time

import pytest

from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.storage.owner import Lease, lost_why, process_exists, process_start, worker_id


def test_a_reused_pid_is_not_the_owner():
    me = process_start()
    assert me is not None and process_exists(int(worker_id().split(":")[1]), me)
    assert lost_why(TrialRecord(worker=worker_id(), worker_start=me)) is None
    # the same pid, another start time: the owner died and the pid went to a new process
    reused = TrialRecord(worker=worker_id(), worker_start=me.rsplit(":", 1)[0] + ":1")
    assert "is gone" in lost_why(reused)


@pytest.mark.multiprocess
def test_a_finished_or_zombie_process_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while process_exists(child.pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)  # not reaped yet: a zombie, which counts as gone
    assert not process_exists(child.pid, None)
    child.wait()
    assert not process_exists(child.pid, None)
    assert "is gone" in lost_why(TrialRecord(worker=worker_id(child.pid)))


def test_another_hosts_trial_is_lost_once_its_lease_expired():
    now = 1_000_000.0
    assert lost_why(TrialRecord(worker="elsewhere:1", lease_until=now + 1), now=now) is None
    assert "lease" in lost_why(TrialRecord(worker="elsewhere:1", lease_until=now - 1), now=now)
    assert lost_why(TrialRecord(worker="elsewhere:1"), now=now) is None  # no lease: a heartbeat's business
    assert lost_why(TrialRecord(), now=now) is None


def test_lease_is_written_at_once_renewed_and_stopped():
    writes = []
    with Lease(writes.append, interval=0.01):
        assert len(writes) == 1 and writes[0] > time.time()
        deadline = time.monotonic() + 60
        while len(writes) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(writes) >= 3 and writes == sorted(writes)
    stopped = len(writes)
    time.sleep(0.05)
    assert len(writes) == stopped  # the thread ended with the trial


def test_a_failing_renewal_ends_the_thread_not_the_trial():
    def refuse(until):
        if refuse.calls:
            raise RuntimeError("trial already finished")
        refuse.calls += 1

    refuse.calls = 0
    lease = Lease(refuse, interval=0.01)
    with lease:
        lease._thread.join(timeout=60)
        assert not lease._thread.is_alive()


def test_keep_alive_records_the_owner_and_a_lease_on_a_storage_without_heartbeat():
    import optuna

    from autoinit.tuner.storage.owner import LEASE_INTERVALS, keep_alive

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    before = time.time()
    with keep_alive(study, 60) as claim:
        claim(study.ask())
        record = TrialRecord.of(study.get_trials(deepcopy=False)[0])
    assert record.worker == worker_id() and record.worker_start == process_start()
    assert before + LEASE_INTERVALS * 60 <= record.lease_until <= time.time() + LEASE_INTERVALS * 60


def test_keep_alive_leaves_the_beating_to_optimize_when_it_beats(tmp_path):
    import sqlite3

    import optuna

    from autoinit.tuner.storage.owner import keep_alive

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=60)
    study = optuna.create_study(storage=storage)
    with keep_alive(study, 60, optuna_beats=True) as claim:
        claim(study.ask())
    with sqlite3.connect(tmp_path / "hb.db") as db:
        assert db.execute("select count(*) from trial_heartbeats").fetchone()[0] == 0
    record = TrialRecord.of(study.get_trials(deepcopy=False)[0])
    assert record.worker == worker_id() and record.lease_until is None
