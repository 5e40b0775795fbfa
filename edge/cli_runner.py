"""One way to run every ``maskipy-*`` command (in the spirit of gpiozero's ``CliTool``).

The policy, the same for each command:

- usage errors (an unknown option, a missing argument) are argparse's: usage line, exit 2;
- user errors (a missing file, a bad config value, a model that fails its checks) print one line,
  ``maskipy-X: error: <problem and fix>``, and exit 1; ``DEBUG=1`` prints the traceback too;
- Ctrl-C prints ``maskipy-X: interrupted`` and exits 130, without a traceback;
- ``--version`` prints ``maskipy-X <maskipy.edge.__version__>`` (the one place the version is set).

A command is a parser and a function of the parsed arguments that returns an exit code::

    def main(argv=None) -> int:
        return run_command("maskipy-train", build_parser(), train_command, argv)

The trainer and converters import this module; nothing in edge/ imports them.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from .errors import MaskipyError
from .service.journal import stderr_is_journal

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


def package_version() -> str:
    """maskipy's version: ``maskipy.edge.__version__``, which setup.cfg reads too (one source of truth).

    The running code's own version, so an uninstalled checkout or a stale editable install reports it too.
    """
    from . import __version__

    return __version__


def add_version(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` a ``--version`` option (once)."""
    if "--version" not in parser._option_string_actions:
        parser.add_argument("--version", action="version", version=f"{parser.prog} {package_version()}")
    return parser


def _plain(text: str | None) -> str | None:
    return text.replace("``", "") if isinstance(text, str) else text


def plain_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Drop reStructuredText's double backticks from ``parser``'s help texts (docstrings are reused as
    help; ``--help`` is read in a terminal), its subcommands' too; returns ``parser``."""
    parser.description, parser.epilog = _plain(parser.description), _plain(parser.epilog)
    for action in parser._actions:
        action.help = _plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = _plain(choice.help)
            for sub in action.choices.values():
                plain_help(sub)
    return parser


def report_error(prog: str, exc: BaseException, hint: str = "") -> int:
    """Print ``prog: error: ...`` (the traceback too when DEBUG is set) and return exit code 1.

    Every maskipy command reports user mistakes this way: one line naming the problem and the fix.
    """
    if os.environ.get("DEBUG", "") not in ("", "0"):
        traceback.print_exception(exc)
    return print_error(prog, f"{exc}{hint}")


def print_error(prog: str, message: str) -> int:
    """Print ``prog: error: message`` to stderr and return exit code 1; for a failure that is no exception."""
    # <3>: journald files the line as an error, so `journalctl -p err` shows it.
    print(f"{'<3>' if stderr_is_journal() else ''}{prog}: error: {message}", file=sys.stderr)
    return 1


def run_command(prog: str, parser: argparse.ArgumentParser,
                command: Callable[[argparse.Namespace], int | None], argv: Sequence[str] | None = None, *,
                errors: tuple[type[BaseException], ...] = (MaskipyError,),
                hint: Callable[[BaseException], str] | None = None, intermixed: bool = False) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run ``command``; returns the exit code.

    ``errors``: the exception types that are the user's to fix (reported in one line, exit 1);
    anything else is a bug and keeps its traceback. ``hint`` may add a fix for one of them.
    ``intermixed``: options may follow positional arguments (``parse_intermixed_args``).
    """
    add_version(plain_help(parser))
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_intermixed_args(argv) if intermixed else parser.parse_args(argv)
    try:
        return int(command(args) or 0)
    except errors as exc:
        return report_error(prog, exc, hint(exc) if hint else "")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
