"""``--workers N``: N long-lived worker processes on this machine, all pulling trials from one study.

Each worker gets its own device group of ``devices_per_trial`` GPUs through CUDA_VISIBLE_DEVICES, or on
a machine without GPUs an even share of the CPU cores as torch threads. The journal file storage has no
heartbeat, so the launcher itself watches its workers: when one dies, its running trial is marked failed
and its parameters queued again, and a fresh worker takes its place (as it does for a worker that asks to
be replaced because its memory kept growing or it ran out of memory).

There are never more workers than devices (GPUs, or CPU cores without them) unless ``tune.oversubscribe``
(``--force``) says so, and Ctrl-C or SIGTERM to the launcher stops every worker within seconds; a worker
whose launcher is gone (``kill -9``) stops as at Ctrl-C (:func:`autoinit.interrupts.die_with`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import torch
from rich.console import Console

from autoinit.errors import AutoInitError
from autoinit.tuner.execution.loop import ClaimLock, OnTrial, claim_lock, worker_id
from autoinit.tuner.records.stop_rule import StopReason, WorkerExit
from autoinit.tuner.search.base import Search
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.study.lifecycle import fail_trials_of

POLL_SECONDS = 0.5
# After Ctrl-C, how long workers get to fail their trial and exit before they are killed.
STOP_SECONDS = 10.0


def _gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_worker_count(settings: TuneSettings) -> None:
    """A one-line error for more workers than the machine has devices (GPUs, else CPU cores): they would
    only queue for them, each holding its model and data in memory, and slow every trial down."""
    if settings.workers <= 1:
        return
    gpus = _gpus()
    if gpus:
        per = settings.devices_per_trial
        if settings.workers * per > gpus:
            raise AutoInitError(
                f"{settings.workers} workers × {per} GPUs per trial need {settings.workers * per} "
                f"GPUs, this machine has {gpus}: lower --workers or tune.devices_per_trial"
            )
        return
    cores = _cores()
    if settings.workers > cores and not settings.oversubscribe:
        raise AutoInitError(
            f"{settings.workers} workers on {cores} CPU cores: lower --workers to at most {cores} "
            "(or pass --force / tune.oversubscribe: true to start them anyway)"
        )


def device_env(index: int, settings: TuneSettings) -> dict[str, str]:
    """Environment that pins worker ``index`` to its GPUs, or to its share of the CPU cores."""
    env = dict(os.environ)
    gpus = _gpus()
    if gpus:
        per = settings.devices_per_trial
        check_worker_count(settings)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(ids[index * per : (index + 1) * per])
    else:
        env["OMP_NUM_THREADS"] = str(max(1, _cores() // settings.workers))
    return env


def worker_command(index: int, config: TrialSource, settings: TuneSettings) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of worker ``index`` (the storage URL in the environment only)."""
    overrides, secret = storage.subprocess_args(settings, config.overrides)
    env = {**device_env(index, settings), **secret}
    cmd = [
        sys.executable,
        "-m",
        "autoinit.tuner.execution.worker",
        "--config",
        str(config.path),
        "--overrides",
        json.dumps(overrides),
        "--index",
        str(index),
        "--threads",
        env.get("OMP_NUM_THREADS", "0"),
        "--launcher",
        str(os.getpid()),
    ]
    return cmd, env


class _Worker:
    def __init__(self, index: int, config: TrialSource, settings: TuneSettings, log_dir: Path) -> None:
        self.index = index
        cmd, env = worker_command(index, config, settings)
        self.log = open(log_dir / f"worker-{index}.log", "a")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.name = worker_id(self.proc.pid)

    def stop(self) -> None:
        self.log.close()


def _fail_and_requeue(lock: ClaimLock, study: optuna.Study, worker: str, why: str) -> list[int]:
    # Under the claim lock: no worker may read the study between the trial failing and its retry being
    # queued, or it would start a fresh trial and leave the retry waiting.
    with lock.held():
        return fail_trials_of(study, worker, why)


def launch(
    config: TrialSource,
    study: optuna.Study,
    settings: TuneSettings,
    *,
    search: Search,
    on_trial: OnTrial,
    console: Console,
) -> StopReason:
    """Run the workers until ``search`` says the study is done; returns DONE or FAILING.

    On Ctrl-C (KeyboardInterrupt here) every worker gets SIGINT, has ``STOP_SECONDS`` to fail its trial
    and exit, and is killed after that; their running trials are failed and queued again, and the
    KeyboardInterrupt goes on to the caller, which writes the outputs.
    """
    check_worker_count(settings)
    log_dir = config.output
    lock = claim_lock(config.output)
    workers: dict[int, _Worker] = {}
    replacements = 0
    max_replacements = 3 * settings.workers
    finished: dict[int, int] = {}
    seen = -1
    try:
        for i in range(settings.workers):  # inside the try: Ctrl-C while starting them stops those started
            workers[i] = _Worker(i, config, settings, log_dir)
        while len(finished) < len(workers):
            time.sleep(POLL_SECONDS)
            trials = study.get_trials(deepcopy=False)
            done = [t for t in trials if t.state.is_finished()]
            if len(done) != seen:
                seen = len(done)
                if done:
                    on_trial(study, done[-1])
            for i, w in list(workers.items()):
                if i in finished:
                    continue
                rc = w.proc.poll()
                if rc is None:
                    continue
                w.stop()
                if rc in (WorkerExit.DONE, WorkerExit.FAILING):
                    finished[i] = rc
                    continue
                lost = _fail_and_requeue(lock, study, w.name, f"worker {w.name} died (exit {rc})")
                why = "asked to be replaced (memory)" if rc == WorkerExit.REPLACE_ME else f"died (exit {rc})"
                console.print(f"[yellow]worker {i} {why}" + (f"; trial {lost} queued again" if lost else ""))
                # a study whose search is over needs no replacement (the lost trial, queued again, keeps it
                # open)
                if search.finished(study) or replacements >= max_replacements:
                    finished[i] = rc
                    continue
                replacements += 1
                workers[i] = _Worker(i, config, settings, log_dir)
    except KeyboardInterrupt:
        _stop_all(list(workers.values()), lock, study)
        raise
    for w in workers.values():
        _fail_and_requeue(lock, study, w.name, "worker ended")
    failing = finished and all(rc == WorkerExit.FAILING for rc in finished.values())
    return StopReason.FAILING if failing else StopReason.DONE


def _stop_all(workers: list[_Worker], lock: ClaimLock, study: optuna.Study) -> None:
    # A second Ctrl-C (or SIGTERM) must not cut this short and leave workers running on their own.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_SECONDS
        for w in workers:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        for w in workers:
            _fail_and_requeue(lock, study, w.name, "interrupted (Ctrl-C): its worker was stopped")
            w.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
