"""`python -m benchmark.config check [key=value ...]`: the settings validated as bin/exec.py would, nothing run.

run_benchmark.sh checks a site's settings with it before it describes the host,
generates a dataset or starts a run, so bad settings cost one line and leave nothing behind.
"""
from __future__ import annotations

import sys
from typing import Sequence

from benchmark import config
from benchmark.errors import BenchmarkError

USAGE = "usage: python -m benchmark.config check [key=value ...]"


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] != "check":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        config.load(list(argv[1:]))
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    print("settings accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
