"""Reading the edge config: parse the INI file into the sections, then the rules across sections."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ..errors import ConfigError
from .schema import describe, parse_sections, read_ini
from .sections import EDGE_SCHEMA, EdgeConfig, HttpConfig, MqttConfig

# Sections that other maskipy tools own; the edge leaves them to those tools.
FOREIGN_SECTIONS = ("train", "convert", "deploy")


def verify_config(config: EdgeConfig) -> None:
    """Cross-section rules, Frigate style: each failure names both keys and the fix."""
    where = config.path or "config"
    unknown = set(config.outputs.alert_classes) - set(config.classifier.labels)
    if unknown:
        raise ConfigError(f"{where} [outputs] alert_classes = {', '.join(config.outputs.alert_classes)}: "
                          f"{', '.join(sorted(unknown))} not in [classifier] labels; "
                          f"use some of {', '.join(config.classifier.labels)}")
    if config.tracking.min_votes > config.tracking.vote_frames:
        raise ConfigError(f"{where} [tracking] min_votes = {config.tracking.min_votes}: more than "
                          f"vote_frames = {config.tracking.vote_frames}; make it at most vote_frames")
    outputs = config.outputs
    pins = {name: getattr(outputs, f"{name}_pin") for name in ("ok_led", "alert_led", "buzzer")}
    used = {"ok_led": "led" in outputs.devices, "alert_led": "led" in outputs.devices,
            "buzzer": "buzzer" in outputs.devices}
    seen: dict[int, str] = {}
    for name, pin in pins.items():
        if not used[name] or pin is None:
            continue
        if pin in seen:
            raise ConfigError(f"{where} [outputs] {name}_pin = {pin}: already used by "
                              f"{seen[pin]}_pin; give each device its own BCM pin")
        seen[pin] = name
    verify_http(config.http, where)
    verify_mqtt(config.mqtt, where)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


def verify_http(http: HttpConfig, where: str) -> None:
    """The page shows who passed the gate: on a network address it must ask for a password."""
    if http.enabled and not http.password and not is_loopback(http.bind):
        raise ConfigError(f"{where} [http] bind = {http.bind}: reachable from the network but [http] "
                          f"password is empty; set password = SOME-SECRET, or bind = 127.0.0.1")


def verify_mqtt(mqtt: MqttConfig, where: str) -> None:
    """TLS files exist and pair up, topics have no wildcards (before the gate starts, not at connect)."""
    if not mqtt.enabled:
        return
    if not mqtt.host.strip():
        raise ConfigError(f"{where} [mqtt] host is empty; name the broker, e.g. host = localhost")
    for key in ("topic_prefix", "discovery_prefix", "gate"):
        value = getattr(mqtt, key)
        if any(c in value for c in "#+") or value.startswith("/") or value.endswith("/"):
            raise ConfigError(f"{where} [mqtt] {key} = {value}: not a topic level; drop #, + and "
                              f"leading or trailing /")
    if (mqtt.cert_file is None) != (mqtt.key_file is None):
        raise ConfigError(f"{where} [mqtt] cert_file and key_file: give both or neither")
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(mqtt, key)
        if path is not None and not mqtt.tls:
            raise ConfigError(f"{where} [mqtt] {key} = {path}: set tls = yes to use it")
        if path is not None and not path.is_file():
            raise ConfigError(f"{where} [mqtt] {key} = {path}: no such file; fix the path")


def exposed_secrets(config: EdgeConfig) -> str | None:
    """A warning when the config file holds a password that every local user can read, else None.

    install.sh used to install the config 0644 and sudoedit keeps a file's mode, so the MQTT or page
    password sat in a world-readable file without anyone being told.
    """
    held = [f"[{name}] password" for name in ("mqtt", "http") if getattr(config, name).password]
    if not held or config.path in (None, "defaults"):
        return None
    try:
        mode = Path(config.path).stat().st_mode & 0o777
    except OSError:
        return None
    if not mode & 0o004:
        return None
    return (f"{config.path} holds the {' and '.join(held)} and every user on this machine can read it "
            f"(mode {mode:04o}); sudo chmod 0640 {config.path} && sudo chown root:maskipy {config.path}")


def load_edge_config(path: str | Path | None = None) -> EdgeConfig:
    """Read and validate the edge config (None: built-in defaults)."""
    parser = read_ini(path)
    shown = str(path) if path is not None else "defaults"
    sections = parse_sections(parser, EDGE_SCHEMA, shown, foreign=FOREIGN_SECTIONS)
    config = EdgeConfig(**sections, path=shown)
    verify_config(config)
    return config


EXAMPLE_HEADER = """\
# maskipy-edge configuration: every key with its default (maskipy-edge example-config prints this).
# Every key is optional: a missing key keeps the default shown. Unknown keys are errors.
# Values are taken literally: a comment (# or ;) goes on a line of its own, never after a value.
# Check a config with: maskipy-edge check --config config.ini

"""


def example_config() -> str:
    """The example config.ini: every section and key with its default and help."""
    return EXAMPLE_HEADER + describe(EDGE_SCHEMA)
