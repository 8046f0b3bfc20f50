"""``pano-perception``: one command, several subcommands (each module in SUBCOMMANDS adds its own)."""
from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines add_parser(subparsers) and run(args) -> int.
SUBCOMMANDS = ["demo", "infer", "play", "replay", "synth"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pano-perception",
                                     description="Full-sphere perception for a robot with one 360-degree camera.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"pano_perception.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..bagio import BagError
    from ..models.mtpano.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (FileNotFoundError, FileExistsError, ValueError, BagError, CheckpointError) as exc:
        print(f"pano-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
