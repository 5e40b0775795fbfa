"""What a newcomer tries in the first hour after `make run` (issue #25): one photo counts, `check` changes
nothing, the output says what its numbers are, -v works after the subcommand, helpful config and help
texts, and a run that read nothing fails."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskipy.edge.cli import build_parser, main
from maskipy.edge.config import DetectorConfig, load_edge_config
from maskipy.edge.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EDGE = [sys.executable, "-m", "maskipy.edge.cli"]


def _counts(out: str) -> dict[str, int]:
    """The per-class lines of this run's counts, as `run` prints them."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*(\w+): (\d+)$", out, re.MULTILINE)}


def test_a_single_photo_counts_the_people_it_shows(scenes_dir: Path, tmp_path: Path, capsys) -> None:
    photo = scenes_dir / "improper" / "test1.jpg"
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(photo, folder / photo.name)
    assert main(["run", "--source", str(folder), "--state-dir", str(tmp_path / "s1")]) == 0
    as_folder = _counts(capsys.readouterr().out)
    assert sum(as_folder.values()) > 0, as_folder
    assert main(["run", "--source", str(photo), "--state-dir", str(tmp_path / "s2")]) == 0
    assert _counts(capsys.readouterr().out) == as_folder


def test_check_changes_nothing_and_says_what_run_would_create(scenes_dir: Path, tmp_path: Path, capsys,
                                                               mock_factory) -> None:
    state = tmp_path / "var" / "lib" / "maskipy"
    before = sorted(tmp_path.rglob("*"))
    assert main(["check", "--source", str(scenes_dir), "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert sorted(tmp_path.rglob("*")) == before, "check created files or folders"
    assert f"✓ state: {state} does not exist yet; run would create it" in out, out


def test_check_of_an_unwritable_state_parent_fails(scenes_dir: Path, tmp_path: Path, capsys,
                                                   mock_factory) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["check", "--source", str(scenes_dir), "--state-dir", str(blocker / "state")]) == 1
    assert "✗ state: " in capsys.readouterr().out


def test_run_says_which_counts_are_this_run_and_which_are_the_state_totals(scenes_dir: Path, tmp_path: Path,
                                                                          capsys) -> None:
    photo = scenes_dir / "improper" / "test1.jpg"
    state = tmp_path / "state"
    for _ in range(2):
        assert main(["run", "--source", str(photo), "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out.split("frames,")[-1]  # the second run
    assert "counted in this run:" in out, out
    assert f"totals kept in {state / 'totals.json'}" in out, out
    this_run, totals = out.split("totals kept in")
    assert sum(_counts(totals).values()) == 2 * sum(_counts(this_run).values()) > 0, out


def test_timings_have_units_and_are_not_printed_for_a_run_that_never_started(scenes_dir: Path,
                                                                            tmp_path: Path) -> None:
    done = subprocess.run([*EDGE, "run", "--source", str(scenes_dir / "improper"), "--state-dir",
                           str(tmp_path / "s")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if "timings" in x)
    assert "{" not in line, line
    assert re.search(r"timings \(ms per frame\): capture \d+\.\d, detect \d+\.\d", line), line
    done = subprocess.run([*EDGE, "run", "--source", str(tmp_path / "absent.mp4"), "--state-dir",
                           str(tmp_path / "s")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "absent.mp4" in done.stderr
    assert "runtime: timings" not in done.stderr, done.stderr


@pytest.mark.parametrize("argv", [["run", "-v"], ["-v", "run"], ["run", "--verbose"]])
def test_verbose_goes_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--source", "x"])
    assert args.verbose is True and args.source == "x"
    assert build_parser().parse_args(["run"]).verbose is False


def test_a_misspelt_section_gets_a_did_you_mean(tmp_path: Path) -> None:
    ini = tmp_path / "c.ini"
    ini.write_text("[outptus]\ndevices = log\n")
    with pytest.raises(ConfigError, match=r"\[outptus\]: unknown section; did you mean \[outputs\]\?"):
        load_edge_config(ini)


def test_check_with_the_default_config_says_the_camera_problem_once(tmp_path: Path, capsys,
                                                                   monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # not importable, as off a Pi
    main(["check", "--state-dir", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert out.count("picamera2 is not importable") == 1, out
    assert "✗ pipeline: not run: needs a working source (see above)" in out, out


def test_help_texts_show_no_double_backticks() -> None:
    parser = build_parser()
    texts = [parser.format_help()]
    sub = next(a for a in parser._actions if a.dest == "command")
    texts += [p.format_help() for p in sub.choices.values() if p.add_help]
    for text in texts:
        assert "``" not in text, text


def test_a_folder_in_which_no_image_decodes_is_a_failure(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"not an image")
    assert main(["run", "--source", str(folder), "--state-dir", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "maskipy-edge: error: " in err and "no frame" in err, err


def test_the_makefile_run_comment_names_the_default_detector() -> None:
    lines = (REPO / "Makefile").read_text().splitlines()
    comment = next(line for line in lines if line.startswith("## run:"))
    assert DetectorConfig().type.lower() in comment.lower() and "haar" not in comment.lower(), comment
