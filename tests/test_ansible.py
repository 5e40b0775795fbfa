"""ansible/ end to end: ansible-playbook drives two real sshd "gates" on 127.0.0.1 and 127.0.0.2.

ssh is real: the playbooks log in as a non-root deploy user and become root with sudo. Both gates are
this machine, so each gets its own paths (venv, /etc/maskipy, /var/lib/maskipy, unit, wrapper) and
service user through the inventory. systemd is not PID 1 here: only the ``systemctl`` boundary is
stubbed (a script first on the tasks' PATH through ``maskipy_environment``, which records each call and
keeps each unit's enabled/active state). apt is off (``maskipy_apt: false``: picamera2 is not in
Debian); pip installs a wheel built from this checkout, its dependencies from a wheelhouse that
``pip download`` fills once per run (``maskipy_pip_args: [--no-index, --find-links, ...]``).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from conftest import REPO, SHARED

from maskipy.edge.bundle import DEFAULT_BUNDLE, META_FILE, MODEL_FILE

ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
DEPLOY_USER = "maskipy-ci"
GATES = {"gate1": "127.0.0.1", "gate2": "127.0.0.2"}
SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/bin/sshd") if os.path.exists(p)),
                                    None)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
THIRTY_TWO_BIT = "maskipy needs 64-bit Raspberry Pi OS (Pi 3, Zero 2 W, 4, 5); this system is armhf"

SYSTEMCTL_STUB = r"""#!/bin/bash
# Stand-in for systemctl (systemd is not PID 1 in CI): records each call, keeps enabled/active per gate.
state=${MASKIPY_SYSTEMCTL_STATE:?systemctl stub: MASKIPY_SYSTEMCTL_STATE not set}
mkdir -p "$state" && echo "$*" >>"$state/calls.log"
case $1 in
    daemon-reload) ;;
    show) if [ -e "$state/active" ]; then a=active s=running; else a=inactive s=dead; fi
          printf 'Id=%s\nLoadState=loaded\nActiveState=%s\nSubState=%s\n' "$2" "$a" "$s" ;;
    is-enabled) if [ -e "$state/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
    is-active) if [ -e "$state/active" ]; then echo active; else echo inactive; exit 3; fi ;;
    enable) touch "$state/enabled" ;;
    disable) rm -f "$state/enabled" ;;
    start|restart|reload) touch "$state/active" ;;
    stop) rm -f "$state/active" ;;
    *) echo "systemctl stub: '$1' not handled" >&2; exit 1 ;;
