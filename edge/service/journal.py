"""Logging for systemd's journal: each line prefixed with its syslog priority when stderr is the journal."""

from __future__ import annotations

import logging
import os
import sys


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream ($JOURNAL_STREAM names its device:inode)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{stat.st_dev}:{stat.st_ino}"


class JournalFormatter(logging.Formatter):
    """Starts every line with its syslog priority (``<4>`` warning, ``<3>`` error), which journald reads."""

    def format(self, record: logging.LogRecord) -> str:
        priority = (3 if record.levelno >= logging.ERROR else 4 if record.levelno >= logging.WARNING
                    else 6 if record.levelno >= logging.INFO else 7)
        # A traceback is several lines, and journald reads each line as its own entry.
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def setup_logging(verbose: bool) -> None:
    """Log to stderr (journal priorities under systemd); debug messages with ``verbose``."""
    handler = logging.StreamHandler()
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(JournalFormatter(fmt) if stderr_is_journal() else logging.Formatter(fmt))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
