"""GPIO outputs on gpiozero's MockFactory, the null output, the annotator and build_outputs."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pytest

from maskipy.edge.config import load_edge_config
from maskipy.edge.errors import OutputError
from maskipy.edge.outputs import build_outputs, close_outputs
from maskipy.edge.outputs.annotate import AnnotateOutput, draw_tracks
from maskipy.edge.outputs.counts import CountLog
from maskipy.edge.outputs.gpio import BuzzerAlert, LedAlert
from maskipy.edge.outputs.null import NullOutput
from maskipy.edge.tracking import CountEvent, Track

FRAME = np.zeros((240, 320, 3), np.uint8)
ALERTS = ("improperly_masked", "unmasked")


def track(label, box=(40, 40, 60, 60), track_id=1) -> Track:
    return Track(track_id, box, 0.0, 0.0, deque(), label=label, confidence=0.8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_leds_follow_the_people_at_the_gate_and_hold(mock_factory):
    clock = Clock()
    leds = LedAlert(17, 27, alert_classes=ALERTS, hold_seconds=2.0, pin_factory=mock_factory, clock=clock)
    ok, alert = mock_factory.pin(17), mock_factory.pin(27)
    assert not ok.state and not alert.state
    leds.on_frame([track("properly_masked")], FRAME)
    assert ok.state and not alert.state
    clock.now = 1.0
    leds.on_frame([track("unmasked", track_id=2)], FRAME)
    assert ok.state and alert.state  # green still held, red for the unmasked person
    clock.now = 3.5
    leds.on_frame([track(None)], FRAME)  # an undecided face lights nothing
    assert not ok.state and not alert.state
    leds.close()
    assert [s.state for s in ok.states] == [False, True, False]


def test_active_low_leds_invert_the_pin(mock_factory):
    leds = LedAlert(17, None, alert_classes=ALERTS, active_high=False, pin_factory=mock_factory)
    assert mock_factory.pin(17).state  # off is high when wired to 3V3
    leds.on_frame([track("properly_masked")], FRAME)
    assert not mock_factory.pin(17).state
    leds.close()


def test_buzzer_beeps_the_configured_pattern_for_alert_classes_only(mock_factory):
    buzzer = BuzzerAlert(22, alert_classes=ALERTS, on_time=0.01, off_time=0.01, beeps=3,
                         pin_factory=mock_factory)
    pin = mock_factory.pin(22)
    buzzer.on_count(CountEvent(0.0, 1, "properly_masked", 0.9, (0, 0, 10, 10)))
    time.sleep(0.05)
    assert not any(s.state for s in pin.states)
    buzzer.on_count(CountEvent(0.0, 2, "unmasked", 0.9, (0, 0, 10, 10)))
    deadline = time.monotonic() + 5.0
    while len(pin.states) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [s.state for s in pin.states] == [False, True, False, True, False, True, False]
    buzzer.close()


def test_pin_in_use_is_an_output_error_naming_the_fix(mock_factory, tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[outputs]\ndevices = led, buzzer\n[counts]\nstate_dir = " + str(tmp_path) + "\n")
    config = load_edge_config(path)
    from gpiozero import LED

    squatter = LED(22, pin_factory=mock_factory)
    with pytest.raises(OutputError, match=r"\[outputs\] devices = led, buzzer: cannot claim a GPIO pin"):
        build_outputs(config, pin_factory=mock_factory)
    squatter.close()
    LED(17, pin_factory=mock_factory).close()  # the LEDs built before the failure were released


def test_gpio_warnings_other_than_factory_fallbacks_still_reach_the_user(mock_factory, tmp_path, monkeypatch):
    """Building the LEDs collects gpiozero's pin-factory fallbacks into one line; any other warning
    raised on the way is shown as it would have been, not swallowed with them."""
    import warnings

    from maskipy.edge.outputs import gpio

    real = gpio.LedAlert

    def warning_led(*args, **kwargs):
        warnings.warn("Falling back from lgpio: No module named 'lgpio'", stacklevel=1)
        warnings.warn("PWM falls back to software on this pin", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gpio, "LedAlert", warning_led)
    path = tmp_path / "c.ini"
    path.write_text("[outputs]\ndevices = led\n[counts]\nstate_dir = " + str(tmp_path) + "\n")
    with pytest.warns(RuntimeWarning, match="PWM falls back") as shown:
        close_outputs(build_outputs(load_edge_config(path), pin_factory=mock_factory))
    assert not [w for w in shown if "Falling back from" in str(w.message)]


def test_build_outputs_composes_the_configured_list(mock_factory, tmp_path):
    path = tmp_path / "c.ini"
    path.write_text(f"[outputs]\ndevices = led, buzzer, log, null\n[counts]\nstate_dir = {tmp_path}\n"
                    f"[preview]\nannotate_dir = {tmp_path / 'frames'}\n")
    outputs = build_outputs(load_edge_config(path), pin_factory=mock_factory)
    try:
        assert [type(o) for o in outputs] == [LedAlert, BuzzerAlert, CountLog, NullOutput, AnnotateOutput]
    finally:
        close_outputs(outputs)


def test_null_output_accepts_everything():
    with NullOutput() as null:
        null.on_frame([track("unmasked")], FRAME)
        null.on_count(CountEvent(0.0, 1, "unmasked", 0.9, (0, 0, 1, 1)))


def test_annotator_draws_coloured_boxes_to_a_folder_and_a_video(tmp_path, monkeypatch):
    import cv2

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    drawn = draw_tracks(FRAME, [track("unmasked"), track(None, box=(150, 50, 50, 50), track_id=2)])
    assert drawn[40, 70].tolist() == [40, 40, 220]  # top edge of the unmasked box is red (BGR)
    assert drawn[50, 170].tolist() == [160, 160, 160]  # the undecided one is grey
    assert not FRAME.any()  # the frame itself is untouched
    out = AnnotateOutput(directory=tmp_path / "frames", video=tmp_path / "out.avi", window=True, fps=5)
    for _ in range(3):
        out.on_frame([track("properly_masked")], FRAME)
    out.close()
    assert len(list((tmp_path / "frames").glob("*.jpg"))) == 3
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
