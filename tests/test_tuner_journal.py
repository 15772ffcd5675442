"""The journal file: a torn last record (a crash, a full disk) never makes it unreadable, and a lock left
by a killed process is never waited on."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.storage.journal import TORN_SUFFIX

ROOT = Path(__file__).parent.parent


def _study(out: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="j", storage=storage.open_storage(TuneSettings(), out), load_if_exists=True)


def _fresh_read(out: Path) -> optuna.Study:
    """The study as a new process reads it, with Optuna's own backend."""
    backend = optuna.storages.journal.JournalFileBackend(str(out / storage.JOURNAL_NAME))
    return optuna.load_study(study_name="j", storage=optuna.storages.JournalStorage(backend))


def _run(code: str, out: Path) -> subprocess.CompletedProcess:
    script = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120)


def test_a_torn_last_record_is_cut_off_with_a_backup_and_the_study_goes_on(tmp_path, capsys):
    out = tmp_path / "out"
    study = _study(out)
    for x in (1.0, 2.0, 3.0):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=x))
    study.set_user_attr("note", "the last record")
    journal = out / storage.JOURNAL_NAME
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-7])  # a crash mid-write: the last record lost its end and its newline

    study = _study(out)  # the next run
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torn record" in err and TORN_SUFFIX in err
    assert (out / (storage.JOURNAL_NAME + TORN_SUFFIX)).read_bytes() == whole[:-7]
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=4.0))

    again = _fresh_read(out)
    assert [t.value for t in again.get_trials(states=(TrialState.COMPLETE,))] == [1.0, 2.0, 3.0, 4.0]
    assert "note" not in again.user_attrs  # the torn record: never complete, so never applied
    assert journal.read_bytes().endswith(b"\n")


@pytest.mark.multiprocess
def test_a_write_cut_short_by_a_full_disk_leaves_the_journal_readable(tmp_path):
    out = tmp_path / "out"
    study = _study(out)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    # A file-size limit a few bytes past the journal's end: the next write stops partway, as on a full disk
    # (the kernel writes what fits, then refuses with EFBIG, as it refuses with ENOSPC).
    done = _run(
        """
        import errno, resource, signal
        from pathlib import Path
        import optuna
        from autoinit.tuner.storage import backend as storage
        from autoinit.tuner.sources.settings import TuneSettings

        out = Path(sys.argv[1])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name="j", storage=storage.open_storage(TuneSettings(), out))
        size = (out / storage.JOURNAL_NAME).stat().st_size
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
        try:
            study.set_user_attr("big", "x" * 10000)
        except OSError as exc:
            assert exc.errno == errno.EFBIG, exc
        else:
            raise AssertionError("the write was not cut short")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk has room again
        study.set_user_attr("after", 1)
        """,
        out,
    )
    assert done.returncode == 0, done.stderr
    again = _fresh_read(out)
    assert again.user_attrs == {"after": 1}
    assert [t.value for t in again.get_trials()] == [1.0]


@pytest.mark.multiprocess
def test_a_lock_left_by_a_process_killed_mid_write_is_not_waited_on(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _study(out)
    # The other process is killed inside a journal write: it holds the journal's lock when it dies.
    done = _run(
        """
        import os, signal
        from pathlib import Path
        import optuna
        from autoinit.tuner.storage import backend as storage
        from autoinit.tuner.sources.settings import TuneSettings

        out = Path(sys.argv[1])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name="j", storage=storage.open_storage(TuneSettings(), out))
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        study.set_user_attr("killed", "mid-write")
        """,
        out,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr

    def waited(seconds):
        raise AssertionError("waited on the lock of a dead process")

    # Optuna's file locks poll with time.sleep while another holds the lock: none may be needed now.
    monkeypatch.setattr(optuna.storages.journal._file.time, "sleep", waited)
    study = _study(out)
    study.set_user_attr("next", "run")
    assert _fresh_read(out).user_attrs == {"killed": "mid-write", "next": "run"}
    assert not os.path.lexists(out / (storage.JOURNAL_NAME + ".lock"))


def test_only_a_finished_trial_and_study_records_are_synced(tmp_path, monkeypatch):
    from autoinit.tuner import journal

    study = _study(tmp_path / "out")
    synced: list[int] = []
    monkeypatch.setattr(journal.os, "fsync", lambda fd: synced.append(fd))
    study.set_user_attr("plan", [1, 2])  # a study record: synced
    study.enqueue_trial({"gain": 1.0})  # created WAITING: not synced
    trial = study.ask()  # claimed RUNNING: not synced
    trial.suggest_float("gain", 0.5, 2.0)  # details: not synced
    trial.set_user_attr("seconds", 0.1)
    for step in range(5):
        trial.report(2.3 - 0.1 * step, step)
    assert len(synced) == 1
    study.tell(trial, 1.9)  # finished: synced
    other = study.ask()
    study.tell(other, state=TrialState.PRUNED)
    assert len(synced) == 3
    fresh = _fresh_read(tmp_path / "out").trials[0]  # every record reached the file
    assert fresh.state == TrialState.COMPLETE and fresh.user_attrs == {"seconds": 0.1}
    assert sorted(fresh.intermediate_values) == [0, 1, 2, 3, 4] and fresh.params == {"gain": 1.0}
