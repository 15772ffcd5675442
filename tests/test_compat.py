"""Every private Lightning/Optuna API autoinit relies on still exists and behaves as assumed.

If one of these fails after an upgrade, fix ``autoinit/_compat.py`` — nowhere else touches those APIs."""

import lightning.pytorch as pl
import optuna
import torch
from optuna.trial import TrialState
from torch.utils.data import DataLoader, TensorDataset

from autoinit import _compat


def test_train_dataloader_is_reachable_at_fit_start():
    seen = {}

    class Probe(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            seen["batch"] = next(iter(_compat.train_dataloader_of(trainer)))

    class M(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def training_step(self, batch, i):
            return self.lin(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = TensorDataset(torch.arange(12.0).reshape(4, 3))
    trainer = pl.Trainer(
        max_steps=1,
        callbacks=[Probe()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(M(), DataLoader(data, batch_size=2))
    assert torch.equal(seen["batch"][0], torch.arange(6.0).reshape(2, 3))


def test_optuna_trial_handles():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    trial = study.ask()
    tid = _compat.trial_id(trial)
    assert isinstance(tid, int)
    again = _compat.reopen_trial(study, tid)
    again.report(1.5, step=3)
    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen.intermediate_values == {3: 1.5}
    assert _compat.trial_id(frozen) == tid
    _compat.set_trial_user_attr(study, frozen, "k", "v")
    assert study.get_trials()[0].user_attrs["k"] == "v"
    assert _compat.fail_trial(study, frozen)
    assert study.get_trials()[0].state == TrialState.FAIL
    assert not _compat.fail_trial(study, study.get_trials()[0])  # finished: refused, not raised
    assert _compat.storage_of(study) is study._storage


def test_configure_optimizers_output_parses_every_return_form():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 3)
    assert _compat.configure_optimizers_output(opt) == ([opt], [])
    for conf in (([opt], [sched]), {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}):
        optimizers, configs = _compat.configure_optimizers_output(conf)
        assert optimizers == [opt] and configs[0].scheduler is sched and configs[0].frequency == 1
    assert (
        _compat.configure_optimizers_output(
            {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        )[1][0].interval
        == "step"
    )
    assert _compat.configure_optimizers_output(None) == ([], [])


def test_attach_trainer_view_feeds_global_step_and_trainer():
    class View:
        global_step, current_epoch = 7, 2

    module = pl.LightningModule()
    _compat.attach_trainer_view(module, View())
    assert module.global_step == 7 and module.current_epoch == 2 and isinstance(module.trainer, View)


def test_heartbeat_storage_only_for_storages_that_beat(tmp_path):
    assert _compat.heartbeat_storage(optuna.create_study()) is None
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=60)
    assert _compat.heartbeat_storage(optuna.create_study(storage=storage)) is not None


def test_optuna_queue_and_heartbeat_attributes(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5, "y": 2})
    waiting = study.get_trials(deepcopy=False)[0]
    assert waiting.params == {} and _compat.queued_params(waiting) == {"x": 0.5, "y": 2}
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    assert _compat.queued_params(study.get_trials(deepcopy=False)[0]) == {"x": 0.5, "y": 2}
    assert not _compat.has_heartbeat(study)

    url = f"sqlite:///{tmp_path / 'h.db'}"
    callback = optuna.storages.RetryHeartbeatStaleTrialCallback()
    rdb = optuna.storages.RDBStorage(url, heartbeat_interval=1, heartbeat_stale_trial_callback=callback)
    hb = optuna.create_study(storage=rdb)
    assert _compat.has_heartbeat(hb)
    stale = hb.ask()
    stale.suggest_float("x", 0.0, 1.0)
    callback(hb, hb.get_trials(deepcopy=False)[0])  # what a stale heartbeat does
    assert _compat.retried_numbers(hb.get_trials(deepcopy=False)[1]) == [0, 0]
    assert not _compat.has_heartbeat(optuna.create_study(storage=optuna.storages.RDBStorage(url)))


def test_journal_op_codes_are_optunas_trial_detail_and_state_records(tmp_path):
    import json

    from autoinit.tuner.sources.settings import TuneSettings
    from autoinit.tuner.storage import backend as storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="j", storage=storage.open_storage(TuneSettings(), tmp_path / "out"))
    trial = study.ask()
    trial.suggest_float("gain", 0.5, 2.0)
    trial.report(1.0, 0)
    trial.set_user_attr("a", 1)
    study.tell(trial, 1.0)
    ops = [json.loads(line)["op_code"] for line in (tmp_path / "out" / storage.JOURNAL_NAME).read_text().splitlines()]
    details = [op for op in ops if op in _compat.journal_detail_ops()]
    states = [op for op in ops if op in _compat.journal_state_ops()]
    assert len(details) == 3 and len(states) == 2 and len(ops) == 6  # + the study's creation
