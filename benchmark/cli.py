"""The command line: `python bin/exec.py mode=... run.id=... [key=value ...]`."""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

from benchmark import config
from benchmark.config.render import help_text
from benchmark.errors import BenchmarkError


def main(argv: Sequence[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text())
        return 0
    try:
        cfg = config.load(argv)
        mode = importlib.import_module(f"benchmark.modes.{cfg.mode.name.value}")
        return mode.run(cfg)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
