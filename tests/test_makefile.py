"""Every script, bench and recipe file the Makefile's targets call exists (`make -n`, nothing run)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Files a recipe names: scripts and configs inside this repository.
NAMED_FILE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w.-]+\.(?:sh|py|ini))\b")


@pytest.mark.parametrize("target", ["run", "test", "ha-test", "lint", "default-model", "bench"])
def test_make_targets_call_files_that_exist(target: str) -> None:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    named = set(NAMED_FILE.findall(done.stdout))
    missing = sorted(name for name in named if not (REPO / name).is_file())
    assert not missing, f"make {target} calls files that do not exist: {missing}\n{done.stdout}"


def test_default_model_ends_with_an_evaluation_of_the_new_bundle() -> None:
    done = subprocess.run(["make", "-n", "default-model"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    steps = [line for line in done.stdout.splitlines() if "maskipy-" in line or "bench/" in line]
    assert [step.split()[0].rsplit("/", 1)[-1] for step in steps] == ["maskipy-train", "maskipy-convert",
                                                                        "python"]
    assert "bench/accuracy.py --model edge/models/default" in steps[-1]
