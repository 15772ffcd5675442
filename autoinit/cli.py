"""The ``autoinit`` command line."""

from __future__ import annotations

import argparse
import math
import sys

from autoinit.errors import AutoInitError
from autoinit.interrupts import INTERRUPTED, sigterm_is_ctrl_c


def _cmd_schemes(args: argparse.Namespace) -> int:
    from autoinit.schemes.docs import text_listing

    print(text_listing())
    return 0


def _cmd_examples(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autoinit import configs

    if args.write is not None:
        for written in configs.write(Path(args.write)):
            print(f"wrote {written}")
        return 0
    width = max(map(len, configs.names()))
    for name in configs.names():
        print(f"{name:<{width}}  {configs.description(name)}")
    print(f"\nin {configs.FOLDER}; run one with: autoinit tune --example quickstart")
    return 0


def _config_path(args: argparse.Namespace) -> str:
    """The config a command reads: its path, or the bundled example that ``--example`` names."""
    from autoinit import configs

    if args.example is None:
        if args.config is None:
            raise AutoInitError("give a config file or --example NAME (autoinit examples lists the bundled ones)")
        return args.config
    if args.config is not None:
        raise AutoInitError(
            f"give a config file or --example {args.example}, not both (got '{args.config}'; an override's "
            "value goes after '=': --tune.steps=50)"
        )
    return str(configs.path(args.example))


def _cmd_tune(args: argparse.Namespace) -> int:
    from autoinit.tuner.run import tune
    from autoinit.tuner.sources.config import TuneConfig

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"--tune.workers={args.workers}")
    if args.storage is not None:
        overrides.append(f"--tune.storage={args.storage}")
    if args.force:
        overrides.append("--tune.oversubscribe=true")
    config = TuneConfig(_config_path(args), overrides)
    if config.settings.log_trials:
        from autoinit.tuner.trials.loggers import configured_loggers

        configured_loggers(config)  # a logger it cannot use: one line now, not in every worker
    return tune(config)


def _cmd_fit(args: argparse.Namespace) -> int:
    from autoinit.fit import fit

    return fit(_config_path(args), list(args.overrides))


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from autoinit.data import load_callable
    from autoinit.inspection import inspect_schemes, plot, render
    from autoinit.schemes.registry import get_scheme
    from autoinit.tuner.sources.config import TuneConfig

    # Every argument checked before the config is built: one-line errors, no work done.
    if not math.isfinite(args.gain) or args.gain <= 0:
        raise AutoInitError(f"--gain must be a positive finite number (1.0 = the textbook formula), got {args.gain:g}")
    batch_to_input = load_callable(args.batch_to_input) if args.batch_to_input else None
    config = TuneConfig(_config_path(args), list(args.overrides))
    batch_to_input = batch_to_input or config.batch_to_input  # the config's tune.batch_to_input
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()] if args.schemes else None
    if schemes == []:
        raise AutoInitError("--schemes is empty: give comma-separated names (autoinit schemes lists them)")
    schemes = schemes or config.settings.scheme_names()
    for name in schemes:
        get_scheme(name)  # an unknown name: one-line error before any work
    results = inspect_schemes(config, schemes, args.gain, batch_to_input=batch_to_input)
    console = Console()
    render(results, console)
    out = Path(args.out) if args.out else config.output / "inspect.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(results, out)
    console.print(f"wrote {out}", soft_wrap=True, markup=False)
    return 0


def _add_config(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("config", nargs="?", help=what)
    p.add_argument("--example", default=None, help="a bundled config instead of a file (autoinit examples lists them)")


def build_parser() -> argparse.ArgumentParser:
    from autoinit import __version__

    parser = argparse.ArgumentParser(prog="autoinit", description="Pick weight initialization by measurement.")
    parser.add_argument("--version", action="version", version=f"autoinit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("schemes", help="list every scheme with its formula and paper")
    p.set_defaults(func=_cmd_schemes)
    p = sub.add_parser("examples", help="list the bundled example configs (run one with: tune --example NAME)")
    p.add_argument("--write", metavar="FOLDER", default=None, help="copy them into FOLDER to edit")
    p.set_defaults(func=_cmd_examples)
    p = sub.add_parser(
        "tune",
        help="run short trial trainings and pick the scheme and gain with the fastest early loss drop",
        epilog="Any other --key=value overrides the config, in its dotted "
        "style: --tune.steps=100 --model.init_args.depth=20",
    )
    _add_config(p, "a LightningCLI fit config with a tune section (see autoinit examples)")
    p.add_argument("--workers", type=int, default=None, help="trial processes on this machine (tune.workers)")
    p.add_argument("--storage", default=None, help="an Optuna storage URL shared by several machines")
    p.add_argument(
        "--force",
        action="store_true",
        help="start more --workers than this machine has CPU cores (tune.oversubscribe)",
    )
    p.set_defaults(func=_cmd_tune)
    p = sub.add_parser(
        "fit",
        help="tune the config's init (or reuse its finished study), then run LightningCLI fit with the pick",
        epilog="Any other argument goes to LightningCLI's fit, as with `python main.py fit --config config.yaml "
        "...`: --trainer.max_epochs=20, --ckpt_path=last.ckpt (resume: the restored weights are kept).",
    )
    _add_config(p, "a LightningCLI fit config; its tune section (if any) is tuned first")
    p.set_defaults(func=_cmd_fit)
    p = sub.add_parser("inspect", help="per layer, the output and gradient std under each scheme, before training")
    _add_config(p, "a tune config (its model and data are used)")
    p.add_argument("--schemes", default=None, help="comma-separated scheme names (default: the config's)")
    p.add_argument("--gain", type=float, default=1.0, help="multiplier on each scheme's textbook scale (> 0)")
    p.add_argument(
        "--batch-to-input",
        default=None,
        help="dotted path of a function from a training batch to the model's input (default: a tensor "
        "batch, the first element of a tuple, the dict entries forward takes)",
    )
    p.add_argument("--out", default=None, help="where to write the plot (default: <output>/inspect.png)")
    p.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    sigterm_is_ctrl_c()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("tune", "inspect", "fit"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.overrides = rest
    try:
        return args.func(args)
    except AutoInitError as exc:
        print(f"autoinit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM) at a moment the command does not handle itself: starting up, writing the
        # outputs. Every finished trial is in the storage already.
        print("autoinit: interrupted: finished trials are kept; run the same command to resume", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
