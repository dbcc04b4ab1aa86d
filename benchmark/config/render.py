"""Text forms of the configuration: the original's `-- CONFIG --` listing and `--help`."""
from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Iterator, List, Mapping, Tuple

from omegaconf import DictConfig, OmegaConf

from benchmark.config import schema
from benchmark.config.presets import DATA_PRESETS, NETWORK_PRESETS
from benchmark.rules import BENCHMARKS

_WIDTH = 30  # the original aligns every value at column 32 ("  key.....: value")


def _plain(value) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(value)
    return "" if value is None else str(value)


def config_lines(cfg: DictConfig) -> List[str]:
    """The resolved configuration, dotted and aligned as the original prints it."""
    lines = ["-- CONFIG --"]

    def walk(node: Mapping, indent: int) -> None:
        for key in sorted(node):
            value = node[key]
            pad = " " * indent
            if isinstance(value, (Mapping, DictConfig)):
                lines.append(f"{pad}{key}:")
                walk(value, indent + 2)
            else:
                dots = "." * max(_WIDTH - indent - len(key), 0)
                lines.append(f"{pad}{key}{dots}: {_plain(value)}")

    walk(OmegaConf.to_container(cfg, enum_to_str=False), 0)
    return lines


def config_yaml(cfg: DictConfig) -> str:
    """YAML that `key=value` overrides can reproduce (enumerations by value)."""
    container = OmegaConf.to_container(cfg, enum_to_str=False)

    def plain(node):
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items()}
        return node.value if isinstance(node, enum.Enum) else node

    return OmegaConf.to_yaml(plain(container))


def _describe_type(kind) -> Tuple[str, str]:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "enum", "|".join(m.value for m in kind)
    if kind is bool:
        return "bool", "true|false"
    return getattr(kind, "__name__", str(kind)).replace("Dict", "mapping"), ""


def _fields(node_type, prefix: str) -> Iterator[Tuple[str, object, dataclasses.Field]]:
    hints = typing.get_type_hints(node_type)
    default = node_type()
    for f in dataclasses.fields(node_type):
        kind = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(kind):
            yield from _fields(kind, key + ".")
        else:
            yield key, kind, f, getattr(default, f.name)


def help_text() -> str:
    rows = []
    for key, kind, f, default in _fields(schema.Config, ""):
        type_name, allowed = _describe_type(kind)
        if "Dict" in str(kind):
            type_name = "mapping"
        shown = "(required)" if default == "???" else _plain(default) if not isinstance(default, dict) else str(default)
        rows.append((key, type_name, shown, allowed, f.metadata.get("help", "")))
    width = max(len(r[0]) for r in rows)
    lines = [
        "usage: python bin/exec.py mode=train|iotest|inference|summary run.id=ID [group=preset] [key.sub=value ...]",
        "",
        "Groups (a preset sets several keys at once; later key=value settings win):",
        f"  network={'|'.join(NETWORK_PRESETS)}   mode={'|'.join(m.value for m in schema.ModeKind)}",
        f"  framework={'|'.join(f.value for f in schema.FrameworkKind)} (or --framework NAME)   data={'|'.join(DATA_PRESETS)}",
        f"  benchmark={'|'.join(BENCHMARKS)}: follow a benchmark's rules (fixed settings, target, MLPerf log; see README)",
        "",
        "Keys (type, default, allowed values):",
    ]
    for key, type_name, shown, allowed, text in rows:
        allowed_text = f" [{allowed}]" if allowed else ""
        lines.append(f"  {key.ljust(width)}  {type_name} = {shown}{allowed_text}")
        if text:
            lines.append(f"  {' ' * width}    {text}")
    lines.append("")
    lines.append("Example: python bin/exec.py mode=train run.id=quick data.synthetic=true network=a21 run.iterations=10")
    return "\n".join(lines)
