"""Without ../shared the tests that need it fail (CI must not pass by skipping a third of the suite);
MASKIPY_ALLOW_MISSING_SHARED=1 turns that into a stated skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

# A one-test suite that borrows the real conftest's fixtures.
# The real conftest imports ci_policy from tests/, which is on sys.path only in the real suite.
PLUGIN = f"""
import importlib.util
import sys
sys.path.insert(0, {str(CONFTEST.parent)!r})
spec = importlib.util.spec_from_file_location("maskipy_tests_conftest", {str(CONFTEST)!r})
real = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real)
shared_data, scenes_dir = real.shared_data, real.scenes_dir
"""
TEST = "def test_needs_scenes(scenes_dir):\n    assert scenes_dir.is_dir()\n"


def run_suite(tmp_path: Path, shared: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(PLUGIN)
    (tmp_path / "test_needs_data.py").write_text(TEST)
    environ = {key: value for key, value in os.environ.items() if key != "MASKIPY_ALLOW_MISSING_SHARED"}
    environ.update(MASKIPY_SHARED=str(shared), **env)
    command = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
               "--rootdir", str(tmp_path), str(tmp_path)]
    return subprocess.run(command, capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=120,
                          check=False)


def test_missing_shared_data_fails_the_run(tmp_path: Path) -> None:
    done = run_suite(tmp_path, tmp_path / "no-shared")
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout and "no-shared/data not found" in done.stdout, done.stdout


def test_opting_out_skips_with_the_reason(tmp_path: Path) -> None:
    done = run_suite(tmp_path, tmp_path / "no-shared", MASKIPY_ALLOW_MISSING_SHARED="1")
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout


def test_present_shared_data_passes(tmp_path: Path, shared_data: Path) -> None:
    done = run_suite(tmp_path, shared_data.parent)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout


def test_ci_script_stops_first_without_shared(tmp_path: Path) -> None:
    """.ci/run in a clone with no ../shared beside it stops before apt or make, naming the folder."""
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    script = Path(__file__).resolve().parent.parent / ".ci" / "run"
    (clone / ".ci" / "run").write_text(script.read_text())
    done = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{tmp_path}/shared/data not found" in done.stderr and not done.stdout, done.stdout + done.stderr
