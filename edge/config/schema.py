"""A small INI-to-dataclass schema engine: typed, bounded, unknown keys rejected, never eval'd."""

from __future__ import annotations

import configparser
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def setting(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            choices: Iterable[str] | None = None) -> Any:
    """Declare one config key: its default, a one-line help, and optional bounds or choices."""
    meta = {"help": help, "low": low, "high": high,
            "choices": tuple(choices) if choices is not None else None}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for list defaults")
    return dataclasses.field(default=default, metadata=meta)


def _where(path: str, section: str, key: str, raw: str) -> str:
    return f"{path} [{section}] {key} = {raw}"


def _comment_hint(raw: str) -> str:
    """The fix for a value that looks like it carries an inline comment (values are literal)."""
    return (" (values are taken literally: put a comment on a line of its own)"
            if " #" in raw or " ;" in raw or "\t#" in raw or "\t;" in raw else "")


def _convert(kind: Any, raw: str, where: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw.strip().lower() in ("", "none"):
            return None
        return _convert(options[0], raw, where, meta)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        parts = [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
        return tuple(_convert(item, p, where, meta) for p in parts)
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind is int:
            return int(text, 0)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):  # nan passes every range check and inf breaks timing
                raise ValueError
            return value
    except ValueError:
        expected = {bool: "yes or no", int: "a whole number, e.g. 5", float: "a finite number, e.g. 0.5"}
        raise ConfigError(f"{where}: not valid; use {expected[kind]}{_comment_hint(text)}") from None
    if kind is Path:
        return Path(text).expanduser()
    return text


def _check(value: Any, where: str, meta: Mapping[str, Any]) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if item is None:
            continue
        low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
        if choices is not None and item not in choices:
            raise ConfigError(f"{where}: unknown value {item!r}; use one of {', '.join(choices)}"
                              f"{_comment_hint(str(item))}")
        is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
        if is_number and ((low is not None and item < low) or (high is not None and item > high)):
            raise ConfigError(f"{where}: out of range; use {_fmt(low)}-{_fmt(high)}")


def _fmt(bound: float | None) -> str:
    if bound is None:
        return "any"
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def build_section(cls: type, values: Mapping[str, str], path: str, section: str) -> Any:
    """Build dataclass ``cls`` from raw strings, rejecting unknown keys with a close-match hint."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    errors: list[str] = []
    for key, raw in values.items():
        where = _where(path, section, key, raw)
        try:
            if key not in fields:
                import difflib

                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(fields)}"
                raise ConfigError(f"{where}: unknown key; {hint}")
            value = _convert(hints[key], raw, where, fields[key].metadata)
            _check(value, where, fields[key].metadata)
            if value == "" and hints[key] is str and fields[key].default != "":
                raise ConfigError(f"{where}: empty; give a value or remove the line to keep the default "
                                  f"({fields[key].default})")
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        kwargs[key] = value
    if errors:
        raise ConfigError("\n".join(errors))
    return cls(**kwargs)


def read_ini(path: str | Path | None) -> configparser.ConfigParser:
    """Parse an INI file (or nothing, for all defaults) with no interpolation and case-kept keys."""
    # No default section: configparser would copy [DEFAULT] keys into every section, and a lone
    # [DEFAULT] would be silently ignored; as a plain section it is reported like any other.
    # Values are literal: no inline comments, so "gate = Front Door #2" and a password with " #" in
    # it are kept whole (a whole-line comment starts with # or ;). A typed value that fails to parse
    # because of a trailing comment says so (_comment_hint).
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no-default-section")
    if path is None:
        return parser
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config PATH "
                          f"(an example: maskipy-edge example-config > config.ini)")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not a valid INI file ({first}); "
                          f"write it as [section] lines and key = value lines") from None
    return parser


def _close_hint(name: str, known: Iterable[str]) -> str:
    """``did you mean [x]?`` for a misspelt section, else the list of known sections."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"did you mean [{close[0]}]?" if close else f"known sections: {', '.join(sorted(known))}"


def parse_sections(parser: configparser.ConfigParser, schema: Mapping[str, type], path: str,
                   foreign: Iterable[str] = ()) -> dict[str, Any]:
    """Validate every section of ``parser`` against ``schema``.

    Sections named in ``foreign`` belong to another maskipy tool (trainer, converters) and are
    left to it; any other unknown section is an error, so a typo never silently becomes a default.
    """
    foreign = set(foreign)
    known = ", ".join(sorted(set(schema) | foreign))
    errors: list[str] = []
    for name in parser.sections():
        if name == "DEFAULT":  # a normal section here (see read_ini), so it cannot go unnoticed
            errors.append(f"{path} [DEFAULT]: not supported; put each key under its own section "
                          f"(known sections: {known})")
        elif name not in schema and name not in foreign:
            errors.append(f"{path} [{name}]: unknown section; {_close_hint(name, set(schema) | foreign)}")
    out: dict[str, Any] = {}
    for name, cls in schema.items():
        values = dict(parser.items(name)) if parser.has_section(name) else {}
        try:
            out[name] = build_section(cls, values, path, name)
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        # Every mistake at once: an operator on a Pi fixes them in one edit, not one per restart.
        raise ConfigError("\n".join(errors))
    return out


def describe(schema: Mapping[str, type]) -> str:
    """An example INI listing every section and key with its default and help, for `example-config`."""
    lines: list[str] = []
    for name, cls in schema.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"[{name}]")
        if doc:
            lines.append(f"# {doc}")
        for f in dataclasses.fields(cls):
            default = f.default
            if isinstance(default, tuple):
                text = ", ".join(str(v) for v in default)
            elif isinstance(default, bool):
                text = "yes" if default else "no"
            elif default is None:
                text = ""
            else:
                text = str(default)
            lines.append(f"# {f.metadata.get('help', '')}")
            lines.append(f"{f.name} = {text}".rstrip())
        lines.append("")
    return "\n".join(lines)
