"""Time initializing a ~100M-parameter model per scheme against the equivalent plain torch.nn.init loop.

Each measurement runs in a fresh process so its peak RSS is its own. Run by hand:

    .ci/in-venv python benchmarks/bench_init.py [--params 100e6] [--schemes kaiming_normal,...]

Prints a Markdown table; the README records the figures.
"""

from __future__ import annotations

import argparse
import json
import math
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
    args = parser.parse_args()
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
