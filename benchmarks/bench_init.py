"""Time initializing a ~100M-parameter model per scheme against the equivalent plain torch.nn.init loop,
and the same MLP sharded over 2 CPU processes (FSDP2 ``fully_shard`` per Linear, gloo) against its
unsharded init.

Each measurement runs in fresh processes so its peak RSS is its own. Run by hand:

    .ci/in-venv python benchmarks/bench_init.py [--params 100e6] [--schemes kaiming_normal,...]
    .ci/in-venv python benchmarks/bench_init.py --sharded [--sharded-schemes kaiming_normal:full,...]

Prints a Markdown table; docs/benchmarks.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

CASE = r"""
import json, math, resource, sys, time
import torch
from torch import nn
torch.set_num_threads({threads})
kind, scheme, mode, params = {kind!r}, {scheme!r}, {mode!r}, {params}
if kind == "mlp":
    width = int(math.sqrt(params / 10))
    layers = []
    for _ in range(10):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers)
    sample = torch.randn(64, width)
else:
    ch = 512
    n = max(1, round(params / (ch * ch * 9)))
    layers = [nn.Conv2d(3, ch, 3, padding=1), nn.ReLU()]
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
    model = nn.Sequential(*layers)
    sample = torch.randn(2, 3, 8, 8)
import autoinit
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
torch_fns = {{
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "lecun_normal": lambda w: nn.init.normal_(w, 0, 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(w)[0])),
    "orthogonal": lambda w: nn.init.orthogonal_(w, math.sqrt(2)),
    "default": None,
}}
t0 = time.perf_counter()
if mode == "torch":
    fn = torch_fns.get(scheme)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if fn is None:
                m.reset_parameters()
            else:
                fn(m.weight)
                nn.init.zeros_(m.bias)
else:
    autoinit.init_model(model, scheme, sample_input=sample if scheme in ("lsuv", "yam_chow") else None, seed=0)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": dt, "extra_mib": (peak - base) / 1024,
                   "params": sum(p.numel() for p in model.parameters())}}))
"""


# One rank of the sharded run: the MLP built on meta, each Linear and the root fully_shard-ed over 2 ranks,
# materialized (shards only) and touched so its pages are resident before the measurement starts.
SHARDED_CASE = r"""
import json, math, os, sys, time
from pathlib import Path
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
torch.set_num_threads({threads})
scheme, draw, params = {scheme!r}, {draw!r}, {params}
dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (dist.get_world_size(),))
width = int(math.sqrt(params / 10))
with torch.device("meta"):
    model = nn.Sequential(*(m for _ in range(10) for m in (nn.Linear(width, width), nn.ReLU())))
for m in model:
    if isinstance(m, nn.Linear):
        fully_shard(m, mesh=mesh)
fully_shard(model, mesh=mesh)
model.to_empty(device="cpu")
with torch.no_grad():
    for p in model.parameters():
        p.to_local().zero_()
sample = torch.randn(64, width, generator=torch.Generator().manual_seed(0))
import autoinit
from autoinit.sharded import ShardedWriter
def rss(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1]) / 1024
dist.barrier()
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) back to the current RSS
base = rss("VmRSS")
t0 = time.perf_counter()
autoinit.init_model(model, scheme, seed=0, sample_input=sample if scheme in ("lsuv", "yam_chow") else None,
                    writer=ShardedWriter(model, draw=draw, seed=0))
dist.barrier()
dt = time.perf_counter() - t0
n = sum(p.numel() for p in model.parameters())  # global sizes
print(json.dumps({{"seconds": dt, "extra_mib": rss("VmHWM") - base, "params": n}}))
dist.barrier()
dist.destroy_process_group()
"""


def run_sharded_case(scheme: str, draw: str, params: float, ranks: int) -> dict:
    """Both ranks' figures: the slower rank's time, the larger per-rank peak growth."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = SHARDED_CASE.format(scheme=scheme, draw=draw, params=int(params), threads=1)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "WORLD_SIZE": str(ranks),
            },
        )
        for rank in range(ranks)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"sharded rank exited with {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "seconds": max(r["seconds"] for r in results),
        "extra_mib": max(r["extra_mib"] for r in results),
        "params": results[0]["params"],
    }


def sharded_table(args: argparse.Namespace) -> None:
    print(
        "| model | scheme | draw | unsharded s (1 process, 2 threads) | sharded s (2 ranks × 1 thread) | "
        "extra peak RSS, MiB: unsharded / per rank |"
    )
    print("|---|---|---|---|---|---|")
    for item in args.sharded_schemes.split(","):
        scheme, draw = item.split(":")
        plain = min(
            (run_case("mlp", scheme, "autoinit", args.params, args.threads) for _ in range(args.repeats)),
            key=lambda r: r["seconds"],
        )
        sharded = min(
            (run_sharded_case(scheme, draw, args.params, 2) for _ in range(args.repeats)), key=lambda r: r["seconds"]
        )
        print(
            f"| MLP {plain['params'] / 1e6:.0f}M, FSDP2 over 2 | {scheme} | {draw} | {plain['seconds']:.2f} | "
            f"{sharded['seconds']:.2f} | {plain['extra_mib']:.0f} / {sharded['extra_mib']:.0f} |",
            flush=True,
        )


def run_case(kind: str, scheme: str, mode: str, params: float, threads: int) -> dict:
    code = CASE.format(kind=kind, scheme=scheme, mode=mode, params=int(params), threads=threads)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=100e6)
    parser.add_argument(
        "--schemes",
        default="default,xavier_uniform,xavier_normal,kaiming_uniform,kaiming_normal,lecun_normal,orthogonal,lsuv",
    )
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sharded", action="store_true", help="the sharded table instead (2 CPU ranks, gloo)")
    parser.add_argument(
        "--sharded-schemes",
        default="kaiming_normal:full,kaiming_normal:local,orthogonal:full,lsuv:full",
        help="scheme:draw pairs, draw being full or local",
    )
    args = parser.parse_args()
    if args.sharded:
        sharded_table(args)
        return
    print("| model | scheme | autoinit s | torch.nn.init s | ratio | autoinit extra MiB | torch extra MiB |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.models.split(","):
        for scheme in args.schemes.split(","):
            ours = min(
                (run_case(kind, scheme, "autoinit", args.params, args.threads) for _ in range(args.repeats)),
                key=lambda r: r["seconds"],
            )
            has_torch = scheme not in ("lsuv", "yam_chow", "auto", "delta_orthogonal", "looks_linear")
            ref = (
                min(
                    (run_case(kind, scheme, "torch", args.params, args.threads) for _ in range(args.repeats)),
                    key=lambda r: r["seconds"],
                )
                if has_torch
                else None
            )
            ratio = f"{ours['seconds'] / ref['seconds']:.2f}×" if ref else "—"
            print(
                f"| {kind} ({ours['params'] / 1e6:.0f}M) | {scheme} | {ours['seconds']:.2f} | "
                f"{ref['seconds'] if ref else math.nan:.2f} | {ratio} | {ours['extra_mib']:.0f} | "
                f"{ref['extra_mib'] if ref else math.nan:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"\n(total {time.time() - t:.0f} s)")
