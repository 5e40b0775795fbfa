"""Per-day count totals on disk: ``totals.json`` read defensively, written atomically and durably.

The file holds every recent day, so a clock that steps back over midnight (or a Pi that boots
before NTP sync) adds to the right day and never overwrites another day's totals::

    {"date": "2026-03-14", "totals": {...today...}, "updated": 1773486000.0,
     "days": {"2026-03-13": {...}, "2026-03-14": {...}}, "through": "<id of the last event counted>"}

``date``/``totals`` repeat today's entry for readers of the old one-day format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# About a year of history, a few dozen bytes a day.
KEEP_DAYS = 400


def day_of(timestamp: float) -> str:
    """The local calendar day of a wall-clock time, as YYYY-MM-DD."""
    return time.strftime("%Y-%m-%d", time.localtime(timestamp))


def _counts(value: Any) -> dict[str, int] | None:
    """``{label: count}`` if ``value`` is one (non-negative whole numbers), else None."""
    if not isinstance(value, dict):
        return None
    out: dict[str, int] = {}
    for label, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return None
        out[str(label)] = count
    return out


def parse_totals(saved: Any) -> tuple[dict[str, dict[str, int]], str | None]:
    """(days, through) from a loaded totals.json; ValueError naming what is wrong with its shape."""
    if not isinstance(saved, dict):
        raise ValueError(f"expected a JSON object, found {type(saved).__name__}")
    days: dict[str, dict[str, int]] = {}
    if "days" in saved:
        if not isinstance(saved["days"], dict):
            raise ValueError("'days' is not an object")
        for day, value in saved["days"].items():
            counts = _counts(value)
            if counts is None:
                raise ValueError(f"day {day!r} does not hold whole-number counts")
            days[str(day)] = counts
    elif "date" in saved:  # the one-day format of older versions
        counts = _counts(saved.get("totals"))
        if counts is None or not isinstance(saved["date"], str):
            raise ValueError("'totals' does not hold whole-number counts")
        days[saved["date"]] = counts
    else:
        raise ValueError("neither 'days' nor 'date' is present")
    through = saved.get("through")
    return days, through if isinstance(through, str) else None


def read_totals(path: Path) -> tuple[dict[str, dict[str, int]], str | None] | None:
    """The saved days and the last event they include; None (with a warning) when there is nothing
    usable, in which case the caller rebuilds them from the event log."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return parse_totals(saved)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        log.warning("%s: is a directory, not a file; rebuilding totals from the event log "
                    "(remove the directory so totals can be saved)", path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        log.warning("%s: ignoring unusable totals (%s); rebuilding them from the event log", path, exc)
    return None


def write_totals(path: Path, days: dict[str, dict[str, int]], today: tuple[str, dict[str, int]],
                 through: str | None, now: float) -> None:
    """Replace ``path`` atomically and durably; on any failure the old file stays and no .tmp is left."""
    for old in sorted(days)[:-KEEP_DAYS]:
        del days[old]
    body = {"date": today[0], "updated": now, "totals": today[1], "days": days, "through": through}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
