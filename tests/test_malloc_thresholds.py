"""fix_malloc_thresholds: memory a thread frees at the top of its malloc arena goes back to the OS,
which with glibc's own thresholds it did not, malloc_trim or not, once a larger block had been
freed (RELIABILITY.md, "The steps after a fit and a cancelled benchmark")."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# In a fresh process (the thresholds are the process's), on a thread of its own as the viewer's
# jobs are: a 16 MiB block freed (glibc's own thresholds rise to 16 / 32 MiB), then 64 blocks of
# 1 MiB written and freed from the top down, then trim_heap as a job's end does. Printed: the
# resident MB the 1 MiB blocks left behind.
KEPT_AFTER_JOB = """
import ctypes, sys, threading
from engine.memory import MB, fix_malloc_thresholds, rss_bytes, trim_heap
if sys.argv[1] == "fixed":
    assert fix_malloc_thresholds()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def job():
    libc.free(libc.malloc(16 * 1024 * 1024))
    start = rss_bytes()
    blocks = [libc.malloc(1024 * 1024) for _ in range(64)]
    for block in blocks:
        ctypes.memset(block, 1, 1024 * 1024)
    for block in reversed(blocks):
        libc.free(block)
    trim_heap()
    print((rss_bytes() - start) / MB)
thread = threading.Thread(target=job)
thread.start()
thread.join()
"""


def kept_mb(thresholds: str) -> float:
    done = subprocess.run([sys.executable, "-c", KEPT_AFTER_JOB, thresholds], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return float(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_fixed_thresholds_give_a_threads_freed_memory_back():
    from engine.memory import MB, TOP_PAD_BYTES

    pad = TOP_PAD_BYTES / MB
    # glibc's own trim threshold, raised to 32 MiB by the 16 MiB block: half of the 64 MiB stays
    assert kept_mb("default") > pad + 8
    assert kept_mb("fixed") < pad + 2  # all but the pad that a frame's next slice reuses


def test_fixing_the_thresholds_is_a_no_op_without_glibc(monkeypatch):
    from engine import memory

    def no_libc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(memory.ctypes, "CDLL", no_libc)
    assert memory.fix_malloc_thresholds() is False
