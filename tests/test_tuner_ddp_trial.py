"""A trial that itself runs on 2 devices (CPU DDP on gloo), launched by the tuner."""

import json
import math
import os
import signal
import socket
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

from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.trials.ddp import trial_devices

pytestmark = pytest.mark.multiprocess
SCRIPTS = Path(__file__).parent / "scripts"


def _tune_on_two_ranks(path, study_name):
    """Tune the config at ``path`` (trials of 2 ranks each) and return its study's trials."""
    config = TuneConfig(path)
    assert trial_devices(config) == 2
    assert tune(config, Console(record=True, width=120)) == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path.parent / "out" / "study.journal"))
    )
    return optuna.load_study(study_name=study_name, storage=storage).get_trials()


def test_ddp_trial_reduces_loss_and_reports_once(tmp_path):
    path = tmp_path / "ddp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "class_path": "autoinit.templates.DeepMLP",
                    "init_args": {"depth": 3, "width": 16, "in_features": 32, "classes": 4},
                },
                "data": {
                    "class_path": "autoinit.templates.TeacherData",
                    "init_args": {"n": 512, "classes": 4, "batch_size": 32},
                },
                "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp"},
                "tune": {
                    "steps": 6,
                    "seeds": 1,
                    "report_every": 2,
                    "n_trials": 2,
                    "search": "tpe",
                    "gain": 1.0,
                    "schemes": ["kaiming_normal"],
                    "pruner": "none",
                    "output": str(tmp_path / "out"),
                },
            }
        )
    )
    trials = _tune_on_two_ranks(path, "ddp")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    for t in trials:
        assert sorted(t.intermediate_values) == [2, 4, 6]  # rank 0 alone reported, every 2 steps
        assert len(t.user_attrs["curve"]) == 6


def test_a_rank_dies_with_its_worker(tmp_path):
    """kill -9 of the worker (which cannot kill its ranks) ends a rank waiting for its peers: no rank is
    left behind, unsupervised, waiting out the rendezvous timeout (30 minutes)."""
    path = tmp_path / "ddp.yaml"
    config = {
        "model": {"class_path": "autoinit.templates.DeepMLP", "init_args": {"depth": 2, "width": 8}},
        "data": {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 64}},
        "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp"},
        "tune": {"steps": 4, "output": str(tmp_path / "out")},
    }
    path.write_text(yaml.safe_dump(config))
    with socket.socket() as s:  # a port nobody listens on: rank 1 waits for rank 0
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "ddp_rank_parent.py"), str(path), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        rank = int(worker.stdout.readline())
        time.sleep(1)
        assert not process_gone(rank)  # alive (importing, or waiting in the rendezvous)
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 120  # a liveness bound, not a timing assertion
        while not process_gone(rank) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process_gone(rank), "the rank outlived its worker"
    finally:
        worker.kill()
        if not process_gone(rank):
            os.kill(rank, signal.SIGKILL)


def test_model_parallel_trials_run_one_process_per_rank_with_sharded_init(tmp_path, monkeypatch):
    """strategy: ModelParallelStrategy (FSDP2 over 2 CPU ranks): every trial's ranks train a sharded model
    that AutoInit initialized."""
    monkeypatch.syspath_prepend(str(SCRIPTS))  # the model's module, here and in the rank processes
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")]))
    record = tmp_path / "record"
    record.mkdir()
    path = tmp_path / "mp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "sharded_models.SmallShardedMLP", "init_args": {"record": str(record)}},
                "trainer": {
                    "accelerator": "cpu",
                    "devices": 2,
                    "strategy": {
                        "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
                        "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1},
                    },
                },
                "tune": {
                    "steps": 3,
                    "seeds": 1,
                    "n_trials": 2,
                    "search": "tpe",
                    "gain": 1.0,
                    "schemes": ["kaiming_normal"],
                    "pruner": "none",
                    "output": str(tmp_path / "out"),
                },
            }
        )
    )
    trials = _tune_on_two_ranks(path, "mp")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert [t.params["scheme"] for t in trials] == ["as_built", "kaiming_normal"]
    curves = [t.user_attrs["curve"] for t in trials]
    assert all(len(c) == 3 and all(math.isfinite(v) for v in c) for c in curves)
    assert curves[0] != curves[1]  # the init differed, so the training did
    for rank in (0, 1):
        fits = [json.loads(line) for line in (record / f"rank{rank}.jsonl").read_text().splitlines()]
        assert [f["scheme"] for f in fits] == ["as_built", "kaiming_normal"]
        for f in fits:  # 16 rows of the first weight, 8 on each rank
            assert f == {**f, "world_size": 2, "strategy": "ModelParallelStrategy", "sharded": True, "local_rows": 8}
            # 4 Linear layers' weights and biases; the model's own init writes none
            assert f["initialized"] == (0 if f["scheme"] == "as_built" else 8)
