"""Publishing files so that a crash leaves the old version or the complete new one, never a part of it.

The new content is written under a temporary name beside the target,
flushed to disk (fsync), renamed over the target, and the folder is flushed
so the rename itself survives a power loss. Without the first fsync a
journaling file system may commit the rename before the data: after a crash
the name would point at an empty or partial file.

Implementations reach `published` through `benchmark.implementation`, the
interface module; the harness imports it from here.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator


def fsync_path(path: str) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    descriptor = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


@contextlib.contextmanager
def published(path: str) -> Iterator[str]:
    """A temporary path beside `path` to write; when the block ends, that file is flushed to disk, renamed to
    `path`, and the folder flushed. If the block raises, the temporary file is removed and `path` is untouched."""
    temporary = f"{path}.tmp"
    try:
        yield temporary
        fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    fsync_path(folder_of(path))


def publish_folder(temporary: str, path: str) -> None:
    """Rename the complete folder `temporary` (its files already flushed) to `path`, which must be absent or an
    empty folder, and flush both to disk: a reader sees no folder, an empty one, or all of it."""
    fsync_path(temporary)
    os.replace(temporary, path)
    fsync_path(folder_of(path))
