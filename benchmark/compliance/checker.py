"""Run the official MLPerf compliance checker with this benchmark's ruleset."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import List

from benchmark.compliance.ruleset import RULES_DIR
from benchmark.errors import BenchmarkError

# The checker's hpc_3.0.0 line parser and ruleset family; our rules come in through --config.
USAGE, RULESET = "hpc", "3.0.0"
CONFIG = os.path.join(RULES_DIR, "common.yaml")  # absolute: the checker resolves a relative one in its own folder

_MESSAGE_SEPARATOR = "-" * 30  # between the checker's messages in its one closing report


def command(log: str) -> List[str]:
    """The official checker's command line for one log, as a reviewer types it (see rules/common.yaml)."""
    return [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", USAGE, "--ruleset", RULESET,
            "--config", CONFIG, log]


@dataclass
class CheckResult:
    log: str
    passed: bool
    output: str

    def problem_list(self) -> List[str]:
        """Each of the checker's reasons for failing the log, one line each (empty when it passed)."""
        if self.passed:
            return []
        lines = self.output.splitlines()
        # With --quiet the closing report (one WARNING record, messages split by dashes) holds only failures.
        starts = [i for i, line in enumerate(lines) if line.startswith("WARNING - ")]
        ends = [i for i, line in enumerate(lines) if line == "ERROR - FAILED"]
        if not starts or not ends or starts[-1] > ends[-1]:
            # No report: the checker itself stopped (a traceback ends with its reason).
            text = [line.strip() for line in lines if line.strip() and not line.startswith("**")]
            return [text[-1] if text else "the checker failed without a message"]
        block = [lines[starts[-1]][len("WARNING - "):].strip()] + lines[starts[-1] + 1:ends[-1]]
        messages, current = [], []
        for line in block + [_MESSAGE_SEPARATOR]:
            if line == _MESSAGE_SEPARATOR:
                if current:
                    messages.append(_one_line(current))
                current = []
            else:
                current.append(line)
        return messages or ["the checker failed without a message"]

    def problems(self) -> str:
        return "; ".join(self.problem_list()[:6])

    def first_problem(self) -> str:
        return self.problem_list()[0] if not self.passed else ""


def _one_line(message: List[str]) -> str:
    """A checker message in one line: its first line and the rule that failed, not the context it dumps."""
    lines = [line.strip() for line in message if line.strip()]
    head = lines[0]
    failed = [line for line in lines[1:] if line.startswith("failed test:")]
    if failed:
        head = f"{head} {failed[0]}"
    elif head.endswith(":") and len(lines) > 1:  # e.g. "Failed executing CHECK code:" and the code
        head = f"{head} {lines[1]}"
    return " ".join(head.split())


def check(log: str) -> CheckResult:
    if not os.path.exists(log):
        raise BenchmarkError(f"{log}: no such MLPerf log")
    # --quiet: the warnings (a key logged twice with the same value) never fail a log, and would hide the reasons.
    proc = subprocess.run(command(log) + ["--quiet", "--log_output", os.devnull], capture_output=True, text=True)
    # Only this checker's exit status is reliable (mlperf-hpc.md 4.3): 0 passed, 1 failed.
    return CheckResult(log=log, passed=proc.returncode == 0, output=proc.stdout + proc.stderr)
