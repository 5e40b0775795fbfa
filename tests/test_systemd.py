"""systemd/: the unit as systemd reads it (verify, the security score, the devices its sandbox keeps),
its command line as maskipy-edge parses it, and install.sh's behaviour (dry runs, refusals, shellcheck)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from maskipy.edge.cli import build_parser

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "maskipy-edge.service"
INSTALL = SYSTEMD / "install.sh"
SMOKE = Path(__file__).resolve().parent / "arm64" / "smoke.sh"
CI_SCRIPTS = Path(__file__).resolve().parent.parent / ".ci"
# The bar: the unit scored 7.8 EXPOSED before the sandbox; about 1.8 with it.
MAX_EXPOSURE = 3.0
# What the gate needs through DevicePolicy=closed: camera (V4L2, media controller, DMA heaps) and GPIO.
NEEDED_DEVICES = ("char-video4linux:rw", "char-media:rw", "char-dma_heap:rw", "char-gpiochip:rw")


def unit_value(key: str) -> str:
    """The one value of ``key=`` in the unit (for the tests that feed it to the real program)."""
    values = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), flags=re.MULTILINE)
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


@pytest.fixture
def analyze(tmp_path: Path) -> tuple[str, Path]:
    """systemd-analyze and a copy of the unit whose ExecStart exists here (verify insists on it)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (.ci/run installs it: apt-get install -y systemd)")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/maskipy/bin/maskipy-edge", "/bin/true"))
    return tool, copy


def test_systemd_analyze_verify(analyze: tuple[str, Path]) -> None:
    tool, copy = analyze
    done = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_security_exposure_is_low(analyze: tuple[str, Path]) -> None:
    tool, copy = analyze
    done = subprocess.run([tool, "security", "--offline=true", str(copy)], capture_output=True, text=True,
                          timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_sandbox_keeps_camera_and_gpio_devices(analyze: tuple[str, Path]) -> None:
    tool, copy = analyze
    done = subprocess.run([tool, "security", "--offline=true", "--json=short", str(copy)],
                          capture_output=True, text=True, timeout=60)
    checks = {check["json_field"]: check for check in json.loads(done.stdout)}
    devices = checks["DeviceAllow"]["description"]
    for device in NEEDED_DEVICES:
        assert device in devices, devices
    # PrivateDevices= would hide /dev/video*, /dev/dma_heap and /dev/gpiochip* altogether.
    assert not checks["PrivateDevices"]["set"]


def test_exec_start_is_a_command_line_maskipy_edge_accepts() -> None:
    program, *args = shlex.split(unit_value("ExecStart"))
    assert program == "/opt/maskipy/bin/maskipy-edge"
    parsed = build_parser().parse_args(args)
    assert parsed.command == "run" and parsed.config == "/etc/maskipy/config.ini"
    assert parsed.state_dir == unit_value("WorkingDirectory") == "/var/lib/maskipy"


@pytest.mark.parametrize("script", [INSTALL, SMOKE, CI_SCRIPTS / "run", CI_SCRIPTS / "system-packages"],
                         ids=["install.sh", "arm64-smoke.sh", "ci-run", "ci-system-packages"])
def test_shell_scripts_pass_shellcheck(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK), f"{script.name} should be executable"
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (.ci/run installs it: apt-get install -y shellcheck)")
    # -x from the repository root: .ci/run sources .ci/system-packages by that path.
    done = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True, timeout=60,
                          cwd=CI_SCRIPTS.parent)
    assert done.returncode == 0, done.stdout


def fake_commands(folder: Path, **scripts: str) -> dict[str, str]:
    """An environment whose PATH finds these tiny shell scripts first (dpkg, id, getent, ...)."""
    folder.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return dict(os.environ, PATH=f"{folder}:{os.environ['PATH']}")


