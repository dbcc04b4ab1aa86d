"""MLPerf logs through `mlperf_logging.mllog`, written by rank 0 only.

One `MLPerfLog` per run writes `:::MLLOG {...}` lines to a file (not to
stdout: the run's own report goes there). Call sites are recorded one frame
above this wrapper, as the checker's seed rule keys on (file, line).
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Optional

from mlperf_logging.mllog import constants
from mlperf_logging.mllog.mllog import MLLogger

_COUNTER = itertools.count()
# The wrapper's own frame plus mllog's internal ones, so metadata names our caller.
_STACK_OFFSET = 2


class MLPerfLog:
    def __init__(self, path: Optional[str]):
        """`path=None` (ranks other than 0) logs nothing."""
        self.path = path
        self._logger: Optional[MLLogger] = None
        if path is None:
            return
        # A private logging.Logger per run: no duplicate handlers across runs in one process.
        logger = logging.getLogger(f"cosmictagger.mllog.{next(_COUNTER)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = logging.FileHandler(path, mode="a")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        self._handler = handler
        self._logger = MLLogger(logger=logger, default_stack_offset=_STACK_OFFSET)

    def event(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._logger is not None:
            self._logger.event(key=key, value=value, metadata=metadata or None)

    def start(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._logger is not None:
            self._logger.start(key=key, value=value, metadata=metadata or None)

    def end(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._logger is not None:
            self._logger.end(key=key, value=value, metadata=metadata or None)

    def close(self) -> None:
        if self._logger is not None:
            self._handler.close()
            self._logger.logger.removeHandler(self._handler)
            self._logger = None


C = constants  # the key names, re-exported for callers
