"""The command line: `python bin/exec.py mode=... run.id=... [key=value ...]`.

Under `run.distributed=true` only the job's rank 0 prints; an error on any
rank is reported with its rank and ends the whole job (no rank is left
waiting in a collective).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from typing import Sequence

from benchmark import config
from benchmark.config.render import help_text
from benchmark.errors import BenchmarkError
from benchmark.parallel import context
from benchmark.parallel.placement import detect


def main(argv: Sequence[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text())
        return 0
    parallel = context.SINGLE
    try:
        cfg = config.load(argv)
        parallel = context.setup(cfg)
        mode = importlib.import_module(f"benchmark.modes.{cfg.mode.name.value}")
        with _quiet_unless(parallel.world_rank == 0):
            return mode.run(cfg, parallel)
    except BenchmarkError as exc:
        if parallel.world.size > 1:
            print(f"error on rank {parallel.world_rank}: {exc}", file=sys.stderr)
            parallel.world.abort(exc.exit_status)
        if detect().rank == 0:  # a refused launch: every rank refuses alike, rank 0 says so
            print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        if parallel.world.size <= 1:
            raise
        traceback.print_exc()
        print(f"error on rank {parallel.world_rank}: the traceback above; ending the job", file=sys.stderr)
        parallel.world.abort(1)
        raise


@contextlib.contextmanager
def _quiet_unless(speaking: bool):
    """Other ranks' reports go nowhere (their errors still reach stderr)."""
    if speaking:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield
