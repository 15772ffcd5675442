"""Population batches in the study: how many trials each batch asks, and that a model-based sampler's
study is asked in batches the sampler and the pruner learn from."""

import optuna
import pytest
from rich.console import Console

from autoinit.tuner.population.study import batch_trials
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.settings import TuneSettings


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_a_model_based_sampler_gets_the_queued_trials_then_a_quarter_of_the_rest(sampler):
    s = TuneSettings(search=sampler)
    # the anchors (queued) go whole, however much room is left
    assert batch_trials(s, room=20, waiting=11, max_trials=5000) == 11
    # then a quarter of the trials still to run, rounded up: 9 left -> 3, 6 -> 2, 3 -> 1
    assert [batch_trials(s, room=r, waiting=0, max_trials=5000) for r in (9, 6, 3, 1)] == [3, 2, 1, 1]
    assert batch_trials(s, room=60, waiting=0, max_trials=5000) == 15
    # memory still bounds it, queued or sampled
    assert batch_trials(s, room=20, waiting=11, max_trials=4) == 4
    assert batch_trials(s, room=60, waiting=0, max_trials=4) == 4


@pytest.mark.parametrize("sampler", ["random", "grid"])
def test_random_and_grid_points_take_all_the_room(sampler):
    s = TuneSettings(search=sampler)
    assert batch_trials(s, room=60, waiting=0, max_trials=5000) == 60
    assert batch_trials(s, room=60, waiting=11, max_trials=5000) == 60
    assert batch_trials(s, room=60, waiting=0, max_trials=7) == 7


def test_a_tpe_study_learns_between_batches_and_prunes_its_sampled_trials(tmp_path):
    from autoinit.tuner.run import tune

    out = tmp_path / "out"
    cfg = TuneConfig(
        "configs/quickstart.yaml",
        [
            "--model.init_args.depth=6",
            "--tune.n_trials=12",
            "--tune.search=tpe",
            "--tune.steps=24",
            "--tune.seeds=1",
            "--tune.report_every=4",
            "--tune.gain={low: 0.2, high: 5.0, log: true}",
            "--tune.schemes=[kaiming_normal,xavier_normal,orthogonal]",
            "--tune.population=auto",
            "--tune.prescreen=false",
            f"--tune.output={out}",
        ],
    )
    console = Console(record=True, width=200)
    assert tune(cfg, console=console) == 0
    assert "population trials: up to" in console.export_text()
    study = optuna.load_study(
        study_name="quickstart",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal"))),
    )
    trials = study.trials
    anchors = [t for t in trials if TrialRecord.of(t).anchor]
    sampled = [t for t in trials if not TrialRecord.of(t).anchor]
    assert len(anchors) == 4 and len(sampled) == 8
    # every sampled trial was asked after the anchors were told: TPE proposed it from measured trials
    told = max(t.datetime_complete for t in anchors)
    assert all(t.datetime_start >= told for t in sampled)
    # and the median pruner, with complete trials to compare against, stopped some of them live
    pruned = [t for t in sampled if TrialRecord.of(t).status == "pruned"]
    assert pruned and all(len(t.intermediate_values) < 24 // 4 for t in pruned)


def test_ctrl_c_in_a_later_population_keeps_the_trials_an_earlier_one_finished(tmp_path, monkeypatch):
    from autoinit.tuner.population import trials as population_trials
    from autoinit.tuner.population.engine import PopulationFailed
    from autoinit.tuner.population.study import PopulationBatch

    cfg = TuneConfig(
        "configs/quickstart.yaml",
        ["--model.init_args.depth=2", "--tune.steps=4", "--tune.seeds=1", f"--tune.output={tmp_path}"],
    )
    real, chunks = population_trials._run_chunk, []

    def one_point_fits_and_ctrl_c_in_the_third(config, points, reports):
        chunks.append([p.gain for p in points])
        if len(points) > 1:
            raise PopulationFailed("CUDA out of memory", out_of_memory=True)
        if len(chunks) == 5:
            raise KeyboardInterrupt
        return real(config, points, reports)

    monkeypatch.setattr(population_trials, "_run_chunk", one_point_fits_and_ctrl_c_in_the_third)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for gain in (0.5, 1.0, 1.5, 2.0):
        study.enqueue_trial({"scheme": "kaiming_normal", "gain": gain})
    batch = PopulationBatch(cfg, ["kaiming_normal"], max_members=4, note=lambda msg: None)
    with pytest.raises(KeyboardInterrupt):
        batch(study, 4, lambda trial: None, lambda: None)
    assert chunks == [[0.5, 1.0, 1.5, 2.0], [0.5, 1.0], [0.5], [1.0], [1.5]]
    complete, failed = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL
    assert [t.state for t in study.trials] == [complete, complete, failed, failed]
    assert [TrialRecord.of(t).steps_trained for t in study.trials] == [4, 4, None, None]
