"""The server's allocator settings (charrnn/serve/memory.py), in a real process: freed memory goes back."""

import subprocess
import sys

import pytest

# 200 MB in 1 KB blocks, all freed but the last: glibc keeps the freed heap below that block (RSS stays
# up) unless something trims it, which is what the server's trimmer thread does every `every_s`.
SCRIPT = """
import ctypes, sys, time
from charrnn.serve import memory
def rss_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
if sys.argv[1] == "on":
    assert memory.keep_memory_flat(every_s=0.05)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
base = rss_mb()
blocks = [libc.malloc(1024) for _ in range(200_000)]
for b in blocks:
    ctypes.memset(b, 1, 1024)
for b in blocks[:-1]:
    libc.free(b)
time.sleep(0.5)
print(round(rss_mb() - base))
"""


def retained_mb(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_the_trimmer_hands_freed_memory_back():
    assert retained_mb("off") > 150  # the allocator keeps it ...
    assert retained_mb("on") < 50  # ... and the trimmer gives it back within a fraction of a second