def _dry_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), "--dry-run", *args], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def test_install_dry_run_prints_the_steps_and_changes_nothing() -> None:
    if Path("/opt/maskipy").exists():
        pytest.skip("maskipy is installed on this machine; the dry run would report 'up to date'")
    done = _dry_run("--deploy-user", "root")
    assert done.returncode == 0, done.stderr
    out = done.stdout.replace("\\", "")
    for step in ("apt-get install -y --no-install-recommends", "python3-picamera2", "python3-lgpio",
                 "useradd --system", "-m venv --system-site-packages /opt/maskipy", "pip install", "[edge]",
                 "/etc/systemd/system/maskipy-edge.service", "systemctl enable maskipy-edge.service",
                 "2770 /var/lib/maskipy/models/incoming", "dry run done",
                 "install -m 0640 -o root -g maskipy"):
        assert step in out, f"dry run does not mention {step!r}:\n{out}"
    assert not Path("/opt/maskipy").exists() and not Path("/etc/systemd/system/maskipy-edge.service").exists()


def test_install_closes_a_world_readable_config_to_other_users(tmp_path: Path) -> None:
    """A config left 0644 by an older install holds the MQTT password: a re-run makes it 0640."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "config.ini").write_text("[mqtt]\npassword = hunter2\n")
    (conf / "config.ini").chmod(0o644)
    env = dict(os.environ, MASKIPY_CONF_DIR=str(conf))
    done = _dry_run("--no-apt", env=env)
    assert done.returncode == 0, done.stderr
    assert "readable by every user: now 0640 root:maskipy" in done.stdout, done.stdout
    assert f"would run: chmod 0640 {conf}/config.ini" in done.stdout, done.stdout
    (conf / "config.ini").chmod(0o640)
    again = _dry_run("--no-apt", env=env)
    assert "chmod 0640" not in again.stdout, again.stdout


def test_install_adds_the_service_user_to_video_and_gpio_once(tmp_path: Path) -> None:
    missing = _dry_run("--no-apt")
    assert missing.returncode == 0, missing.stderr
    for group in ("video", "gpio"):
        assert f"would run: usermod -aG {group} maskipy" in missing.stdout, missing.stdout
    # A user already in both groups (a re-run): no usermod at all.
    env = fake_commands(tmp_path / "bin", getent="exit 0", id='echo "maskipy video gpio"')
    again = _dry_run("--no-apt", env=env)
    assert again.returncode == 0, again.stderr
    assert "usermod" not in again.stdout and "useradd" not in again.stdout, again.stdout


@pytest.mark.parametrize("arch", ["armhf", "armel", "i386"])
def test_install_stops_at_once_on_32_bit(tmp_path: Path, arch: str) -> None:
    env = fake_commands(tmp_path / "bin", dpkg=f"echo {arch}")
    done = _dry_run(env=env)
    assert done.returncode == 1
    sentence = "maskipy needs 64-bit Raspberry Pi OS (Pi 3, Zero 2 W, 4, 5)"
    assert f"install.sh: error: {sentence}; this system is {arch}" in done.stderr
    assert "would" not in done.stdout, "it should stop before anything else"


@pytest.mark.parametrize("numpy,expected", [
    ("1.24.2", "numpy==1.24.2\nopencv-python-headless<4.12\n"),  # Bookworm: OpenCV 4.12+ needs numpy 2
    ("2.2.4", "numpy==2.2.4\n"),                                  # Trixie
    ("", ""),                                                     # no apt numpy: nothing to keep
])
def test_pip_constraints_keep_apts_numpy(numpy: str, expected: str) -> None:
    fake_numpy = f"system_numpy_version() {{ echo '{numpy}'; }}"
    script = f"source {shlex.quote(str(INSTALL))}; {fake_numpy}; numpy_constraint"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout == expected


def test_uninstall_dry_run_keeps_counts_and_config() -> None:
    done = _dry_run("--uninstall")
    assert done.returncode == 0, done.stderr
    assert "kept /etc/maskipy, /var/lib/maskipy" in done.stdout
    actions = [line for line in done.stdout.splitlines() if line.startswith("would")]
    assert not [line for line in actions if "/var/lib/maskipy" in line or "/etc/maskipy" in line]


def test_install_rejects_unknown_options() -> None:
    done = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "unknown option --frobnicate" in done.stderr
