"""converters/deploy.py end to end: a real OpenSSH server on 127.0.0.1 stands in for the Pi."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_swap import edit_bundle, reload_recorder_process, state_files, wait_for_hups

from maskipy.converters import deploy
from maskipy.edge.bundle import META_FILE, MODEL_FILE, current_bundle_dir, load_bundle
from maskipy.edge.service.pidfile import PID_FILE

# sshd lives in /usr/sbin, which is not on every PATH.
SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/bin/sshd") if os.path.exists(p)),
                                    None)
MISSING = [name for name, path in (("sshd", SSHD), ("ssh", shutil.which("ssh")), ("scp", shutil.which("scp")),
                                   ("ssh-keygen", shutil.which("ssh-keygen"))) if path is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed; "
                                f"apt-get install -y openssh-server openssh-client")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "maskipy-test", "-f", str(path)],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """sshd in the foreground on a free port, trusting one throwaway key; torn down after the module."""
    work = tmp_path_factory.mktemp("sshd")
    _keygen(work / "user_key")
    shutil.copy(work / "user_key.pub", work / "authorized_keys")
    with _running_sshd(work, "127.0.0.1", _free_port()) as server:
        yield {**server, "key": work / "user_key"}


@pytest.fixture(scope="module")
def wrong_key_sshd(sshd: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A second gate, on 127.0.0.2 and the same port, that trusts another key: it refuses ours."""
    work = tmp_path_factory.mktemp("sshd-wrong-key")
    _keygen(work / "other_key")
    shutil.copy(work / "other_key.pub", work / "authorized_keys")
    with _running_sshd(work, "127.0.0.2", sshd["port"]) as server:
        yield server


