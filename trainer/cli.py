"""maskipy-train: train the mask classifier from config.ini's [train] and [detector] sections."""

from __future__ import annotations

import argparse
import logging
import sys

from maskipy.edge.errors import MaskipyError, report_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-train", description=__doc__)
    parser.add_argument("--config", default=None, help="INI file with [train] (default: built-ins)")
    parser.add_argument("--output-dir", default=None, help="override [train] output_dir")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images (quick trial)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        import dataclasses
        from pathlib import Path

        from .config import load_train_config
        from .train import train

        config, detector = load_train_config(args.config)
        if args.output_dir:
            config = dataclasses.replace(config, output_dir=Path(args.output_dir))
        if args.limit is not None:
            config = dataclasses.replace(config, limit=args.limit)
        result = train(config, detector)
    except MaskipyError as exc:
        return report_error("maskipy-train", exc)
    print(f"model: {result.model_path}")
    print("wall time: " + ", ".join(f"{k} {v}" for k, v in result.timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
