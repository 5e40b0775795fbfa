"""Log lines under systemd: journald priority prefixes when stderr is the journal stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def journal_run(tmp_path: Path, code: str, journal: bool) -> str:
    """Run ``code`` with stderr to a file; JOURNAL_STREAM names that file when ``journal``."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as handle:
        stat = os.fstat(handle.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}" if journal else "8:1234"}
        subprocess.run([sys.executable, "-c", code], stderr=handle, env=env, timeout=60, check=False)
    return err.read_text()


def test_log_lines_carry_journald_priorities_only_when_stderr_is_the_journal(tmp_path):
    code = ("import logging; from maskipy.edge.cli import setup_logging; setup_logging(True); "
            "log = logging.getLogger('maskipy.edge.x'); log.debug('d'); log.info('i'); log.warning('w'); "
            "log.error('e\\nsecond line')")
    assert journal_run(tmp_path, code, True).splitlines() == [
        "<7>DEBUG maskipy.edge.x: d", "<6>INFO maskipy.edge.x: i", "<4>WARNING maskipy.edge.x: w",
        "<3>ERROR maskipy.edge.x: e", "<3>second line"]
    assert journal_run(tmp_path, code, False).splitlines()[2] == "WARNING maskipy.edge.x: w"


def test_a_fatal_error_is_a_journald_error_line(tmp_path):
    code = "from maskipy.edge.cli import main; raise SystemExit(main(['run', '--config', 'missing.ini']))"
    assert journal_run(tmp_path, code, True).startswith("<3>maskipy-edge: error: missing.ini: config file")
