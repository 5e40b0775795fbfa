"""systemd/: the unit's required settings, systemd-analyze verify, and install.sh's syntax and dry run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "maskipy-edge.service"
INSTALL = SYSTEMD / "install.sh"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections to keys to every value given (systemd keys may repeat, e.g. DeviceAllow=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


@pytest.mark.parametrize("key,value", [
    ("Type", "notify"), ("NotifyAccess", "main"), ("Restart", "on-failure"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"), ("User", "maskipy"), ("SupplementaryGroups", "video gpio"),
    ("StateDirectory", "maskipy"), ("ConfigurationDirectory", "maskipy"), ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("Environment", "GPIOZERO_PIN_FACTORY=lgpio"),
    ("WorkingDirectory", "/var/lib/maskipy"),
    ("ExecStart", "/opt/maskipy/bin/maskipy-edge run --config /etc/maskipy/config.ini "
                  "--state-dir /var/lib/maskipy"),
])
def test_unit_service_settings(unit: dict, key: str, value: str) -> None:
    assert value in unit["Service"].get(key, []), f"[Service] {key}= should include {value!r}"


def test_unit_watchdog_restart_limits_and_devices(unit: dict) -> None:
    assert int(unit["Service"]["WatchdogSec"][0]) > 0
    assert int(unit["Unit"]["StartLimitBurst"][0]) > 0 and "StartLimitIntervalSec" in unit["Unit"]
    # PrivateDevices= would hide the camera, DMA heaps and GPIO chips the gate needs.
    assert "PrivateDevices" not in unit["Service"]
    allowed = " ".join(unit["Service"]["DeviceAllow"])
    for device in ("video4linux", "media", "dma_heap", "gpiochip"):
        assert device in allowed
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt-get install -y systemd); the static checks still ran")
    # verify insists that ExecStart exists; /opt/maskipy is only there on an installed Pi.
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/maskipy/bin/maskipy-edge", "/bin/true"))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_install_script_syntax() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    assert os.access(INSTALL, os.X_OK), "install.sh should be executable"


def test_install_script_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install -y shellcheck)")
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def _dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), "--dry-run", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_install_dry_run_prints_the_steps_and_changes_nothing() -> None:
    if Path("/opt/maskipy").exists():
        pytest.skip("maskipy is installed on this machine; the dry run would report 'up to date'")
    done = _dry_run("--deploy-user", "root")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in ("apt-get install -y", "python3-picamera2", "python3-lgpio", "useradd --system",
                 "-m venv --system-site-packages /opt/maskipy", "pip install", "[edge]",
                 "/etc/systemd/system/maskipy-edge.service", "systemctl enable maskipy-edge.service",
                 "2770 /var/lib/maskipy/models/incoming", "dry run done"):
        assert step in out.replace("\\", ""), f"dry run does not mention {step!r}:\n{out}"
    assert not Path("/opt/maskipy").exists() and not Path("/etc/systemd/system/maskipy-edge.service").exists()


def test_uninstall_dry_run_keeps_counts_and_config() -> None:
    done = _dry_run("--uninstall")
    assert done.returncode == 0, done.stderr
    assert "kept /etc/maskipy, /var/lib/maskipy" in done.stdout
    actions = [line for line in done.stdout.splitlines() if line.startswith("would")]
    assert not [line for line in actions if "/var/lib/maskipy" in line or "/etc/maskipy" in line]


def test_install_rejects_unknown_options() -> None:
    done = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "unknown option --frobnicate" in done.stderr
