"""Command-line tokens to a typed configuration.

The grammar is the original's: `key.sub=value` sets a leaf, `group=name`
picks a preset (`network=a21`, `mode=train`, `framework=torch`,
`data=synthetic`), and `--framework NAME` is accepted as well. OmegaConf
structured configs check every key, type and enumeration; its exceptions
are turned into one line naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import enum
import typing
from typing import List, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from benchmark.config import schema
from benchmark.config.presets import DATA_PRESETS, NETWORK_PRESETS
from benchmark.errors import ConfigError
from benchmark.rules import get_benchmark

GROUPS = ("benchmark", "data", "framework", "mode", "network")


def split_tokens(tokens: Sequence[str]) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """Separate group selections from dotted overrides, in command-line order."""
    groups: List[Tuple[str, str]] = []
    overrides: List[Tuple[str, str]] = []
    tokens = list(tokens)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--framework"):
            if "=" in token:
                value = token.split("=", 1)[1]
            elif i + 1 < len(tokens):
                i += 1
                value = tokens[i]
            else:
                raise ConfigError("--framework needs a value: torch or tensorflow")
            groups.append(("framework", value))
        elif token.startswith("-"):
            raise ConfigError(f"unknown option '{token}' (options: --help, --framework NAME; settings are key=value)")
        elif "=" not in token:
            raise ConfigError(f"'{token}' is not a setting: write key=value, e.g. mode=train or run.id=test")
        else:
            key, value = token.split("=", 1)
            key = key.strip()
            if not key:
                raise ConfigError(f"'{token}' has no key before '='")
            (groups if key in GROUPS else overrides).append((key, value))
        i += 1
    chosen: dict = {}
    for group, name in groups:
        # presets merge, so a second choice would silently keep the first one's keys
        if chosen.setdefault(group, name) != name:
            raise ConfigError(f"{group} is chosen twice ({chosen[group]}, then {name}): give one {group}=NAME")
    return groups, overrides


def _field_type(key: str):
    """The schema type of a dotted key, or None for keys of a free mapping."""
    node: object = schema.Config
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        hints = typing.get_type_hints(node)
        if part not in hints:
            return None
        node = hints[part]
    return node


def _normalise(key: str, value: str) -> str:
    """Accept an enumeration's value as well as its member name (`conv_mode=2D`)."""
    kind = _field_type(key)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        for member in kind:
            if value == member.value:
                return member.name
    return value


def _allowed(key: str) -> str:
    kind = _field_type(key)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(m.value for m in kind)
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    return "a string"


def _set(cfg: DictConfig, key: str, value: str) -> None:
    try:
        OmegaConf.update(cfg, key, _normalise(key, value), merge=True)
    except (ConfigKeyError, AttributeError, KeyError) as exc:
        raise ConfigError(_unknown_key_message(key)) from exc
    except ValidationError as exc:
        raise ConfigError(f"{key}: '{value}' is not allowed: expected {_allowed(key)}") from exc
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from exc


def _unknown_key_message(key: str) -> str:
    parts = key.split(".")
    node: object = schema.Config
    for depth, part in enumerate(parts):
        fields = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
        if part not in fields:
            where = ".".join(parts[:depth]) or "the top level"
            listing = ", ".join(sorted(fields))
            return f"unknown configuration key '{key}': {where} has {listing}"
        node = _field_type(".".join(parts[: depth + 1]))
    return f"unknown configuration key '{key}'"


def apply_benchmark(cfg: DictConfig, definition, groups, overrides) -> None:
    """Refuse settings the definition fixes, then apply its fixed settings."""
    given = {}
    for group, name in groups:
        if group == "mode":
            if name != "train":
                raise ConfigError(f"benchmark={definition.name} runs in mode=train, not mode={name}")
            continue
        if group == "framework":
            given["framework.name"] = name
            continue
        raise ConfigError(f"{group}={name}: the {definition.name} benchmark fixes {group}")
    for key, _ in overrides:
        given[key] = OmegaConf.select(cfg, key)
    definition.check_tunables(given)
    for key, value in definition.settings.items():
        if key in GROUPS:
            _apply_group(cfg, key, str(value))
        else:
            _set(cfg, key, _plain(value))
    cfg.run.benchmark = definition.name
    if definition.target is not None:
        cfg.run.validation = schema.Validation.full
    if definition.steps:
        cfg.run.iterations = definition.steps


def _plain(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _apply_group(cfg: DictConfig, group: str, name: str) -> None:
    if group == "network":
        if name not in NETWORK_PRESETS:
            raise ConfigError(f"network={name}: unknown preset; allowed: {', '.join(NETWORK_PRESETS)}")
        for key, value in NETWORK_PRESETS[name].items():
            _set(cfg, f"network.{key}", str(value))
        _set(cfg, "network.name", name)
    elif group == "data":
        if name not in DATA_PRESETS:
            raise ConfigError(f"data={name}: unknown preset; allowed: {', '.join(DATA_PRESETS)}")
        for key, value in DATA_PRESETS[name].items():
            _set(cfg, f"data.{key}", str(value))
    else:  # mode=train, framework=torch
        _set(cfg, f"{group}.name", name)


def build(tokens: Sequence[str]) -> DictConfig:
    """Defaults, then presets, then dotted overrides; `run.id` is required.

    With `benchmark=NAME` the definition's defaults come first, the user's
    settings must be ones it lets a submitter tune, and its fixed settings
    are applied last.
    """
    groups, overrides = split_tokens(tokens)
    benchmarks = [name for group, name in groups if group == "benchmark"]
    groups = [(group, name) for group, name in groups if group != "benchmark"]
    cfg = OmegaConf.structured(schema.Config)
    definition = get_benchmark(benchmarks[-1]) if benchmarks else None
    if definition is not None:
        for key, value in definition.defaults.items():
            _set(cfg, key, str(value))
    for group, name in groups:
        _apply_group(cfg, group, name)
    for key, value in overrides:
        _set(cfg, key, value)
    if definition is not None:
        apply_benchmark(cfg, definition, groups, overrides)
    try:
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        raise ConfigError(f"{exc.full_key} is required (e.g. {exc.full_key}=test)") from exc
    return cfg
