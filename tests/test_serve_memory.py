"""The server's allocator settings (charrnn/serve/memory.py): in force on Linux with glibc, as CI runs."""

import threading

from charrnn.serve import memory


def test_glibc_is_found_and_a_trimmer_thread_runs() -> None:
    assert memory.keep_memory_flat(every_s=0.01)
    trimmers = [t for t in threading.enumerate() if t.name == "malloc-trim"]
    assert trimmers and all(t.daemon and t.is_alive() for t in trimmers)
