"""``--workers N``: N long-lived worker processes on this machine, all pulling trials from one study.

Each worker gets its own device group of ``devices_per_trial`` GPUs through CUDA_VISIBLE_DEVICES, or on
a machine without GPUs an even share of the CPU cores as torch threads. The journal file storage has no
heartbeat, so the launcher itself watches its workers: when one dies, its running trial is marked failed
and its parameters queued again, and a fresh worker takes its place (as it does for a worker that asks to
be replaced because its memory kept growing or it ran out of memory).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import optuna
import torch
from rich.console import Console

from autoinit.errors import AutoInitError
from autoinit.tuner.config import TuneConfig
from autoinit.tuner.settings import TuneSettings
from autoinit.tuner.study import GOOD_STATES, fail_trials_of
from autoinit.tuner.worker import FAILING, REPLACE_ME

POLL_SECONDS = 0.5


def device_env(index: int, settings: TuneSettings) -> dict[str, str]:
    """Environment that pins worker ``index`` to its GPUs, or to its share of the CPU cores."""
    env = dict(os.environ)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        per = settings.devices_per_trial
        if settings.workers * per > gpus:
            raise AutoInitError(
                f"{settings.workers} workers × {per} GPUs per trial need {settings.workers * per} "
                f"GPUs, this machine has {gpus}: lower --workers or tune.devices_per_trial"
            )
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(ids[index * per : (index + 1) * per])
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cores // settings.workers))
    return env


class _Worker:
    def __init__(self, index: int, config: TuneConfig, settings: TuneSettings, log_dir) -> None:
        self.index = index
        env = device_env(index, settings)
        threads = env.get("OMP_NUM_THREADS", "0")
        self.log = open(log_dir / f"worker-{index}.log", "a")  # noqa: SIM115 (closed in stop())
        cmd = [
            sys.executable,
            "-m",
            "autoinit.tuner.worker",
            "--config",
            str(config.path),
            "--overrides",
            json.dumps(config.overrides),
            "--index",
            str(index),
            "--threads",
            threads,
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.name = f"{socket.gethostname()}:{self.proc.pid}"

    def stop(self) -> None:
        self.log.close()


def launch(
    config: TuneConfig,
    study: optuna.Study,
    settings: TuneSettings,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None],
    console: Console,
) -> str:
    """Run the workers until the study holds ``settings.n_trials`` good trials; returns "done" or "failing"."""
    log_dir = config.output
    workers = {i: _Worker(i, config, settings, log_dir) for i in range(settings.workers)}
    replacements = 0
    max_replacements = 3 * settings.workers
    finished: dict[int, int] = {}
    seen = -1
    try:
        while len(finished) < len(workers):
            time.sleep(POLL_SECONDS)
            trials = study.get_trials(deepcopy=False)
            done = [t for t in trials if t.state.is_finished()]
            if len(done) != seen:
                seen = len(done)
                if done:
                    on_trial(study, done[-1])
            good = sum(t.state in GOOD_STATES for t in trials)
            for i, w in list(workers.items()):
                if i in finished:
                    continue
                rc = w.proc.poll()
                if rc is None:
                    continue
                w.stop()
                if rc in (0, FAILING):
                    finished[i] = rc
                    continue
                lost = fail_trials_of(study, w.name, f"worker {w.name} died (exit {rc})")
                why = "asked to be replaced (memory)" if rc == REPLACE_ME else f"died (exit {rc})"
                console.print(f"[yellow]worker {i} {why}" + (f"; trial {lost} queued again" if lost else ""))
                if good >= settings.n_trials or replacements >= max_replacements:
                    finished[i] = rc
                    continue
                replacements += 1
                workers[i] = _Worker(i, config, settings, log_dir)
    except KeyboardInterrupt:
        for w in workers.values():
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        for w in workers.values():
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            fail_trials_of(study, w.name, "interrupted")
            w.stop()
        raise
    for w in workers.values():
        fail_trials_of(study, w.name, "worker ended")
    return "failing" if finished and all(rc == FAILING for rc in finished.values()) else "done"
