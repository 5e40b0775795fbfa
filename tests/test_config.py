"""Config errors name the file, section, key, value and fix; the shipped samples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskipy.edge.config import EDGE_SCHEMA, describe, load_edge_config
from maskipy.edge.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("[camera]\nfps = 0\n", r"config.ini \[camera\] fps = 0: out of range; use 1-120"),
    ("[camera]\nfsp = 10\n", r"\[camera\] fsp = 10: unknown key; did you mean 'fps'\?"),
    ("[camra]\nfps = 10\n", r"\[camra\]: unknown section; did you mean \[camera\]\?"),
    ("[zzz]\nfps = 10\n", r"\[zzz\]: unknown section; known sections: "),
    ("[camera]\nloop = maybe\n", r"\[camera\] loop = maybe: not valid; use yes or no"),
    ("[detector]\ntype = dnn\n",
     r"\[detector\] type = dnn: unknown value 'dnn'; use one of yunet, ssd, haar"),
    ("[outputs]\ndevices = led, siren\n", r"devices = led, siren: unknown value 'siren'"),
    ("[outputs]\nalert_classes = hat\n",
     r"\[outputs\] alert_classes = hat: hat not in \[classifier\] labels"),
    ("[tracking]\nmin_votes = 9\nvote_frames = 5\n", r"min_votes = 9: more than vote_frames = 5"),
    ("[outputs]\ndevices = led, buzzer\nbuzzer_pin = 17\n",
     r"\[outputs\] buzzer_pin = 17: already used by ok_led_pin; give each device its own BCM pin"),
    ("fps = 1\n", r"not a valid INI file"),
    ("[http]\nenabled = yes   # off by default\n",
     r"enabled = yes   # off by default: not valid; use yes or no \(values are taken literally: "
     r"put a comment on a line of its own\)"),
])
def test_config_errors_name_the_place_the_value_and_the_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_edge_config(path)
    assert str(path) in str(caught.value)


def test_values_are_taken_literally_with_no_inline_comments(tmp_path):
    """A gate called "Front Door #2" or a password with " ;" in it is not cut at the mark."""
    config = load_edge_config(write(tmp_path, "[mqtt]\ngate = Front Door #2\npassword = a ;b #c\n"
                                    "# a comment line\n; another\n"))
    assert config.mqtt.gate == "Front Door #2"
    assert config.mqtt.password == "a ;b #c"


def test_missing_config_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match=r"maskipy-edge example-config > config\.ini"):
        load_edge_config(tmp_path / "absent.ini")


def test_values_are_typed(tmp_path):
    config = load_edge_config(write(tmp_path, "[camera]\nsource = /dev/video1\nloop = yes\n"
                                    "[outputs]\nok_led_pin =\n[preview]\nannotate_dir = ~/frames\n"))
    assert config.camera.source == "/dev/video1" and config.camera.loop is True
    assert config.outputs.ok_led_pin is None
    assert config.preview.annotate_dir == Path("~/frames").expanduser()


def test_the_pi_config_loads_and_drives_the_gpio():
    config = load_edge_config(REPO / "config.ini")
    assert "led" in config.outputs.devices and config.camera.source == "picamera2"


def test_the_shipped_example_is_the_generated_one():
    from maskipy.edge.config import example_config

    shipped = (REPO / "edge" / "config.example.ini").read_text(encoding="utf-8")
    assert shipped == example_config(), "regenerate: maskipy-edge example-config > edge/config.example.ini"
    example, defaults = load_edge_config(REPO / "edge" / "config.example.ini"), load_edge_config(None)
    for section in EDGE_SCHEMA:
        assert getattr(example, section) == getattr(defaults, section), section


def test_example_config_round_trips(tmp_path):
    config = load_edge_config(write(tmp_path, describe(EDGE_SCHEMA)))
    assert config.replace("camera", fps=5).camera.fps == 5


def test_the_thorough_detector_profile_loads_and_builds():
    from maskipy.edge.detectors import build_detector

    config = load_edge_config(REPO / "edge" / "thorough-detector.ini")
    assert config.detector.closeup_cascades and "lefteye_2splits" in config.detector.eye_cascades
    assert config.detector.every_n_frames == load_edge_config(None).detector.every_n_frames
    build_detector(config.detector)
