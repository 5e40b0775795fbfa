"""An operator's worst week, stalls: recovered, pinged through, bounded, and ended by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import wait_for
from faults_helpers import gate_command


@pytest.fixture
def notify_socket(tmp_path):
    """A datagram socket standing in for systemd: (address, messages) with arrival times."""
    import socket
    import threading

    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.1)
    messages: list[tuple[float, str]] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                messages.append((time.monotonic(), server.recv(4096).decode()))
            except TimeoutError:
                continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    yield str(path), messages
    done.set()
    listener.join(2.0)
    server.close()


def test_a_stalled_camera_is_pinged_through_reopened_and_ends_the_run_under_watchdog_sec(
        tmp_path, scene_frames, notify_socket):
    import threading

    from maskipy.edge.config import load_edge_config
    from maskipy.edge.errors import CameraError
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier
    from maskipy.edge.sources.replay import ReplaySource

    address, messages = notify_socket
    watchdog_sec = 1.0
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(int(watchdog_sec * 1e6))}
    notifier = SystemdNotifier(environ=environ)
    released, opens = threading.Event(), []

    def hanging_camera():
        yield scene_frames[0]
        released.wait(60.0)  # capture_array that never returns

    def opener():
        opens.append(time.monotonic())
        return ReplaySource(hanging_camera(), name="picamera2:0")

    config = (load_edge_config().replace("counts", state_dir=tmp_path / "state")
              .replace("camera", stall_seconds=0.5, max_restarts_per_minute=3))
    runtime = EdgeRuntime(config, notifier=notifier, source_opener=opener)
    started = time.monotonic()
    try:
        with pytest.raises(CameraError, match="no frames after 3 reopens"):
            runtime.run()
    finally:
        released.set()
    ended = time.monotonic()
    assert len(opens) == 4 and ended - started < 15
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip([started, *pings], [*pings, ended], strict=True)]
    assert max(gaps) < watchdog_sec, f"systemd would have killed the gate: a {max(gaps):.2f} s gap"


def test_reopens_spread_by_backoff_still_reach_the_restart_cap():
    from maskipy.edge.errors import CameraError
    from maskipy.edge.sources.replay import ReplaySource
    from maskipy.edge.sources.watchdog import SourceWatchdog

    now = [0.0]
    opens = []

    def opener():
        opens.append(now[0])
        return ReplaySource([None] * 10_000, name="cam")

    def sleep(seconds):
        now[0] += seconds

    watchdog = SourceWatchdog(opener, stall_seconds=10.0, max_restarts_per_minute=5, clock=lambda: now[0],
                              sleep=sleep)
    with pytest.raises(CameraError):
        while now[0] < 1000:
            now[0] += 0.5
            watchdog.read()
    # Stall 10 s plus a backoff up to 8 s: under 5 reopens in any minute, yet it gives up.
    assert len(opens) == 6 and now[0] < 120


class SilentServer:
    """A TCP server that accepts connections and then says nothing (or a few MJPEG frames first)."""

    def __init__(self, frames: list[bytes] = ()) -> None:
        import socket
        import threading

        self.frames = list(frames)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/stream.mjpg"
        self.connections: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.frames:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.0 200 OK\r\n"
                                   b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
                for jpeg in self.frames:
                    connection.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                       % len(jpeg) + jpeg + b"\r\n")

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


def test_a_stream_that_accepts_and_never_answers_fails_to_open_in_bounded_time(monkeypatch):
    from maskipy.edge.errors import CameraError
    from maskipy.edge.sources import opencv

    monkeypatch.setattr(opencv, "STREAM_OPEN_TIMEOUT_MS", 1000)
    server = SilentServer()
    started = time.monotonic()
    try:
        with pytest.raises(CameraError, match="OpenCV cannot open it"):
            opencv.OpenCVSource(server.url)
    finally:
        server.close()
    assert time.monotonic() - started < 5


def test_sigterm_during_a_hung_stream_stops_the_gate_within_5_s(tmp_path, scene_frames, default_bundle):
    import cv2

    jpeg = cv2.imencode(".jpg", scene_frames[0])[1].tobytes()
    server = SilentServer([jpeg] * 3)  # three frames, then the camera hangs with the connection open
    state = tmp_path / "state"
    config = tmp_path / "config.ini"
    config.write_text("[camera]\nstall_seconds = 60\n")
    gate = subprocess.Popen(gate_command(state, server.url, default_bundle, "--config", str(config)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (state / "heartbeat").is_file(), 60), "no frame ever arrived"
        time.sleep(1.0)  # the reader is now blocked on a stream that says nothing
        started = time.monotonic()
        gate.send_signal(signal.SIGTERM)
        _, err = gate.communicate(timeout=20)
        stopped = time.monotonic() - started
    finally:
        if gate.poll() is None:
            gate.kill()
        server.close()
    assert gate.returncode == 0, err[-2000:]
    assert stopped < 5.0, f"took {stopped:.1f} s to stop"


def test_a_hung_picamera2_capture_is_bounded_and_closed_only_after_it_returns(monkeypatch):
    """picamera2's capture_array has no timeout: a thin fake at the hardware boundary that hangs."""
    import threading
    import types

    import numpy as np

    from maskipy.edge.config import CameraConfig
    from maskipy.edge.sources import open_source
    from maskipy.edge.sources.watchdog import SourceWatchdog

    release = threading.Event()
    cameras = []

    class FakePicamera2:
        def __init__(self, index):
            self.captures, self.closed_while_capturing, self.capturing, self.closed = 0, False, False, False
            cameras.append(self)

        def create_video_configuration(self, **kwargs):
            return kwargs

        def configure(self, config):
            pass

        def start(self):
            pass

        def capture_array(self, name):
            self.captures += 1
            if self.captures > 1 and len(cameras) == 1:
                self.capturing = True
                release.wait(30.0)  # libcamera stopped delivering buffers
                self.capturing = False
            return np.zeros((48, 64, 3), np.uint8)

        def stop(self):
            self.closed_while_capturing |= self.capturing

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    watchdog = SourceWatchdog(lambda: open_source("picamera2", CameraConfig()), stall_seconds=0.5,
                              max_restarts_per_minute=3, backoff=0.1, poll_seconds=0.1)
    assert watchdog.read() is not None
    started, frames = time.monotonic(), 0
    while frames == 0 and time.monotonic() - started < 10:
        before = time.monotonic()
        frames += watchdog.read() is not None
        assert time.monotonic() - before < 0.5, "a read blocked the frame loop"
    assert frames == 1 and len(cameras) == 2  # given up on the hung camera, a new one delivers
    assert not cameras[0].closed  # never closed under a capture in flight ...
    release.set()
    assert wait_for(lambda: cameras[0].closed, 5.0)  # ... but as soon as the capture returns
    assert not cameras[0].closed_while_capturing
    watchdog.close()
