"""CI cannot pass without its tests: in CI a skip outside tests/hardware/ fails (tests/ci_policy.py),
.ci/run fails when it cannot install what the tests need, make test prints the skip reasons, and the
README and the skip messages name what .ci/run installs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
CI_RUN = REPO / ".ci" / "run"
CI_PACKAGES = REPO / ".ci" / "system-packages"  # .ci/run sources it; the README shows the same command

SKIPPING = '''
import pytest

def test_skip_call():
    pytest.skip("needs a tool")

@pytest.mark.skipif(True, reason="marked: tool missing")
def test_skip_mark():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_pass():
    pass
'''


def _pytest_in(folder: Path, ci: str | None, *, module_skip: bool = False) -> str:
    (folder / "conftest.py").write_text("from ci_policy import pytest_make_collect_report, "
                                        "pytest_runtest_makereport  # noqa: F401\n")
    (folder / "test_some.py").write_text(SKIPPING)
    if module_skip:  # a whole module skipped at import, as importorskip at the top of a file does
        (folder / "test_module_skip.py").write_text("import pytest\n"
                                                    "pytest.importorskip('no_such_module_x')\n")
    (folder / "tests" / "hardware").mkdir(parents=True)
    (folder / "tests" / "hardware" / "test_pi.py").write_text(
        "import pytest\n\ndef test_on_a_pi():\n    pytest.skip('not a Raspberry Pi')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-c", os.devnull,
               "--rootdir", str(folder), str(folder)]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    return done.stdout + done.stderr


def test_in_ci_a_skip_outside_tests_hardware_fails(tmp_path: Path) -> None:
    out = _pytest_in(tmp_path, "true")
    summary = out.strip().splitlines()[-1]
    assert re.search(r"1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error", summary), out
    assert "skipped in CI (CI=true), which must run every test outside tests/hardware/: needs a tool" in out
    assert "marked: tool missing" in out
    assert "SKIPPED [1] tests/hardware/test_pi.py" in out  # -rs says why the Pi test skipped


def test_in_ci_a_module_skipped_at_import_fails_the_run(tmp_path: Path) -> None:
    out = _pytest_in(tmp_path, "1", module_skip=True)
    assert "ERROR collecting test_module_skip.py" in out and "no_such_module_x" in out, out
    assert "skipped in CI (CI=1)" in out, out


def test_outside_ci_skips_stay_skips(tmp_path: Path) -> None:
    summary = _pytest_in(tmp_path, "false").strip().splitlines()[-1]
    assert re.search(r"1 passed, 3 skipped, 1 xfailed", summary), summary


def test_ci_run_fails_when_it_cannot_install_the_test_tools(tmp_path: Path) -> None:
    """A PATH without shellcheck and friends, and an apt-get that fails: .ci/run must stop, not test."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to("/usr/bin/dirname")
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: no network here' >&2\nexit 100\n")
    (bin_dir / "make").write_text(f"#!/bin/sh\n/usr/bin/touch {tmp_path / 'make-ran'}\n")
    for tool in ("apt-get", "make"):
        (bin_dir / tool).chmod(0o755)
    done = subprocess.run(["/bin/bash", str(CI_RUN)], env={"PATH": str(bin_dir)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    assert not (tmp_path / "make-ran").exists(), "make test ran without the tools its tests need"
    assert "could not install" in done.stderr and "shellcheck" in done.stderr, done.stderr


def test_ci_run_sets_ci_and_make_test_prints_skip_reasons() -> None:
    assert re.search(r"^export CI=\$\{CI:-true\}$", CI_RUN.read_text(), re.MULTILINE)
    # The Home Assistant test runs in its own target, after the suite, and stops CI when it cannot run.
    commands = re.findall(r"^make (.+)$", CI_RUN.read_text(), re.MULTILINE)
    assert commands == ["test", "ha-test"], commands
    recipe = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=True).stdout
    assert re.search(r"python -m pytest .*-rs", recipe), recipe


def _ci_packages() -> set[str]:
    return set(re.findall(r"need\+=\(([\w.-]+)\)", CI_PACKAGES.read_text()))


def test_the_readme_names_every_package_ci_installs() -> None:
    readme = (REPO / "README.md").read_text()
    packages = _ci_packages()
    assert {"openssh-server", "openssh-client", "mosquitto", "chromium"} <= packages
    missing = sorted(p for p in packages if f"`{p}`" not in readme)
    assert not missing, f"README.md does not say .ci/run installs {missing}"
    # One command installs them, in CI and for a newcomer following the README.
    assert re.search(r"^\. \.ci/system-packages$", CI_RUN.read_text(), re.MULTILINE)
    assert "sudo bash .ci/system-packages" in readme


def test_skip_messages_ask_only_for_packages_ci_installs() -> None:
    """A skip message's `apt-get install ...` names what the tests need, which .ci/run installs."""
    packages = _ci_packages()
    asked = {}
    for path in sorted(set(TESTS.glob("test_*.py")) - {Path(__file__)}):
        for command in re.findall(r"apt-get install ([^\")]+)", path.read_text()):
            for word in command.split():
                if not word.startswith("-"):
                    asked.setdefault(word, path.name)
    assert asked, "no skip message names an apt package"
    extra = {p: f for p, f in asked.items() if p not in packages}
    assert not extra, f"skip messages ask for packages .ci/run does not install: {extra}"
