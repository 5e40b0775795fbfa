"""Exceptions raised by maskipy; user mistakes are MaskipyError subclasses, printed without traceback."""


class MaskipyError(Exception):
    """Base class for every error maskipy reports to the user."""


class ConfigError(MaskipyError, ValueError):
    """A configuration file or command-line override is invalid."""


class CameraError(MaskipyError, OSError):
    """A frame source could not be opened or stopped delivering frames."""


class ModelError(MaskipyError, ValueError):
    """A model bundle is missing, corrupt, or does not match its metadata or the config."""


class ImageError(MaskipyError, ValueError):
    """An image file could not be read or decoded."""


class OutputError(MaskipyError, RuntimeError):
    """An output device (GPIO pin, log file) could not be set up."""


class DeployError(MaskipyError, RuntimeError):
    """Copying, validating or swapping a bundle on a remote host failed."""


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream ($JOURNAL_STREAM names its device:inode)."""
    import os
    import sys

    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{stat.st_dev}:{stat.st_ino}"


def report_error(prog: str, exc: BaseException, hint: str = "") -> int:
    """Print ``prog: error: ...`` (the traceback too when DEBUG is set) and return exit code 1.

    Every maskipy command reports user mistakes this way: one line naming the problem and the fix.
    """
    import os
    import sys
    import traceback

    if os.environ.get("DEBUG", "") not in ("", "0"):
        traceback.print_exception(exc)
    # <3>: journald files the line as an error, so `journalctl -p err` shows it.
    print(f"{'<3>' if stderr_is_journal() else ''}{prog}: error: {exc}{hint}", file=sys.stderr)
    return 1
