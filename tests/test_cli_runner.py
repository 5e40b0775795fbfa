"""Every maskipy-* command has one error policy (edge/cli_runner.py): usage errors exit 2 with argparse's
usage line, user errors print `maskipy-X: error: ...` and exit 1 (DEBUG=1 adds the traceback), Ctrl-C
exits 130, and --version names the installed package's version."""

from __future__ import annotations

import argparse
import configparser
import importlib
from importlib.metadata import version
from pathlib import Path

import pytest

from maskipy.edge.cli_runner import INTERRUPTED, run_command
from maskipy.edge.errors import ConfigError

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def console_scripts() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=")) for line in lines)


def entry_point(name: str):
    module, function = console_scripts()[name].split(":")
    return getattr(importlib.import_module(module), function)


def user_error_argv(name: str, tmp_path: Path) -> list[str]:
    """A command line with a mistake the user must fix (a file that is not there)."""
    absent = str(tmp_path / "absent")
    return {"maskipy-edge": ["run", "--config", f"{absent}.ini"],
            "maskipy-train": ["--config", f"{absent}.ini"],
            "maskipy-convert": ["--config", f"{absent}.ini"],
            "maskipy-deploy": [absent, "pi@gate"],
            "maskipy-eval": [absent, str(tmp_path)]}[name]


COMMANDS = sorted(console_scripts())


def test_every_command_is_covered() -> None:
    assert COMMANDS == ["maskipy-convert", "maskipy-deploy", "maskipy-edge", "maskipy-eval", "maskipy-train"]


@pytest.mark.parametrize("name", COMMANDS)
def test_version(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        entry_point(name)(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"{name} {version('maskipy')}"


@pytest.mark.parametrize("name", COMMANDS)
def test_usage_error_exits_2_with_the_usage(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        entry_point(name)(["--no-such-option"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and f"{name}: error: " in err and "Traceback" not in err


@pytest.mark.parametrize("name", COMMANDS)
def test_user_error_is_one_line_and_exit_1(name: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DEBUG", raising=False)
    assert entry_point(name)(user_error_argv(name, tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"{name}: error: " in err and str(tmp_path / "absent") in err and "Traceback" not in err, err
    monkeypatch.setenv("DEBUG", "1")
    assert entry_point(name)(user_error_argv(name, tmp_path)) == 1
    assert "Traceback" in capsys.readouterr().err


def test_interrupt_and_bugs(capsys) -> None:
    parser = argparse.ArgumentParser(prog="maskipy-x")

    def interrupted(args):
        raise KeyboardInterrupt

    assert run_command("maskipy-x", parser, interrupted, []) == INTERRUPTED
    assert capsys.readouterr().err == "maskipy-x: interrupted\n"

    def user_mistake(args):
        raise ConfigError("x.ini [a] b = 0: out of range; use 1..9")

    assert run_command("maskipy-x", parser, user_mistake, []) == 1
    assert capsys.readouterr().err == "maskipy-x: error: x.ini [a] b = 0: out of range; use 1..9\n"

    def bug(args):
        raise ZeroDivisionError("a bug keeps its traceback")

    with pytest.raises(ZeroDivisionError):
        run_command("maskipy-x", parser, bug, [])


def test_print_error_carries_the_journal_priority(capsys, monkeypatch) -> None:
    """A failure that is no exception (a reload that did not happen) is reported the same way."""
    from maskipy.edge import cli_runner

    assert cli_runner.print_error("maskipy-x", "installed v2, but no reload") == 1
    assert capsys.readouterr().err == "maskipy-x: error: installed v2, but no reload\n"
    monkeypatch.setattr(cli_runner, "stderr_is_journal", lambda: True)
    assert cli_runner.print_error("maskipy-x", "installed v2, but no reload") == 1
    assert capsys.readouterr().err == "<3>maskipy-x: error: installed v2, but no reload\n"


# The converters' module scripts (python -m maskipy.converters.X): not console scripts, the same policy.
# name its errors carry: (module, name --version prints, argv with a mistake to fix, function to interrupt)
MODULE_SCRIPTS = {
    "probes": ("maskipy.converters.probes", "python -m maskipy.converters.probes",
               lambda absent: [absent], "add_probes"),
    "detector_models": ("maskipy.converters.detector_models", "detector_models",
                        lambda absent: ["--wheel", absent], "import_model"),
}


@pytest.mark.parametrize("name", sorted(MODULE_SCRIPTS))
def test_module_scripts_follow_the_policy(name: str, tmp_path: Path, capsys, monkeypatch) -> None:
    module_name, prog, bad_argv, work = MODULE_SCRIPTS[name]
    module = importlib.import_module(module_name)
    with pytest.raises(SystemExit) as done:
        module.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {version('maskipy')}"

    monkeypatch.delenv("DEBUG", raising=False)
    absent = str(tmp_path / "absent")
    assert module.main(bad_argv(absent)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{name}: error: ") and absent in err and "Traceback" not in err, err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, work, interrupted)
    assert module.main(bad_argv(absent)) == INTERRUPTED
    assert capsys.readouterr().err == f"{name}: interrupted\n"
