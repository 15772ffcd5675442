"""Multi-device trials: a trial whose trainer has ``devices > 1`` runs as one process per rank.

The worker starts the ranks itself with the environment Lightning reads for processes it did not
launch (MASTER_ADDR/PORT, WORLD_SIZE, NODE_RANK, LOCAL_RANK), so Lightning's DDP joins them instead of
re-running the ``autoinit tune`` command line for each rank. Every rank trains; the loss is averaged over
ranks each step; only rank 0 reports to Optuna and writes the result.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch.distributed as dist

from autoinit.interrupts import die_with
from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.search.space import Point
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.study.lifecycle import load_study
from autoinit.tuner.trials.trial import TrialResult, pruner_reporter, run_trial


def trial_devices(config: TrialSource) -> int:
    """How many processes one trial needs: the trainer's device count when it is more than one."""
    devices: Any = config.trainer_kwargs().get("devices", 1)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        devices = devices.strip()
        if devices.isdigit():
            return int(devices)
        return 1  # "auto": one process; a multi-GPU run names its device count
    return int(devices) if isinstance(devices, int) and devices > 1 else 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fidelity_overrides(point: Point) -> list[str]:
    """A halving round's trial trains its fidelity's steps × seeds on every rank."""
    f = point.fidelity
    return [] if f is None else [f"--tune.steps={f.steps}", f"--tune.seeds={f.seeds}"]


def run_ddp_trial(config: TrialSource, trial: optuna.Trial, point: Point, world_size: int) -> TrialResult:
    """Run one trial as ``world_size`` rank processes and return rank 0's result."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="autoinit-ddp-") as tmp:
        result_path = Path(tmp) / "result.json"
        procs = []
        overrides, secret = storage.subprocess_args(config.settings, config.overrides)
        for rank in range(world_size):
            env = dict(
                os.environ,
                **secret,
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                WORLD_SIZE=str(world_size),
                NODE_RANK="0",
                LOCAL_RANK=str(rank),
                RANK=str(rank),
            )
            cmd = [
                sys.executable,
                "-m",
                "autoinit.tuner.trials.ddp",
                "--config",
                str(config.path),
                "--overrides",
                json.dumps([*overrides, *_fidelity_overrides(point)]),
                "--scheme",
                point.scheme,
                "--gain",
                repr(point.gain),
                "--lr-scale",
                repr(point.lr_scale),
                "--trial-id",
                str(storage.trial_id(trial)),
                "--result",
                str(result_path),
                "--parent",
                str(os.getpid()),
            ]
            log = open(Path(tmp) / f"rank{rank}.log", "w")  # noqa: SIM115 (closed below)
            procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        codes = []
        try:
            for proc, log in procs:
                codes.append(proc.wait())
                log.close()
        except BaseException:
            for proc, _ in procs:
                proc.kill()
            raise
        if any(codes) or not result_path.exists():
            raise RuntimeError(_first_error(Path(tmp), codes))
        data = json.loads(result_path.read_text())
    return TrialResult(curves=data["curves"], status=TrialStatus(data["status"]), seconds=data["seconds"])


def _first_error(folder: Path, codes: list[int]) -> str:
    """The most telling line of the failed ranks' logs: a rank's own exception beats the connection errors
    it caused in the others."""
    lines = []
    for rank, code in enumerate(codes):
        if code:
            log = (folder / f"rank{rank}.log").read_text().strip().splitlines() or ["no output"]
            lines.append((rank, code, log[-1]))
    lines = lines or [(0, 0, "rank 0 wrote no result")]
    rank, code, line = min(lines, key=lambda x: ("Connection reset" in x[2] or "gloo" in x[2], x[0]))
    return f"rank {rank} of the DDP trial exited {code}: {line}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoinit-ddp-trial")
    parser.add_argument("--config", required=True)
    parser.add_argument("--overrides", default="[]")
    parser.add_argument("--scheme", required=True)
    parser.add_argument("--gain", type=float, required=True)
    parser.add_argument("--lr-scale", type=float, default=1.0)
    parser.add_argument("--trial-id", type=int, required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--parent", type=int, default=None, help="the worker's pid: the rank dies with it")
    args = parser.parse_args(argv)
    if args.parent is not None:
        # A worker killed with -9 cannot kill its ranks; without this they would wait in the rendezvous
        # (or train on) unsupervised. SIGTERM's default action ends the rank: the trial's state is the
        # worker's to settle, and whoever resumes the study fails and requeues it.
        die_with(args.parent)

    from autoinit.tuner.sources.config import TuneConfig

    config = TuneConfig(args.config, storage.inherited_overrides(json.loads(args.overrides)))
    report = None
    if os.environ.get("LOCAL_RANK") == "0":
        study, _ = load_study(config)
        report = pruner_reporter(storage.reopen_trial(study, args.trial_id))

    result = run_trial(config, args.scheme, args.gain, lr_scale=args.lr_scale, report=report)
    if os.environ.get("LOCAL_RANK") == "0":
        Path(args.result).write_text(
            json.dumps({"curves": result.curves, "status": result.status.value, "seconds": result.seconds})
        )
    # Lightning destroys only NCCL groups at exit: a gloo group still alive at interpreter exit can abort the
    # rank ("terminate called without an active exception") and fail a trial that succeeded.
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
