"""GPIO outputs on gpiozero: a green/red LED pair and a buzzer that beeps per alerted person."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..tracking import CountEvent, Track
from .alert import AlertHold
from .base import Output


class LedAlert(Output):
    """Green LED while a properly masked person is at the gate, red while an alert class is.

    Each LED stays lit ``hold_seconds`` after its last person was seen, so it does not flicker
    between frames. Wire each LED from its BCM pin through a ~330 Ω resistor to ground (or use
    ``active_high=False`` for LEDs wired to 3V3)::

        leds = LedAlert(17, 27, alert_classes=("unmasked",), pin_factory=MockFactory())
    """

    name = "led"

    def __init__(self, ok_pin: int | None, alert_pin: int | None, *, alert_classes: Iterable[str],
                 ok_classes: Iterable[str] = ("properly_masked",), hold_seconds: float = 2.0,
                 active_high: bool = True, pin_factory: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from gpiozero import LED

        self.holds = {"ok": AlertHold(ok_classes, hold_seconds),
                      "alert": AlertHold(alert_classes, hold_seconds)}
        self._clock = clock
        self.leds: dict[str, Any] = {}
        try:
            for role, pin in (("ok", ok_pin), ("alert", alert_pin)):
                if pin is not None:
                    self.leds[role] = LED(pin, active_high=active_high, initial_value=False,
                                          pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        now = self._clock()
        lit = {role: hold.update(tracks, now) for role, hold in self.holds.items()}
        for role, led in self.leds.items():
            if lit[role]:
                led.on()
            else:
                led.off()

    def close(self) -> None:
        for led in self.leds.values():
            led.close()
        self.leds.clear()


class BuzzerAlert(Output):
    """Beeps ``beeps`` times for each person counted in an alert class.

    gpiozero's own background ``beep`` does the timing. Wire an active buzzer from its BCM pin to
    ground (through a transistor if it draws more than a few mA)::

        buzzer = BuzzerAlert(22, alert_classes=("unmasked",), pin_factory=MockFactory())
    """

    name = "buzzer"

    def __init__(self, pin: int, *, alert_classes: Iterable[str], on_time: float = 0.15,
                 off_time: float = 0.1, beeps: int = 3, active_high: bool = True,
                 pin_factory: Any = None) -> None:
        from gpiozero import Buzzer

        self.alert_classes = frozenset(alert_classes)
        self.on_time, self.off_time, self.beeps = on_time, off_time, beeps
        self.buzzer = Buzzer(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)

    def on_count(self, event: CountEvent) -> None:
        if event.label in self.alert_classes:
            self.buzzer.beep(self.on_time, self.off_time, n=self.beeps, background=True)

    def close(self) -> None:
        self.buzzer.close()
