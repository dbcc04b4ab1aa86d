"""The first events of a source: a fixed validation subset (`data.aux_events`)."""
from __future__ import annotations

from typing import Tuple

from benchmark.data.source import Event, EventSource, source_name
from benchmark.errors import DataError


class FirstEvents:
    """Entries 0 .. `count` - 1 of `source`, the same events in the same order."""

    def __init__(self, source: EventSource, count: int, setting: str = "data.aux_events"):
        if not 1 <= count <= len(source):
            raise DataError(f"{setting}={count}: {source_name(source)} holds {len(source)} events, "
                            f"so it must be between 1 and {len(source)}")
        self.source, self.count = source, int(count)
        self.path = source_name(source)

    @property
    def full_shape(self) -> Tuple[int, int]:
        return self.source.full_shape

    def __len__(self) -> int:
        return self.count

    def read(self, entry: int) -> Event:
        if not 0 <= entry < self.count:
            raise IndexError(f"entry {entry} is outside the first {self.count} events of {self.path}")
        return self.source.read(entry)
