"""In CI (``CI`` set, as .ci/run and CI services do) a skipped test is a failed one, outside tests/hardware/.

A test that skips because a tool is missing (sshd, Chromium, Mosquitto, shellcheck, ...) would otherwise
let CI pass without it. Only tests/hardware/ (a real Raspberry Pi) may skip there. The hooks are imported
by tests/conftest.py::

    CI=true python -m pytest -q -rs    # a skip outside tests/hardware/ fails, with its reason
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CI_VAR = "CI"
# The one folder of tests that may skip in CI: they need a Raspberry Pi, which CI is not.
MAY_SKIP = "hardware"


def strict() -> bool:
    """Whether skips fail: ``CI`` is set to anything but empty, 0, false or no."""
    return os.environ.get(CI_VAR, "").strip().lower() not in ("", "0", "false", "no")


def may_skip(path: Path | None, rootpath: Path) -> bool:
    """Whether the test at ``path`` may skip in CI (it is under a ``hardware`` folder)."""
    if path is None:
        return False
    try:
        parts = Path(path).relative_to(rootpath).parts
    except ValueError:
        parts = Path(path).parts
    return MAY_SKIP in parts


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _reason(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI ({CI_VAR}={os.environ.get(CI_VAR)}), which must run every test "
                       f"outside tests/{MAY_SKIP}/: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if (report.skipped and not hasattr(report, "wasxfail") and strict()
            and not may_skip(item.path, item.config.rootpath)):
        _fail(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    if report.skipped and strict() and not may_skip(collector.path, collector.config.rootpath):
        _fail(report)
    return report
