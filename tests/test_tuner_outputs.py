"""The study's rows as trials.csv and the ranking read them."""

import optuna

from autoinit.tuner.report.outputs import rows


def test_a_waiting_trial_shows_the_point_it_was_queued_with():
    # after Ctrl-C, trials.csv listed the queued halving rounds as scheme "" and gain 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"scheme": "lsuv", "gain": 0.63, "lr_scale": 2.0})
    trial = study.ask()
    trial.suggest_categorical("scheme", ["lsuv", "orthogonal"])
    trial.suggest_float("gain", 0.5, 2.0, log=True)
    trial.suggest_float("lr_scale", 0.5, 2.0, log=True)
    study.tell(trial, 1.5)
    study.enqueue_trial({"scheme": "orthogonal", "gain": 1.26, "lr_scale": 0.5})
    done, waiting = rows(study)
    assert (done.status, done.scheme, done.gain, done.lr_scale) == ("complete", "lsuv", 0.63, 2.0)
    assert (waiting.status, waiting.scheme, waiting.gain, waiting.lr_scale) == ("waiting", "orthogonal", 1.26, 0.5)


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run(tmp_path):
    import os
    import subprocess
    import sys
    from types import SimpleNamespace

    from autoinit.tuner.report.outputs import check_output

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".best.yaml.{int(dead.stdout)}.tmp"
    mine = tmp_path / f".trials.csv.{os.getpid()}.tmp"
    for f in (stale, mine):
        f.write_text("half a file")
    check_output(SimpleNamespace(output=tmp_path, study_name="cfg"))
    assert not stale.exists() and mine.exists()
