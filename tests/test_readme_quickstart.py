"""The README's quick starts, command by command, on a scratch clone: the README cannot drift from what
works. Each command of a ``sh`` block under a "## Quick start" heading is run as written where it can
run off a Pi, or in a stated substitute form (a Pi, root, systemd or a remote host stand behind it);
a command added to the README without a way to try it here fails ``test_every_command_is_handled``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, SHARED

README = REPO / "README.md"
EDGE = [sys.executable, "-m", "maskipy.edge.cli"]
MODULES = {"maskipy-edge": "maskipy.edge.cli", "maskipy-train": "maskipy.trainer.cli",
           "maskipy-convert": "maskipy.converters.cli", "maskipy-eval": "maskipy.trainer.evaluate",
           "maskipy-deploy": "maskipy.converters.deploy"}


def quick_start_commands() -> list[str]:
    """The commands of the ``sh`` blocks under the README's "## Quick start" headings, in order (comments
    dropped, backslash continuations joined)."""
    commands: list[str] = []
    for section in re.split(r"^## ", README.read_text(), flags=re.MULTILINE):
        if not section.startswith("Quick start"):
            continue
        for block in re.findall(r"^```sh\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
            text = block.replace("\\\n", " ")
            for line in text.splitlines():
                command = re.sub(r"\s+#\s.*$", "", line).strip()
                if command:
                    commands.append(re.sub(r"\s+", " ", command))
    return commands


def sh(scratch: Path, command: str | list[str], **env: str) -> str:
    """Run in the scratch clone; returns stdout and stderr, asserting exit 0."""
    args = command if isinstance(command, list) else ["bash", "-c", command]
    done = subprocess.run(args, cwd=scratch, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, check=False)
    output = done.stdout[-2000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{output}"
    return done.stdout + done.stderr


def as_module(command: str) -> list[str]:
    """``.venv/bin/maskipy-x ARGS`` as ``python -m <its module> ARGS`` (this checkout's code)."""
    words = shlex.split(command)
    return [sys.executable, "-m", MODULES[Path(words[0]).name], *words[1:]]


def parses(command: str) -> None:
    """The exact arguments parse with the command's own parser (its options exist as written)."""
    import importlib

    words = as_module(command)
    importlib.import_module(words[2]).build_parser().parse_args(words[3:])


# --- the Pi operator ----------------------------------------------------------------------------------
def clone(scratch: Path, command: str) -> None:
    """`git clone <this repository> maskipy`: this checkout is the repository."""
    sh(scratch.parent, ["git", "clone", "-q", str(REPO), scratch.name])
    (scratch.parent / "shared").symlink_to(SHARED)  # ../shared beside it, as the README asks


def install(scratch: Path, command: str) -> None:
    """Not here: it needs root on 64-bit Raspberry Pi OS (apt, /opt/maskipy, a system user, systemd);
    tests/test_systemd.py dry-runs it. Here: the script is valid bash."""
    sh(scratch, ["bash", "-n", "systemd/install.sh"])


def edit_config(scratch: Path, command: str) -> None:
    """The config the operator edits starts as `maskipy-edge example-config`, as the comment says."""
    (scratch / "config.ini").write_text(sh(scratch, [*EDGE, "example-config"]))


def not_here(scratch: Path, command: str) -> None:
    """systemctl and journalctl act on the installed service of a Pi; nothing to try off one."""


def check(scratch: Path, command: str) -> None:
    """`check` on the example config, with mock pins and the scene photos for the Pi's camera."""
    assert "check --config /etc/maskipy/config.ini" in command
    out = sh(scratch, [*EDGE, "check", "--config", "config.ini", "--source", "../shared/data/scenes",
                       "--state-dir", "state"], GPIOZERO_PIN_FACTORY="mock")
    for name in ("config", "model", "source", "pipeline", "gpio", "state"):
        assert f"✓ {name}: " in out, out
    assert not (scratch / "state").exists(), "check changed the system"


# --- the workstation trainer ---------------------------------------------------------------------------
def setup_dev(scratch: Path, command: str) -> None:
    """`make -n`: the target exists and installs the dev extras (no network here)."""
    assert "pip install" in sh(scratch, ["make", "-n", "setup-dev"])


def recipe(scratch: Path, command: str) -> None:
    """Training and conversion take half an hour: the arguments parse and the recipe loads."""
    from maskipy.converters.config import load_convert_config
    from maskipy.trainer.config import load_train_config

    parses(command)
    ini = scratch / shlex.split(command)[-1]
    train, _ = load_train_config(ini)
    load_convert_config(ini)
    assert train.data_dir.is_dir(), train.data_dir


def evaluate(scratch: Path, command: str) -> None:
    """The arguments parse and name what exists (the full evaluation reads 3968 photos)."""
    parses(command)
    model, data = shlex.split(command)[1:3]
    assert (scratch / model / "model.tflite").is_file() and (scratch / data).is_dir()


def deploy(scratch: Path, command: str) -> None:
    """The same command with --dry-run: no gate to copy to here (tests/test_deploy.py uses a local sshd)."""
    out = sh(scratch, [*as_module(command)[:3], "--dry-run", *shlex.split(command)[1:]])
    assert "1 host(s): 1 ok" in out, out


STEPS: dict[str, Callable[[Path, str], None]] = {
    "git clone <this repository> maskipy && cd maskipy": clone,
    "sudo systemd/install.sh": install,
    "sudoedit /etc/maskipy/config.ini": edit_config,
    "sudo systemctl stop maskipy-edge": not_here,
    "sudo -u maskipy /opt/maskipy/bin/maskipy-edge check --config /etc/maskipy/config.ini": check,
    "sudo systemctl start maskipy-edge && journalctl -u maskipy-edge -f": not_here,
    "make setup-dev": setup_dev,
    ".venv/bin/maskipy-train --config converters/default-model.ini": recipe,
    ".venv/bin/maskipy-convert --config converters/default-model.ini": recipe,
    ".venv/bin/maskipy-eval edge/models/default ../shared/data/realworld-2class --label-map "
    "with_mask=properly_masked,improperly_masked without_mask=unmasked --json eval.json": evaluate,
    ".venv/bin/maskipy-deploy edge/models/default pi@gate.local": deploy,
}


def test_every_command_is_handled() -> None:
    commands = quick_start_commands()
    assert len(commands) >= 10, commands
    assert commands == list(STEPS), "a README quick-start command changed: say here how to try it"


def test_the_quick_starts_work_on_a_scratch_clone(tmp_path: Path, shared_data: Path, monkeypatch) -> None:
    scratch = tmp_path / "maskipy"
    for command in quick_start_commands():
        step = STEPS.get(command)
        if step is None:
            pytest.fail(f"README command not handled: {command}")
        if scratch.is_dir():
            monkeypatch.chdir(scratch)
        step(scratch, command)
