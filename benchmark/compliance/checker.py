"""Run the official MLPerf compliance checker with this benchmark's ruleset."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from benchmark.compliance.ruleset import RULES_DIR
from benchmark.errors import BenchmarkError

# The checker's hpc_3.0.0 line parser and ruleset family; our rules come in through --config.
USAGE, RULESET = "hpc", "3.0.0"


@dataclass
class CheckResult:
    log: str
    passed: bool
    output: str

    def problems(self) -> str:
        lines = [l for l in self.output.splitlines() if "ERROR" in l or "FAILED" in l or "Failed" in l]
        return "; ".join(lines[:6])


def check(log: str) -> CheckResult:
    if not os.path.exists(log):
        raise BenchmarkError(f"{log}: no such MLPerf log")
    env = dict(os.environ, COSMICTAGGER_RULES_DIR=RULES_DIR)
    proc = subprocess.run(
        [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", USAGE, "--ruleset", RULESET,
         "--config", os.path.join(RULES_DIR, "common.yaml"), "--log_output", os.devnull, log],
        capture_output=True, text=True, env=env,
    )
    # Only this checker's exit status is reliable (mlperf-hpc.md 4.3): 0 passed, 1 failed.
    return CheckResult(log=log, passed=proc.returncode == 0, output=proc.stdout + proc.stderr)
