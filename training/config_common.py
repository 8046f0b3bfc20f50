"""Experiment configs of the MTPano and SAP trainers: a YAML file may name a ``base`` file (relative to itself) whose
values it overrides section by section; ``section.key=value`` overrides (values parsed as YAML) come last. The values
fill a tree of dataclasses; an unknown key is an error."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if nested else value
    return merged


def _read(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) or {}
    base = data.pop("base", None)
    return _merge(_read((path.parent / base).resolve()), data) if base else data


def _build(cls, values: dict):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name) if name in known else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {})
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _parse_override(text: str) -> dict:
    """``section.key=value`` -> nested dict (value parsed as YAML)."""
    path, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"override must look like section.key=value; got {text!r}")
    node: dict[str, Any] = yaml.safe_load(value) if value else None
    for part in reversed(path.split(".")):
        node = {part: node}
    return node


def load_experiment(cls: type[T], path: Path | str | None, overrides: list[str]) -> T:
    """The ``cls`` dataclass of ``path`` (YAML; None: defaults) with ``overrides`` applied (not validated)."""
    values = _read(Path(path)) if path else {}
    for text in overrides:
        values = _merge(values, _parse_override(text))
    return _build(cls, values)
