"""maskipy-train: train the mask classifier from config.ini's [train] and [detector] sections."""

from __future__ import annotations

import argparse
import logging
import sys

from maskipy.edge.cli_runner import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-train", description=__doc__)
    parser.add_argument("--config", default=None, help="INI file with [train] (default: built-ins)")
    parser.add_argument("--output-dir", default=None, help="override [train] output_dir")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images (quick trial)")
    return parser


def train_command(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from .config import load_train_config
    from .train import train

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    config, detector = load_train_config(args.config)
    if args.output_dir:
        config = dataclasses.replace(config, output_dir=Path(args.output_dir))
    if args.limit is not None:
        config = dataclasses.replace(config, limit=args.limit)
    result = train(config, detector)
    print(f"model: {result.model_path}")
    print("wall time: " + ", ".join(f"{k} {v}" for k, v in result.timings.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command("maskipy-train", build_parser(), train_command, argv)


if __name__ == "__main__":
    sys.exit(main())