esac
"""


def missing(what: str) -> NoReturn:
    """Fail in CI (a missing tool must not pass as skips), skip elsewhere."""
    message = f"{what}; .ci/run installs it"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run(*argv: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True, timeout=300,
                          **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_sshd(work: Path, address: str, port: int) -> subprocess.Popen:
    """sshd -D on ``address:port`` letting only the deploy user in, with ``work/authorized_keys``."""
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", work / f"host_key_{address}")
    config = work / f"sshd_config_{address}"
    config.write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {work / f'host_key_{address}'}\nPidFile none\n"
        f"UsePAM no\nStrictModes no\nAuthorizedKeysFile {work / 'authorized_keys'}\n"
        f"PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"AllowUsers {DEPLOY_USER}\n"
        f"Subsystem sftp internal-sftp\nLogLevel VERBOSE\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    run(SSHD, "-t", "-f", config)
    log = open(work / f"sshd_{address}.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"sshd on {address} did not start: {(work / f'sshd_{address}.log').read_text()}")


def _deploy_user(work: Path) -> Path:
    """The non-root user the playbooks log in as, with passwordless sudo; its sudoers file."""
    if subprocess.run(["id", DEPLOY_USER], capture_output=True).returncode != 0:
        run("useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER)
    run("usermod", "-p", "*", DEPLOY_USER)  # no password, not locked: sshd (UsePAM no) lets keys in
    sudoers = Path(f"/etc/sudoers.d/{DEPLOY_USER}-test")
    rule = work / "sudoers"
    rule.write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD: ALL\n")
    run("visudo", "-cqf", rule)
    shutil.copy(rule, sudoers)
    sudoers.chmod(0o440)
    return sudoers


def _gate_vars(work: Path, name: str) -> dict:
    root = work / name
    return {"ansible_host": GATES[name], "maskipy_service_user": f"maskipy-{name}",
            "maskipy_prefix": f"{root}/opt/maskipy", "maskipy_conf_dir": f"{root}/etc/maskipy",
            "maskipy_state_dir": f"{root}/var/lib/maskipy",
            "maskipy_unit_path": f"{root}/etc/systemd/system/maskipy-edge.service",
            "maskipy_wrapper_path": f"{root}/usr/local/bin/maskipy-edge",
            "maskipy_sudoers_path": f"{root}/etc/sudoers.d/maskipy-deploy",
            "maskipy_environment": {"PATH": f"{work / 'bin'}:{SYSTEM_PATH}",
                                    "MASKIPY_SYSTEMCTL_STATE": f"{root}/systemctl"},
            "maskipy_gate": f"door-{name[-1]}"}


def _inventory(work: Path, port: int, wheel: Path, wheelhouse: Path) -> Path:
    """The inventory, and a vaulted group_vars file with the passwords (JSON is YAML)."""
    for name in GATES:
        for folder in ("etc/systemd/system", "etc/sudoers.d", "usr/local/bin", "var/lib"):
            (work / name / folder).mkdir(parents=True, exist_ok=True)
    gates = {"hosts": {name: _gate_vars(work, name) for name in GATES}, "vars": {
        "ansible_user": DEPLOY_USER, "ansible_port": port, "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(work / "deploy_key"),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "maskipy_apt": False, "maskipy_wheel": str(wheel),
        "maskipy_pip_args": ["--no-index", "--find-links", str(wheelhouse)],
        "maskipy_check_environment": {"GPIOZERO_PIN_FACTORY": "mock"},
        "maskipy_camera": {"source": str(SHARED / "data" / "scenes"), "width": 320, "height": 240},
        "maskipy_mqtt": {"enabled": False, "host": "broker.lan", "username": "maskipy"},
        "maskipy_mqtt_password": "{{ vault_mqtt_password }}"}}
    inventory = work / "inventory"
    (inventory / "group_vars" / "gates").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(json.dumps({"all": {"children": {"gates": gates}}}, indent=1))
    vault = inventory / "group_vars" / "gates" / "vault.yml"
    vault.write_text(json.dumps({"vault_mqtt_password": "s3cret-from-vault"}))
    (work / "vault-pass").write_text("test-vault-password\n")
    run(BIN / "ansible-vault", "encrypt", "--vault-password-file", work / "vault-pass", vault, env=_env(work))
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    return inventory


def _env(work: Path) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
                ANSIBLE_HOME=str(work / "ansible-home"),
                ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"), ANSIBLE_DEPRECATION_WARNINGS="0",
                PATH=f"{BIN}:{os.environ['PATH']}")


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict]:
    """Two gates behind real sshd, the deploy user, the inventory; torn down after the module."""
    if os.geteuid() != 0:
        missing(f"the Ansible tests add users and a sudoers rule: run them as root, not {getpass.getuser()}")
    for tool in ("ssh", "ssh-keygen", "sudo", "visudo", "useradd"):
        if shutil.which(tool) is None:
            missing(f"{tool} not installed (apt-get install -y openssh-client sudo passwd)")
    if SSHD is None:
        missing("sshd not installed (apt-get install -y openssh-server)")
    if not (BIN / "ansible-playbook").exists():
        missing(f"ansible-playbook not in {BIN} (pip install -e '.[dev]' brings ansible-core)")
    if not (SHARED / "data" / "scenes").is_dir():
        missing(f"{SHARED / 'data' / 'scenes'} not found (the shared data beside the repository)")
    work = Path(tempfile.mkdtemp(prefix="maskipy-ansible-"))
    work.chmod(0o755)  # the deploy and service users walk through it
    (work / "bin").mkdir()
    (work / "bin" / "systemctl").write_text(SYSTEMCTL_STUB)
    (work / "bin" / "systemctl").chmod(0o755)
    sudoers = _deploy_user(work)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", work / "deploy_key")
    shutil.copy(work / "deploy_key.pub", work / "authorized_keys")
    (work / "authorized_keys").chmod(0o644)
    # From a copy: setuptools leaves build/ and an egg-info in the tree it builds (and reuses build/).
    source = shutil.copytree(REPO, work / "source", ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "cache", "runs", "state", "tests", "__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work / "dist",
        source, cwd=work)
    wheel = next((work / "dist").glob("maskipy-*.whl"))
    run(sys.executable, "-m", "pip", "download", "-q", "-d", work / "wheelhouse", f"{wheel}[edge]")
    port = _free_port()
    servers = [_start_sshd(work, address, port) for address in GATES.values()]
    try:
        yield {"work": work, "inventory": _inventory(work, port, wheel, work / "wheelhouse"),
               "vars": {name: _gate_vars(work, name) for name in GATES}}
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        # Ansible's ssh masters (ControlPersist) keep a session each: end them, so the users can go.
        for control in (work / "cp").glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", "gate"], capture_output=True)
        sudoers.unlink(missing_ok=True)
        for name in GATES:
            subprocess.run(["userdel", f"maskipy-{name}"], capture_output=True)
            subprocess.run(["groupdel", f"maskipy-{name}"], capture_output=True)
        # The deploy user stays for the next run: without its sudoers rule and key it can do nothing.
        shutil.rmtree(work, ignore_errors=True)


def playbook(fleet: dict, name: str, *args: str) -> tuple[int, str, dict[str, dict[str, int]]]:
    """Run one of ansible/'s playbooks: exit status, output, and the recap's counts per gate."""
    work, started = fleet["work"], time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(fleet["inventory"]),
                           "--vault-password-file", str(work / "vault-pass"), str(ANSIBLE / name), *args],
                          capture_output=True, text=True, timeout=300, env=_env(work), cwd=ANSIBLE)
    out = done.stdout + done.stderr
    if "MASKIPY FLEET SUMMARY" in out:
        print(out[out.index("MASKIPY FLEET SUMMARY"):])
    print(f"{name} {' '.join(args)}: {time.monotonic() - started:.1f} s")
    recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
             for m in re.finditer(r"^(gate\d)\s+:\s+(.*)$", out, flags=re.MULTILINE)}
    return done.returncode, out, recap


def calls(fleet: dict, gate: str) -> list[str]:
    """The systemctl stub's log for one gate."""
    log = Path(fleet["vars"][gate]["maskipy_environment"]["MASKIPY_SYSTEMCTL_STATE"]) / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def bundle_status(fleet: dict, gate: str) -> str:
    """'maskipy-edge bundle status' run on the gate as its service user."""
    v = fleet["vars"][gate]
    return run("sudo", "-n", "-u", v["maskipy_service_user"], f"{v['maskipy_prefix']}/bin/maskipy-edge",
               "bundle", "status", "--state-dir", v["maskipy_state_dir"], "--config",
               f"{v['maskipy_conf_dir']}/config.ini").stdout


