"""``maskipy-edge bundle``: the Pi side of deploys (validate, install, roll back, status).

The work is done by one module per job in this package: ``validate`` (checks), ``store`` (versions),
``install`` (install, rollback, status); the pointers are read by ``maskipy.edge.bundle`` and the
running service is signalled through ``maskipy.edge.service.pidfile``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli_runner import print_error, run_command
from ..config import load_edge_config
from ..errors import MaskipyError
from .install import bundle_status, install_bundle, rollback
from .validate import validate_bundle

SERVICE_CONFIG = Path("/etc/maskipy/config.ini")
SERVICE_STATE_DIR = Path("/var/lib/maskipy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-edge bundle",
                                     description="Install, roll back and inspect model bundles on this Pi.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"install": "validate DIR and make it the current model, keeping the old one for rollback",
             "rollback": "make the previous model current again",
             "status": "show the current and previous models and whether the service runs",
             "validate": "check DIR (checksum, runtime load, labels, golden output) without installing"}
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text)
        if name in ("install", "validate"):
            sub.add_argument("directory", metavar="DIR", type=Path,
                             help="bundle directory holding model.tflite and model.json")
        if name != "validate":
            sub.add_argument("--state-dir", type=Path, help=f"default: {SERVICE_STATE_DIR} if it exists, "
                             f"else the config's [counts] state_dir")
        sub.add_argument("--config", help=f"config whose [classifier] labels the model must match "
                         f"(default: {SERVICE_CONFIG} if it exists)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Do the parsed ``bundle`` subcommand; returns the exit code (1: installed, but the reload failed)."""
    config = load_edge_config(args.config or (SERVICE_CONFIG if SERVICE_CONFIG.is_file() else None))
    labels, reject = config.classifier.labels, config.classifier.reject_label
    state_dir = getattr(args, "state_dir", None) or (
        SERVICE_STATE_DIR if SERVICE_STATE_DIR.is_dir() else config.counts.state_dir)
    if args.command == "validate":
        print(f"valid {args.directory}: {validate_bundle(args.directory, labels, reject).describe()}")
        return 0
    if args.command == "status":
        for key, value in bundle_status(state_dir):
            print(f"{key:<10} {value}")
        return 0
    if args.command == "install":
        result = install_bundle(args.directory, state_dir, labels, reject)
        if result.validation:
            print(f"valid {args.directory}: {result.validation.describe()}")
    else:
        result = rollback(state_dir, labels, reject)
    print(result.describe())
    if not result.reload_ok:
        return print_error("maskipy-edge", f"{result.action} {result.current.name}, but {result.reload}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``maskipy-edge bundle ...``; accepts argv with or without the leading ``bundle``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bundle"]:
        args_list = args_list[1:]
    try:
        # OSError too: a bundle or state dir that is missing or not writable is the operator's to fix.
        return run_command("maskipy-edge", build_parser(), run, args_list, errors=(MaskipyError, OSError),
                           hint=_permission_hint)
    except SystemExit as exc:  # argparse: usage errors, --help, --version; a dispatcher wants a code
        return exc.code if isinstance(exc.code, int) else 1


def _permission_hint(exc: BaseException) -> str:
    return ("; run as the service user (sudo -u maskipy) or fix the state dir's owner"
            if isinstance(exc, PermissionError) else "")


if __name__ == "__main__":
    sys.exit(main())