@contextlib.contextmanager
def _running_sshd(work: Path, address: str, port: int) -> Iterator[dict]:
    """sshd -D on ``address:port`` trusting ``work/authorized_keys``, stopped on exit."""
    _keygen(work / "host_key")
    user = getpass.getuser()
    (work / "sshd_config").write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {work / 'host_key'}\nPidFile none\nUsePAM no\n"
        f"StrictModes no\nAuthorizedKeysFile {work / 'authorized_keys'}\nPubkeyAuthentication yes\n"
        f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    check = subprocess.run([SSHD, "-t", "-f", str(work / "sshd_config")], capture_output=True, text=True)
    assert check.returncode == 0, f"sshd rejects the test config: {check.stderr}"
    log = open(work / "sshd.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(work / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    assert server.poll() is None, f"sshd exited: {(work / 'sshd.log').read_text()}"
    try:
        yield {"port": port, "user": user, "log": work / "sshd.log", "host": f"{user}@{address}"}
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _remote_command() -> str:
    """This venv's maskipy-edge when its CLI dispatches ``bundle``, else the bundle manager directly."""
    script = Path(sys.executable).parent / "maskipy-edge"
    if script.exists():
        probe = subprocess.run([str(script), "bundle", "--help"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            return str(script)
    return f"{sys.executable} -m maskipy.edge.swap"


@pytest.fixture(scope="module")
def remote_command() -> str:
    return _remote_command()


@pytest.fixture
def target(sshd: dict, remote_command: str, tmp_path: Path) -> dict:
    """Arguments that reach the test sshd, and a fresh state dir standing in for /var/lib/maskipy."""
    state = tmp_path / "pi-state"
    state.mkdir()
    args = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "IdentitiesOnly=yes", "-i", str(sshd["key"]), "-p", str(sshd["port"]),
            "--remote-state-dir", str(state), "--remote-config", "", "--remote-command", remote_command]
    return {"host": f"{sshd['user']}@127.0.0.1", "state": state, "args": args}


def run_deploy(*argv: str) -> int:
    return deploy.main(list(argv))


def test_deploy_installs_and_signals_reload(target: dict, tiny_bundle: Path,
                                           reload_recorder, capsys: pytest.CaptureFixture[str]) -> None:
    child, hups = reload_recorder
    state = target["state"]
    (state / PID_FILE).write_text(f"{child.pid}\n")
    assert run_deploy(str(tiny_bundle), target["host"], *target["args"]) == 0, \
        capsys.readouterr()
    out = capsys.readouterr().out
    current = current_bundle_dir(state)
    assert current is not None
    assert (current / MODEL_FILE).read_bytes() == (tiny_bundle / MODEL_FILE).read_bytes()
    assert f"SIGHUP to pid {child.pid}" in out and " ok " in out
    assert wait_for_hups(hups, 1) == 1
    assert list((state / "models" / "incoming").iterdir()) == [], "the upload is cleaned up"


def _damaged(kind: str, good: Path, where: Path) -> Path:
    data = (good / MODEL_FILE).read_bytes()
    if kind == "bad_sha256":
        return edit_bundle(good, where, model=data[:-8] + bytes(8), fix_sha=False)
    if kind == "wrong_labels":
        count = len(json.loads((good / META_FILE).read_text())["labels"])
        return edit_bundle(good, where, labels=[f"class_{i}" for i in range(count)])
    return edit_bundle(good, where, model=data[: len(data) // 2])


@pytest.mark.parametrize("kind,reason", [("bad_sha256", "sha256"), ("wrong_labels", "labels"),
                                         ("truncated", "cannot load")])
def test_a_corrupt_bundle_is_refused_and_the_old_one_stays(
        kind: str, reason: str, target: dict, tiny_bundle: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = tiny_bundle
    assert run_deploy(str(good), target["host"], *target["args"]) == 0
    before = state_files(target["state"])
    capsys.readouterr()
    assert run_deploy(str(_damaged(kind, good, tmp_path / kind)), target["host"], *target["args"]) == 1
    captured = capsys.readouterr()
    assert reason in captured.out + captured.err
    assert "maskipy-deploy: error:" in captured.err and "Traceback" not in captured.err
    assert state_files(target["state"]) == before


def test_a_file_damaged_in_transit_fails_the_remote_sha256_check(
        target: dict, tiny_bundle: Path, sshd: dict, remote_command: str) -> None:
    args = deploy.build_parser().parse_intermixed_args(
        [str(tiny_bundle), target["host"], *target["args"]])
    plan, hosts = deploy.make_plan(args)
    steps, cleanup = plan.steps(hosts[0])
    for step in steps[:2]:  # prepare, copy
        deploy.run_step(hosts[0], step)
    upload = next((target["state"] / "models" / "incoming").iterdir())
    with open(upload / MODEL_FILE, "r+b") as handle:  # the "network" flips a byte
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(deploy.DeployError, match="verify"):
        deploy.run_step(hosts[0], steps[2])
    deploy.run_step(hosts[0], cleanup)
    assert not upload.exists() and current_bundle_dir(target["state"]) is None


def test_rollback_restores_the_previous_model(
        target: dict, tiny_bundle: Path, tmp_path: Path) -> None:
    first = tiny_bundle
    second = edit_bundle(first, tmp_path / "second", note="second")
    assert run_deploy(str(first), target["host"], *target["args"]) == 0
    assert run_deploy(str(second), target["host"], *target["args"]) == 0
    current = current_bundle_dir(target["state"])
    assert json.loads((current / META_FILE).read_text()).get("note") == "second"
    assert run_deploy("--rollback", target["host"], *target["args"]) == 0
    restored = current_bundle_dir(target["state"])
    assert load_bundle(restored).metadata == load_bundle(first).metadata


def test_dry_run_changes_nothing(target: dict, tiny_bundle: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_deploy("--dry-run", str(tiny_bundle), target["host"], *target["args"]) == 0
    out = capsys.readouterr().out
    assert "would install" in out and "would copy" in out and "scp" in out
    assert state_files(target["state"]) == {} and list(target["state"].iterdir()) == []


def test_several_hosts_get_a_summary_and_a_failure_exits_non_zero(
        target: dict, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stranger = "nobody-here@127.0.0.1"  # sshd's AllowUsers refuses it: a host that cannot be reached
    code = run_deploy(str(tiny_bundle), target["host"], stranger, *target["args"])
    captured = capsys.readouterr()
    assert code == 1
    table = captured.out[captured.out.index("host "):]
    assert f"{target['host']}" in table and " ok " in table and "FAILED" in table and "1 failed" in table
    assert "nobody-here" in captured.err
    assert current_bundle_dir(target["state"]) is not None


def test_usage_and_user_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_deploy(str(tmp_path / "no-bundle"), "pi@gate") == 1
    # Hosts may come from --hosts, so an empty command line is the user's to fix (exit 1), and an
    # option-looking host after -- is never passed to ssh.
    assert run_deploy() == 1
    assert run_deploy("--rollback", "--", "-oProxyCommand=evil") == 1
    with pytest.raises(SystemExit) as usage:  # argparse's usage error, as every maskipy-* command
        run_deploy("--no-such-option")
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert err.count("maskipy-deploy: error:") == 4 and "Traceback" not in err


@pytest.fixture
def reload_recorder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    with reload_recorder_process(tmp_path) as recorder:
        yield recorder


def _table(out: str) -> dict[str, list[str]]:
    """The summary table's rows by host: old sha, new sha, result, seconds ("1.2 s" splits in two)."""
    lines = out.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("host ")):]
    assert lines[0].split()[:7] == ["host", "old", "sha", "new", "sha", "result", "time"]
    return {line.split()[0]: line.split()[1:5] for line in lines[1:-1]}


def test_two_gates_one_refusing_our_key_gives_one_ok_one_failed(
        target: dict, wrong_key_sshd: dict, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refusing = wrong_key_sshd["host"]
    code = run_deploy(str(tiny_bundle), target["host"], refusing, "--parallel", "2", *target["args"])
    captured = capsys.readouterr()
    table = _table(captured.out)
    assert code == 1 and refusing in captured.err
    sha = load_bundle(tiny_bundle).sha256[:12]
    assert table[target["host"]][:3] == ["none", sha, "ok"]
    assert table[refusing][:3] == ["?", "?", "FAILED"], "its model is unknown: ssh refused us"
    assert float(table[target["host"]][3]) > 0
    assert "1 ok, 1 failed, 0 skipped" in captured.out
    assert current_bundle_dir(target["state"]) is not None


def test_a_failing_canary_stops_the_rest(target: dict, wrong_key_sshd: dict, tiny_bundle: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    canary = wrong_key_sshd["host"]
    code = run_deploy(str(tiny_bundle), "--canary", canary, target["host"], *target["args"])
    captured = capsys.readouterr()
    table = _table(captured.out)
    assert code == 1
    assert table[canary][2] == "FAILED" and table[target["host"]][2] == "skipped"
    assert "0 ok, 1 failed, 1 skipped" in captured.out
    assert current_bundle_dir(target["state"]) is None, "nothing was deployed after the canary failed"


def test_a_good_canary_then_a_hosts_file_shows_old_and_new_sha(
        target: dict, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = edit_bundle(tiny_bundle, tmp_path / "second", note="second")
    assert run_deploy(str(tiny_bundle), target["host"], *target["args"]) == 0
    hosts = tmp_path / "gates.txt"
    hosts.write_text(f"# the building's gates\n\n{target['host']}  # front door\n")
    capsys.readouterr()
    code = run_deploy(str(second), "--canary", target["host"], "--hosts", str(hosts), *target["args"])
    out = capsys.readouterr().out
    assert code == 0, out
    old, new = load_bundle(tiny_bundle).sha256[:12], load_bundle(second).sha256[:12]
    assert list(_table(out)) == [target["host"]] and _table(out)[target["host"]][:3] == [old, new, "ok"]
    assert "1 host(s): 1 ok, 0 failed, 0 skipped" in out