def summary(out: str) -> dict[str, list[str]]:
    """The fleet table's rows by host: old sha, new sha, result."""
    lines = out[out.index("MASKIPY FLEET SUMMARY"):].splitlines()[1:]
    assert lines[0].split()[:7] == ["host", "old", "sha", "new", "sha", "result", "detail"], lines
    return {line.split()[0]: line.split()[1:4] for line in lines[1:] if line.startswith("gate")}


def edited_bundle(where: Path, *, labels: list[str] | None = None, tail: bytes = b"") -> Path:
    """A copy of the built-in bundle: the labels reordered, or bytes appended to the model (a new sha)."""
    shutil.copytree(DEFAULT_BUNDLE, where)
    model = where / MODEL_FILE
    model.write_bytes(model.read_bytes() + tail)
    meta = json.loads((where / META_FILE).read_text())
    meta["model"]["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    if labels is not None:
        meta["labels"] = labels
    (where / META_FILE).write_text(json.dumps(meta))
    return where


def sha(bundle: Path) -> str:
    return json.loads((bundle / META_FILE).read_text())["model"]["sha256"][:12]


def test_install_twice_the_second_run_changes_nothing(fleet: dict) -> None:
    # forks 1: both "gates" share this machine's /etc/passwd, which two useradds at once would fight over.
    code, out, recap = playbook(fleet, "install.yml", "--forks", "1")
    assert code == 0, out
    assert all(recap[gate]["changed"] > 0 and recap[gate]["failed"] == 0 for gate in GATES), out
    for gate, v in fleet["vars"].items():
        prefix, state = Path(v["maskipy_prefix"]), Path(v["maskipy_state_dir"])
        assert (prefix / "bin" / "maskipy-edge").exists()
        unit = Path(v["maskipy_unit_path"]).read_text()
        assert f"ExecStart={prefix}/bin/maskipy-edge run --config {v['maskipy_conf_dir']}/config.ini" in unit
        assert f"User=maskipy-{gate}" in unit and "WatchdogSec=30" in unit
        assert stat.S_IMODE((state / "models" / "incoming").stat().st_mode) == 0o2770
        assert stat.S_IMODE(Path(v["maskipy_sudoers_path"]).stat().st_mode) == 0o440
        groups = run("id", "-nG", f"maskipy-{gate}").stdout.split()
        assert {"video", "gpio"} <= set(groups)
        assert f"maskipy-{gate}" in run("id", "-nG", DEPLOY_USER).stdout.split()
        log = calls(fleet, gate)
        assert "daemon-reload" in log and f"enable {v['maskipy_unit_path'].rsplit('/', 1)[1]}" in log, log
    code, out, recap = playbook(fleet, "install.yml")
    assert code == 0, out
    assert all(recap[gate]["changed"] == 0 for gate in GATES), out


def test_install_stops_with_install_shs_sentence_on_32_bit(fleet: dict) -> None:
    fake = fleet["work"] / "bin32"
    fake.mkdir(exist_ok=True)
    (fake / "dpkg").write_text("#!/bin/sh\necho armhf\n")
    (fake / "dpkg").chmod(0o755)
    env = dict(fleet["vars"]["gate1"]["maskipy_environment"])
    env["PATH"] = f"{fake}:{env['PATH']}"
    code, out, recap = playbook(fleet, "install.yml", "-l", "gate1", "-e",
                                json.dumps({"maskipy_environment": env}))
    assert code != 0 and THIRTY_TWO_BIT in out, out
    assert recap["gate1"]["changed"] == 0 and recap["gate1"]["failed"] == 1


def test_configure_checks_then_restarts_only_on_change(fleet: dict) -> None:
    before = {gate: len(calls(fleet, gate)) for gate in GATES}
    code, out, recap = playbook(fleet, "configure.yml")
    assert code == 0, out
    assert "s3cret" not in out, "the vaulted password must not be printed"
    for gate, v in fleet["vars"].items():
        config = Path(v["maskipy_conf_dir"]) / "config.ini"
        text = config.read_text()
        assert f"gate = door-{gate[-1]}" in text and "password = s3cret-from-vault" in text, text
        assert f"source = {SHARED / 'data' / 'scenes'}" in text and "buzzer_pin = 22" in text
        assert "devices = led, buzzer, log" in text and "enabled = no" in text
        info = config.stat()
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_uid == 0
        assert info.st_gid == int(run("id", "-g", f"maskipy-{gate}").stdout)
        new = calls(fleet, gate)[before[gate]:]
        # The handler's restart of the service stopped for the check is a start.
        actions = [c.split()[0] for c in new if c.split()[0] in ("stop", "restart", "start")]
        assert actions == ["stop", "start"], new
    log_from = len(calls(fleet, "gate1"))
    code, out, recap = playbook(fleet, "configure.yml")
    assert code == 0 and all(recap[gate]["changed"] == 0 for gate in GATES), out
    # A dry run of a change says so and touches neither the files nor the service.
    live = Path(fleet["vars"]["gate1"]["maskipy_conf_dir"]) / "config.ini"
    files = {path: path.read_text() for path in (live, live.with_name("config.ini.proposed"))}
    code, out, recap = playbook(fleet, "configure.yml", "--check", "-l", "gate1", "-e", "maskipy_gate=new")
    assert code == 0 and recap["gate1"]["changed"] == 1, out
    assert {path: path.read_text() for path in files} == files
    assert [c for c in calls(fleet, "gate1")[log_from:] if not c.startswith("show")] == []


def test_a_config_that_fails_the_check_is_not_made_live(fleet: dict) -> None:
    live = Path(fleet["vars"]["gate1"]["maskipy_conf_dir"]) / "config.ini"
    before, log_from = live.read_text(), len(calls(fleet, "gate1"))
    broken = {"source": str(fleet["work"] / "no-such-folder"), "width": 320, "height": 240}
    code, out, _ = playbook(fleet, "configure.yml", "-l", "gate1", "-e",
                            json.dumps({"maskipy_camera": broken}))
    assert code != 0 and "maskipy-edge check refused the new config" in out and "✗ source" in out, out
    assert live.read_text() == before
    actions = [c.split()[0] for c in calls(fleet, "gate1")[log_from:] if c.split()[0] != "show"]
    assert actions == ["stop", "start"], actions


@pytest.fixture(scope="module")
def bundles(fleet: dict) -> dict[str, Path]:
    work = fleet["work"] / "bundles"
    labels = json.loads((DEFAULT_BUNDLE / META_FILE).read_text())["labels"]
    permuted = [labels[1], labels[0], *labels[2:]]
    # The built-in network again with 16 bytes appended: it loads and answers the same, under a new sha.
    return {"good": edited_bundle(work / "good"), "second": edited_bundle(work / "second", tail=bytes(16)),
            "permuted": edited_bundle(work / "permuted", labels=permuted)}


def test_a_good_bundle_reaches_both_gates(fleet: dict, bundles: dict[str, Path]) -> None:
    good = bundles["good"]
    code, out, _ = playbook(fleet, "rollout.yml", "-e", f"maskipy_bundle={good}")
    assert code == 0, out
    table = summary(out)
    assert table == {gate: ["none", sha(good), "ok"] for gate in GATES}, out
    assert "2 gate(s): 2 ok, 0 failed, 0 skipped" in out
    for gate in GATES:
        assert sha(good) in next(line for line in bundle_status(fleet, gate).splitlines()
                                 if line.startswith("current"))
        incoming = Path(fleet["vars"][gate]["maskipy_state_dir"]) / "models" / "incoming"
        assert list(incoming.iterdir()) == [], "the upload is removed"


def test_a_bad_bundle_stops_at_the_canary(fleet: dict, bundles: dict[str, Path]) -> None:
    good, bad = bundles["good"], bundles["permuted"]
    before = {gate: bundle_status(fleet, gate) for gate in GATES}
    code, out, recap = playbook(fleet, "rollout.yml", "-e", f"maskipy_bundle={bad}")
    assert code != 0, out
    table = summary(out)
    assert table["gate1"] == [sha(good), sha(good), "FAILED"], out
    assert table["gate2"] == ["?", "?", "skipped"], out
    assert "2 gate(s): 0 ok, 1 failed, 1 skipped" in out and "label" in out.lower()
    assert "gate2" not in recap or recap["gate2"]["ok"] == 0, "the second gate was never touched"
    assert {gate: bundle_status(fleet, gate) for gate in GATES} == before


def test_a_second_bundle_then_a_rollback(fleet: dict, bundles: dict[str, Path]) -> None:
    good, second = bundles["good"], bundles["second"]
    code, out, _ = playbook(fleet, "rollout.yml", "-e", f"maskipy_bundle={second}", "-e", "maskipy_batch=1")
    assert code == 0, out
    assert summary(out) == {gate: [sha(good), sha(second), "ok"] for gate in GATES}, out
    code, out, _ = playbook(fleet, "rollback.yml")
    assert code == 0, out
    assert summary(out) == {gate: [sha(second), sha(good), "ok"] for gate in GATES}, out
    for gate in GATES:
        assert sha(good) in next(line for line in bundle_status(fleet, gate).splitlines()
                                 if line.startswith("current"))


def test_ansible_lint_is_clean() -> None:
    if not (BIN / "ansible-lint").exists():
        missing(f"ansible-lint not in {BIN} (pip install -e '.[dev]')")
    done = subprocess.run([str(BIN / "ansible-lint")], capture_output=True, text=True, timeout=300,
                          cwd=ANSIBLE,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"), NO_COLOR="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failure(s), 0 warning(s)" in done.stdout + done.stderr
