"""On a Raspberry Pi: the camera delivers frames, lgpio drives a pin, and the installed unit starts, pings
systemd's watchdog and is restarted after a kill. Run them with the command in systemd/README.md.

Off a Pi each test skips, naming why (/proc/device-tree/model is not a Raspberry Pi's)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DEVICE_MODEL = Path("/proc/device-tree/model")
SERVICE = "maskipy-edge.service"


def pi_model() -> str:
    """The board's model ('Raspberry Pi 4 Model B Rev 1.4'), or '' off a Pi."""
    model = pi_model_text()
    return model if model.startswith("Raspberry Pi") else ""


def pi_model_text() -> str:
    try:
        return DEVICE_MODEL.read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        return ""


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60, check=False)


def service_active() -> bool:
    if shutil.which("systemctl") is None:
        return False
    return systemctl("is-active", "--quiet", SERVICE).returncode == 0


@pytest.fixture
def service_stopped() -> Iterator[None]:
    """The camera and pins to ourselves: libcamera lets one process hold a camera, lgpio one owner a line.

    Stops the running service for the test and starts it again after (root only)."""
    if not service_active():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip(f"{SERVICE} is running and holds the camera and pins: run these tests with sudo")
    assert systemctl("stop", SERVICE).returncode == 0
    try:
        yield
    finally:
        systemctl("start", SERVICE)


@pytest.fixture
def root_and_service() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to start and kill the service: sudo ...")
    if systemctl("cat", SERVICE).returncode != 0:
        pytest.skip(f"{SERVICE} is not installed: sudo systemd/install.sh")


pytestmark = [pytest.mark.hardware,
              pytest.mark.skipif(not pi_model(), reason=f"not a Raspberry Pi ({DEVICE_MODEL}: "
                                 f"{pi_model_text() or 'absent'})")]

CONFIG = Path("/etc/maskipy/config.ini")
# The green LED of config.ini; another free BCM pin with MASKIPY_HW_PIN=N.
DEFAULT_PIN = 17


def test_camera_opens_and_delivers_frames(service_stopped) -> None:
    from maskipy.edge.sources.picamera2 import Picamera2Source

    source = Picamera2Source(width=640, height=480, fps=15)
    try:
        frames = [frame for frame in (source.read() for _ in range(30)) if frame is not None]
    finally:
        source.close()
    assert len(frames) >= 20, f"only {len(frames)} of 30 reads gave a frame"
    assert frames[-1].shape == (480, 640, 3)
    # A covered lens still has sensor noise; a constant frame means no real exposure arrived.
    assert frames[-1].std() > 0.5


def led_pin() -> int:
    if "MASKIPY_HW_PIN" in os.environ:
        return int(os.environ["MASKIPY_HW_PIN"])
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser.getint("outputs", "ok_led_pin", fallback=DEFAULT_PIN)


def test_lgpio_drives_a_pin(service_stopped) -> None:
    from gpiozero import DigitalOutputDevice
    from gpiozero.pins.lgpio import LGPIOFactory

    factory = LGPIOFactory()
    device = DigitalOutputDevice(led_pin(), pin_factory=factory)
    try:
        device.on()
        time.sleep(0.2)
        # pin.state reads the line back through lgpio (gpio_read), not our own bookkeeping.
        assert device.pin.state == 1
        device.off()
        time.sleep(0.2)
        assert device.pin.state == 0
    finally:
        device.close()
        factory.close()


def show(*props: str) -> dict[str, str]:
    done = systemctl("show", SERVICE, *(f"--property={p}" for p in props))
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def wait_active(timeout: float = 150.0) -> dict[str, str]:
    """Wait for ActiveState=active (Type=notify: after READY=1, the model loaded and the camera open)."""
    deadline = time.monotonic() + timeout
    state: dict[str, str] = {}
    while time.monotonic() < deadline:
        state = show("ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
        if state.get("ActiveState") == "active" and state.get("MainPID", "0") != "0":
            return state
        time.sleep(1)
    raise AssertionError(f"{SERVICE} not active after {timeout:.0f} s: {state}; journalctl -u {SERVICE}")


def test_unit_starts_pings_the_watchdog_and_restarts_after_a_kill(root_and_service) -> None:
    assert systemctl("restart", SERVICE).returncode == 0
    first = wait_active()
    time.sleep(12)  # the loop pings every WatchdogSec/3 = 10 s
    pinged = show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
    assert int(pinged) > int(first["WatchdogTimestampMonotonic"]), "no WATCHDOG=1 ping in 12 s"

    assert systemctl("kill", "--signal=SIGKILL", SERVICE).returncode == 0
    time.sleep(2)
    again = wait_active(timeout=150 + 5)  # RestartSec=5, then a fresh start
    assert again["MainPID"] != first["MainPID"]
    assert int(again["NRestarts"]) == int(first["NRestarts"]) + 1


@pytest.mark.parametrize("path", ["/dev/dma_heap", "/dev/gpiochip0"])
def test_the_devices_the_sandbox_allows_exist(path: str) -> None:
    """DeviceAllow= names these device classes; a kernel without them leaves the service blind."""
    assert Path(path).exists()
