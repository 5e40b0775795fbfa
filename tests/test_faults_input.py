"""An operator's worst week, bad input: clean errors, all at once (config, images, eval, check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.parametrize("line", ["[detector]\nscale_factor = nan", "[camera]\nstall_seconds = nan",
                                  "[tracking]\niou_threshold = nan", "[camera]\nstall_seconds = inf",
                                  "[counts]\nflush_seconds = -inf"])
def test_nan_and_inf_are_refused_by_every_float_setting(tmp_path, line):
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.errors import ConfigError

    path = tmp_path / "config.ini"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match="a finite number"):
        load_edge_config(path)


def test_every_config_error_is_reported_at_once(tmp_path, capsys):
    from maskipy.edge.cli import main

    path = tmp_path / "config.ini"
    path.write_text("[DEFAULT]\nfps = 5\n[camera]\nsource =\nfps = many\n[tracking]\niou_threshold = nan\n"
                    "[nonsense]\nx = 1\n")
    assert main(["run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskipy-edge: error: ") and "Traceback" not in err
    for problem in ("[DEFAULT]: not supported", "source = : empty", "fps = many: not valid",
                    "iou_threshold = nan", "[nonsense]: unknown section"):
        assert problem in err, problem


def test_an_empty_source_is_refused_not_read_as_the_current_directory():
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.errors import CameraError
    from maskipy.edge.sources import open_source

    with pytest.raises(CameraError, match="source is empty"):
        open_source("  ", load_edge_config())


def write_png_bomb(path: Path, side: int = 20000) -> Path:
    """A real, valid PNG of side x side black pixels that compresses to about a megabyte."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side)  # filter byte + grey pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_a_huge_image_in_the_folder_source_is_skipped_before_decoding(tmp_path, scenes_dir, caplog):
    import resource
    import shutil

    from maskipy.edge.sources.folder import FolderSource
    from maskipy.edge.sources.imagecheck import image_dimensions

    folder = tmp_path / "photos"
    folder.mkdir()
    bomb = write_png_bomb(folder / "a-bomb.png")
    assert image_dimensions(bomb) == (20000, 20000) and bomb.stat().st_size < 2_000_000
    first = sorted(scenes_dir.rglob("*.jpg"))[0]
    shutil.copy(first, folder / "b-photo.jpg")
    assert image_dimensions(folder / "b-photo.jpg")[::-1] == __import__("cv2").imread(str(first)).shape[:2]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    source = FolderSource(folder)
    frame = source.read()
    assert frame is not None and source.current.name == "b-photo.jpg"
    assert "too large to decode safely" in caplog.text
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no 400 MB decode


def test_eval_skips_tiny_unreadable_and_huge_images_with_a_count(tmp_path, default_bundle, scenes_dir, capsys,
                                                               caplog):
    import shutil

    import cv2
    import numpy as np

    from maskipy.trainer.evaluate import main

    data = tmp_path / "set" / "unmasked"
    data.mkdir(parents=True)
    for path in sorted(scenes_dir.rglob("*.jpg"))[:2]:
        shutil.copy(path, data / path.name)
    cv2.imwrite(str(data / "tiny.png"), np.zeros((2, 38, 3), np.uint8))
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    write_png_bomb(data / "bomb.png")
    out = tmp_path / "eval.json"
    assert main([str(default_bundle), str(tmp_path / "set"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 2 and len(result["skipped"]) == 3
    assert "skipped 3 of 5 images" in caplog.text


def test_eval_malformed_voc_xml_and_unwritable_json_are_clean_errors(tmp_path, default_bundle, scenes_dir,
                                                                    capsys):
    import shutil

    from maskipy.trainer.evaluate import main

    data = tmp_path / "set" / "unmasked"
    data.mkdir(parents=True)
    photo = sorted(scenes_dir.rglob("*.jpg"))[0]
    shutil.copy(photo, data / "a.jpg")
    (tmp_path / "dir.json").mkdir()
    assert main([str(default_bundle), str(tmp_path / "set"), "--json", str(tmp_path / "dir.json")]) == 1
    assert capsys.readouterr().err.startswith("maskipy-eval: error: ")
    (data / "a.xml").write_text("<annotation><object><bndbox><xmin>oops")
    assert main([str(default_bundle), str(tmp_path / "set"), "--detect"]) == 1
    err = capsys.readouterr().err
    assert "a.xml: not a valid VOC annotation" in err and "Traceback" not in err


def test_check_runs_the_detector_and_classifier_and_catches_a_malformed_cascade(tmp_path, scenes_dir,
                                                                                default_bundle, capsys):
    from maskipy.edge.cli import main

    common = ["--source", str(scenes_dir), "--model", str(default_bundle), "--state-dir", str(tmp_path / "s")]
    assert main(["check", *common]) == 0
    assert "✓ pipeline: detector and classifier ran on a" in capsys.readouterr().out
    cascade = tmp_path / "broken.xml"
    cascade.write_text('<?xml version="1.0"?>\n<opencv_storage><cascade>garbage')
    config = tmp_path / "config.ini"
    config.write_text(f"[detector]\ntype = haar\ncascades = {cascade}\n")
    assert main(["check", "--config", str(config), *common]) == 1
    assert "✗ pipeline: [detector] cascades" in capsys.readouterr().out
    assert main(["run", "--config", str(config), *common]) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskipy-edge: error: [detector] cascades") and "Traceback" not in err
