"""Host memory for large tensors without page faults: glibc's malloc keeps freed memory for reuse.

PyTorch allocates CPU tensors with malloc. glibc serves a request above its
mmap threshold (which it raises at most to 32 MiB) with a fresh mapping and
unmaps it again on free, so the next tensor of that size is page-faulted in
4 KiB page by 4 KiB page at its first write. The plane-folded batch makes the
full-resolution activations three times upstream's per-plane ones, past that
threshold (a21 at 640x1024: 63 MB against 21 MB), and every op writing one
paid it: on the 2-core machine one thread's leaky ReLU over such a tensor
took 114 ms instead of 10, three per-plane ones 16 ms. Served from the heap,
which is never trimmed, a freed tensor's pages become the next one's: the
reference's a21 step at 640x1024 took 2.5-2.9 s instead of 3.5-4.1 (3.7-3.9
with torch's THP_MEM_ALLOC_ENABLE, whose huge pages still come zeroed). The
process keeps its peak memory until it ends, as a caching allocator would
(2.5 GiB there, flat over 30 steps and with evaluations between them).
"""
from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4


def keep_freed_host_memory() -> bool:
    """Serve every allocation from glibc's heap (no per-tensor mappings) and never trim it; process-wide and
    idempotent. False, changing nothing, where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # -1 disables trimming (glibc's documented value); 0 mappings leaves the heap as the only source
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1
