"""A real Mosquitto broker on a free local port, and a recording subscriber (tests and bench share them)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if Path(p).exists()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """``mosquitto -c <conf>`` on 127.0.0.1: anonymous, or with a password file; sessions persisted.

    Persistence matters for the outage tests: a subscriber's queued QoS 1 messages survive a broker
    restart, as they do on a real install (Debian's mosquitto.conf turns persistence on)::

        broker = Mosquitto(tmp_path); broker.start(); ...; broker.stop(); broker.start()
    """

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None,
                 tls: dict[str, Path] | None = None) -> None:
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto not installed; apt-get install -y mosquitto")
        self.workdir, self.port = Path(workdir), free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        tls_lines = [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"] if tls else []
        lines = [f"listener {self.port} 127.0.0.1", *tls_lines, "persistence true",
                 f"persistence_location {self.workdir}/", "autosave_interval 1",
                 f"log_dest file {self.workdir / 'mosquitto.log'}", "log_type all", "user root" if _root()
                 else "", "max_queued_messages 0", f"pid_file {self.workdir / 'mosquitto.pid'}"]
        if users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(line for line in lines if line) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def wait_for_autosave(self, after: float, timeout: float = 15.0) -> None:
        """Block until the broker has saved its state (``mosquitto.db``) at or after wall time ``after``:
        what a kill -9 then keeps (a loaded machine can delay the 1 s autosave well past a fixed sleep)."""
        db = self.workdir / "mosquitto.db"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if db.exists() and db.stat().st_mtime >= after:
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not save {db} within {timeout} s")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and exits, like ``systemctl stop mosquitto``."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (needs the openssl command)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"ca": directory / "ca.crt", "ca_key": directory / "ca.key", "cert": directory / "server.crt",
             "key": directory / "server.key", "csr": directory / "server.csr", "ext": directory / "san.ext"}
    files["ext"].write_text("subjectAltName = IP:127.0.0.1\n")
    commands = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=maskipy test CA",
         "-keyout", files["ca_key"], "-out", files["ca"]],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", files["key"],
         "-out", files["csr"]],
        ["x509", "-req", "-in", files["csr"], "-CA", files["ca"], "-CAkey", files["ca_key"],
         "-CAcreateserial", "-days", "2", "-extfile", files["ext"], "-out", files["cert"]],
    ]
    for command in commands:
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return files


def _root() -> bool:
    import os

    return os.geteuid() == 0


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() on arrival
    # The broker's redelivery of a message it had sent before (QoS 1 after a reconnect or its restart:
    # this subscriber's acknowledgement had not reached it); not a second publish by the gate.
    dup: bool = False


SETTLE = "maskipy-test/settle"  # a Recorder's own round trips (settle), not recorded


@dataclass
class Recorder:
    """A subscriber with a persistent QoS 1 session: while it is away the broker keeps its messages.

    Each message is acknowledged before it is recorded, so ``settle()`` after a message was seen
    proves the broker has that acknowledgement too.
    """

    port: int
    topics: tuple[str, ...] = ("#",)
    client_id: str = "maskipy-test-recorder"
    messages: list[Received] = field(default_factory=list)
    client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = 10.0) -> Recorder:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in self.topics])
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect_async("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError("recorder could not subscribe")
        return self

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        client.ack(message.mid, message.qos)  # queued before anyone can see the message recorded
        if message.topic.startswith(SETTLE + "/"):
            return
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain), time.time(),
                                          bool(message.dup)))

    def settle(self, timeout: float = 10.0) -> None:
        """Return once the broker has read every acknowledgement this subscriber sent so far.

        A QoS 1 publish goes out behind them on the one connection; its PUBACK means the broker read
        them. A broker stopped after this redelivers nothing already recorded, so a duplicate seen
        later is a second publish, not the broker's QoS 1 redelivery.
        """
        info = self.client.publish(f"{SETTLE}/{self.client_id}", b"", qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise RuntimeError(f"the broker did not acknowledge {self.client_id}'s settle within {timeout} s")

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.on(topic)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.on(topic)

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
