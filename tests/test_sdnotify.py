"""sd_notify over a real unix datagram socket, on its own and from the running frame loop."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from maskipy.edge.service.sdnotify import SystemdNotifier, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket standing in for systemd; yields (address, receive)."""
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5.0)

    def receive(timeout: float = 5.0) -> str | None:
        server.settimeout(timeout)
        try:
            return server.recv(4096).decode()
        except TimeoutError:
            return None

    yield str(path), receive
    server.close()


def test_no_socket_means_no_op():
    notifier = SystemdNotifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog(0.0) is False


def test_messages_reach_the_socket(notify_socket):
    address, receive = notify_socket
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
    assert notifier.interval == pytest.approx(1.0)
    notifier.ready("up")
    assert receive() == "READY=1\nSTATUS=up"
    notifier.reloading(lambda: 2.5)
    assert receive() == "RELOADING=1\nMONOTONIC_USEC=2500000"
    assert notifier.watchdog(10.0) and not notifier.watchdog(10.5) and notifier.watchdog(11.0)
    assert receive() == "WATCHDOG=1" and receive() == "WATCHDOG=1"
    notifier.stopping()
    assert receive() == "STOPPING=1"
    notifier.close()


def test_abstract_socket_names_start_with_at():
    name = f"maskipy-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5.0)
    try:
        assert SystemdNotifier(f"@{name}", environ={}).notify("STATUS=abstract")
        assert server.recv(100) == b"STATUS=abstract"
    finally:
        server.close()


def test_unreachable_socket_is_not_fatal(tmp_path):
    notifier = SystemdNotifier(str(tmp_path / "nobody.sock"), environ={})
    assert notifier.ready() is False


def test_watchdog_interval_from_environment():
    assert watchdog_interval({}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "600000"}) == pytest.approx(0.2)
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) == 1.0


def test_frame_loop_sends_ready_then_watchdog_and_stops_pinging_when_the_loop_itself_hangs(
        notify_socket, bundle_dir, scene_frames, tmp_path, monkeypatch):
    """A hung camera is the watchdog's to recover (tests/test_faults_stalls.py); a hung loop is systemd's."""
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.sources.replay import ReplaySource

    address, receive = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "30000")  # a ping every 10 ms at most
    hang, released = threading.Event(), threading.Event()
    frame = scene_frames[0]

    def frames():
        while True:
            time.sleep(0.005)
            yield frame

    config = load_edge_config().replace("counts", state_dir=tmp_path / "state")
    runtime = EdgeRuntime(config, model=bundle_dir, source_opener=lambda: ReplaySource(frames()))
    classify = runtime.classifier.classify

    def wedged_classify(crops):
        if runtime.timer.frames > 40:
            hang.set()
            released.wait(10.0)  # an interpreter that never returns
        return classify(crops)

    runtime.classifier.classify = wedged_classify
    loop = threading.Thread(target=runtime.run, daemon=True)
    loop.start()
    assert hang.wait(20.0), "the loop never reached its hang"
    messages = []
    while (message := receive(0.3)) is not None:
        messages.append(message)
    assert messages[0].startswith("READY=1")
    assert sum(m == "WATCHDOG=1" for m in messages) >= 2
    assert receive(0.5) is None, "WATCHDOG=1 must stop while the frame loop hangs"
    runtime.stop()
    released.set()
    loop.join(10.0)
    assert not loop.is_alive()
    while (message := receive(2.0)) == "WATCHDOG=1":
        pass
    assert message == "STOPPING=1"
