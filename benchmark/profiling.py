"""run.profile=true: a py-spy flame graph of the whole training loop.

py-spy samples this process from outside (it needs ptrace rights: root, or
CAP_SYS_PTRACE); the framework's own profiler traces a few steps on top,
through the implementation's `profile_steps`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Optional

from benchmark.errors import BenchmarkError


def _py_spy() -> str:
    found = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(found):
        raise BenchmarkError("run.profile=true needs py-spy (pip install py-spy; scripts/setup.sh installs it)")
    return found


class FlameGraph:
    """Records this process with py-spy from `start()` to `stop()`, into an SVG."""

    def __init__(self, path: str):
        self.path = path
        self._process: Optional[subprocess.Popen] = None
        self.log_path = path + ".log"

    def start(self) -> None:
        command = [_py_spy(), "record", "--pid", str(os.getpid()), "--output", self.path, "--format", "flamegraph",
                   "--rate", "50", "--threads"]
        self._log = open(self.log_path, "w")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # let py-spy attach before the loop starts
        if self._process.poll() is not None:
            self._log.close()
            raise BenchmarkError(f"py-spy could not attach (see {self.log_path}); it needs ptrace rights")

    def stop(self) -> None:
        """py-spy writes its flame graph when interrupted."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()
        self._process = None
