"""Outputs: LEDs, buzzer, count log, preview; ``build_outputs`` composes them from the config."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from ..config import EdgeConfig
from ..errors import OutputError
from .base import Output

__all__ = ["Output", "build_gpio_outputs", "build_outputs", "close_outputs"]

log = logging.getLogger(__name__)


def build_gpio_outputs(config: EdgeConfig, pin_factory: Any = None) -> list[Output]:
    """The LED and buzzer outputs named by ``[outputs] devices`` (claims their pins)."""
    from .gpio import BuzzerAlert, LedAlert

    out = config.outputs
    built: list[Output] = []
    # gpiozero tries its pin factories in turn and warns for each that fails: collected here, so
    # the user reads one line with what was tried and the fix instead of four raw warnings.
    with warnings.catch_warnings(record=True) as tried:
        warnings.simplefilter("always")
        try:
            if "led" in out.devices:
                built.append(LedAlert(out.ok_led_pin, out.alert_led_pin, alert_classes=out.alert_classes,
                                      hold_seconds=out.hold_seconds, active_high=out.active_high,
                                      pin_factory=pin_factory))
            if "buzzer" in out.devices and out.buzzer_pin is not None:
                built.append(BuzzerAlert(out.buzzer_pin, alert_classes=out.alert_classes,
                                         on_time=out.beep_on_seconds, off_time=out.beep_off_seconds,
                                         beeps=out.beeps, active_high=out.active_high,
                                         pin_factory=pin_factory))
        except Exception as exc:
            from gpiozero import BadPinFactory

            close_outputs(built)
            if not isinstance(exc, BadPinFactory):
                raise
            reasons = "; ".join(_fallback_reasons(tried)) or str(exc)
            raise OutputError(f"{config.path} [outputs] devices = {', '.join(out.devices)}: no GPIO pin "
                              f"factory could load ({reasons}); on a Raspberry Pi: sudo apt install "
                              f"python3-lgpio; off a Pi: GPIOZERO_PIN_FACTORY=mock") from None
    for reason in _fallback_reasons(tried):
        log.info("gpio: %s", reason)
    for other in tried:  # any other warning is not ours to swallow: shown as it would have been
        if not _is_fallback(other):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return built


_FALLBACK = "Falling back from "


def _is_fallback(caught: warnings.WarningMessage) -> bool:
    return str(caught.message).startswith(_FALLBACK)


def _fallback_reasons(caught: list[warnings.WarningMessage]) -> list[str]:
    """``lgpio: No module named 'lgpio'`` for each of gpiozero's "Falling back from ..." warnings."""
    return [str(w.message)[len(_FALLBACK):] for w in caught if _is_fallback(w)]


def build_outputs(config: EdgeConfig, pin_factory: Any = None) -> list[Output]:
    """The outputs of ``[outputs] devices``, ``[mqtt]`` and ``[preview]``, in that order.

    ``pin_factory`` goes to every gpiozero device (None: gpiozero's default, which honours
    ``GPIOZERO_PIN_FACTORY``). The status page (``[http]``) is the runtime's to add, since it reads
    the frame loop (``web.output``). If one output cannot be built, those already built are closed.
    """
    from .annotate import AnnotateOutput
    from .counts import CountLog
    from .null import NullOutput

    built: list[Output] = []
    try:
        built.extend(build_gpio_outputs(config, pin_factory))
        if "log" in config.outputs.devices:
            c = config.counts
            built.append(CountLog(c.state_dir, labels=config.classifier.labels,
                                  flush_seconds=c.flush_seconds, rotate_bytes=c.rotate_bytes,
                                  keep_files=c.keep_files))
        if config.mqtt.enabled:
            from .mqtt import MqttOutput

            built.append(MqttOutput(config.mqtt, state_dir=config.counts.state_dir,
                                    labels=config.classifier.labels,
                                    alert_classes=config.outputs.alert_classes,
                                    hold_seconds=config.outputs.hold_seconds))
        if "null" in config.outputs.devices:
            built.append(NullOutput())
        p = config.preview
        if p.window or p.annotate_dir is not None or p.annotate_video is not None:
            built.append(AnnotateOutput(directory=p.annotate_dir, video=p.annotate_video,
                                        window=p.window, fps=config.camera.fps))
    except Exception as exc:
        close_outputs(built)
        if not _is_gpio_error(exc):
            raise
        raise OutputError(f"{config.path} [outputs] devices = {', '.join(config.outputs.devices)}: "
                          f"cannot claim a GPIO pin ({type(exc).__name__}: {exc}); check the pin "
                          f"numbers, or run off a Pi with GPIOZERO_PIN_FACTORY=mock") from exc
    return built


def _is_gpio_error(exc: BaseException) -> bool:
    try:
        from gpiozero import GPIOZeroError
    except ImportError:
        return False
    return isinstance(exc, GPIOZeroError)


def close_outputs(outputs: list[Output]) -> None:
    """Close every output, in reverse order, even if one fails."""
    for output in reversed(outputs):
        try:
            output.close()
        # One broken output must not leave the others' pins claimed or counts unflushed.
        except Exception as exc:
            log.error("%s: close failed: %s", output.name, exc)
