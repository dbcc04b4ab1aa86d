"""Reference convergence points (RCPs): MLPerf's check that tuned hyperparameters do not buy convergence that
the reference runs do not reach.

    python -m benchmark.rcp write --benchmark NAME [--rules-version V] [--out FILE] [--force] LOG_OR_DIR ...
    python -m benchmark.rcp check RESULT_DIR [--rcps FILE] [--rcp-pass pruned_rcps|full_rcps]

`write` builds `benchmark/rcps/<benchmark>-<rules version>.json` (MLPerf's RCP format, `files.py`) from the
MLPerf logs of reference runs, one entry per global batch size. `check` holds a submission's runs to it with
MLPerf's rule (`points.py`, a port of `mlperf_logging.rcp_checker`), as `check.py` reads them from the logs.
"""
from benchmark.errors import BenchmarkError


class BadInput(BenchmarkError):
    """What was given cannot be checked at all (no folder, no logs, an unreadable log or RCP file): exit status 2."""

    exit_status = 2
