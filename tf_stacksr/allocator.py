"""glibc malloc settings for TensorFlow's CPU kernels, applied by every command at start-up.

A training step on the CPU allocates and frees its intermediate tensors, from several threads,
every step. With glibc's defaults, each thread's heap hands freed memory back to the system at
once (keeping 128 KiB), and buffers above a threshold that starts at 128 KiB are fresh mappings,
so every step maps, page-faults in and unmaps the same memory again. On 2 CPU cores that kernel
work cost 2.1 CPU seconds per 3.4 s step of the shipped 16->64 PSNR recipe (batch 16).
`keep_freed_memory` keeps freed memory for reuse (up to 64 MiB of slack per heap, trimmed above
128 MiB) and serves buffers up to 32 MiB from the heaps: the same step then took 2.3 s, and the
quickstart's step 0.38 s instead of 0.75 s (`python -m bench.allocator`, docs/benchmarks.md).
The price is resident memory that stays with the process between steps (50-80 MiB there).

It does nothing where the C library is not glibc (macOS, musl), or where the user set glibc's own
`MALLOC_*` variables or `GLIBC_TUNABLES` malloc tunables: theirs then apply.
"""

from __future__ import annotations

import ctypes
import os

# mallopt() parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {M_TOP_PAD: 64 << 20, M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 128 << 20}


def user_set_malloc() -> bool:
    """Whether the environment already tunes glibc's malloc."""
    return any(k.startswith("MALLOC_") for k in os.environ) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> bool:
    """Apply `SETTINGS` to this process's malloc; True where they took effect (glibc)."""
    if user_set_malloc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([mallopt(param, value) == 1 for param, value in SETTINGS.items()])
