"""The ``autoinit`` command line."""

from __future__ import annotations

import argparse
import sys

from autoinit.errors import AutoInitError


def _cmd_schemes(args: argparse.Namespace) -> int:
    from autoinit.schemes.auto import AUTO_TABLE
    from autoinit.schemes.registry import get_scheme, list_schemes

    names = list_schemes()
    width = max(map(len, names))
    for name in names:
        info = get_scheme(name)
        data = "  [needs data]" if info.needs_data else ""
        print(f"{name:<{width}}  {info.formula}{data}")
        if info.paper:
            print(f"{'':<{width}}  — {info.paper}")
    print("\nauto picks, per layer, by the activation that follows it:")
    for acts, scheme, reason in AUTO_TABLE:
        print(f"  {', '.join(acts):<40} → {scheme}: {reason}")
    print("\nn_in, n_out: the layer's fans; a: gain of the activation after the layer; g: the gain argument.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoinit", description="Pick weight initialization by measurement.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("schemes", help="list every scheme with its formula and paper")
    p.set_defaults(func=_cmd_schemes)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AutoInitError as exc:
        print(f"autoinit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
