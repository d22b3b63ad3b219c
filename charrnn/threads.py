"""How many CPU threads each kind of work runs on: the one thread policy of every path.

On a CPU, torch splits an operation across its threads and waits for the last one. When another process
holds a core, the thread that shares it waits for its turn at every operation, and fine-grained work
collapses: on 2 cores with one busy, 2 threads sampled 5x slower than 1 and trained 10-20x slower
(README, "Busy machines"). So:

- `STEP` work (one row a character: sampling, folk, each of the app's requests, whose concurrency is
  the app's parallelism) runs on one thread: a second one was measured no faster even on a quiet machine;
- `BATCH` work (beam search, completion, translation, eval, inspect, training, the speed probe) runs
  on the cores that no other process is using, measured (`CoreWatch`) rather than assumed, and a long
  run (training) measures again every CHECK_S seconds, so it follows a busy process that comes or goes;
- a training job inside the app (its Train tab) leaves SERVER_KEEPS of those cores to the app's requests:
  they run in the same process, so the watch counts them as the job's own work and cannot see them coming.

`--threads` and the environment (OMP_NUM_THREADS, MKL_NUM_THREADS) win: given either, the count is fixed.
torch's count is per OS thread (an OpenMP setting), so each thread that computes applies the policy itself.
"""

from __future__ import annotations

import enum
import math
import os
import time

import torch

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # set: the user chose the count, torch started with it
SPARE = 0.2  # others' use of a core, in cores, that does not yet count it as taken (a shell, a clock tick)
PROBE_S = 0.1  # the shortest look at the machine when nothing has been measured yet
CHECK_S = 5.0  # a long run looks again this often
SERVER_KEEPS = 1  # cores a server's training job leaves free for the server's own requests


class Work(enum.Enum):
    STEP = "step"  # one row at a time
    BATCH = "batch"  # several rows, long sequences, training


def machine_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def env_threads() -> int | None:
    """The count the environment fixes, if any (the first valid one of ENV_VARS)."""
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _busy_seconds() -> float | None:
    """CPU seconds every core of the machine has spent working since boot (/proc/stat); None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class CoreWatch:
    """Cores other processes used since the last look: the machine's busy time less this process's own."""

    def __init__(self):
        self._mark = self._now()

    @staticmethod
    def _now() -> tuple[float, float | None, float]:
        return time.monotonic(), _busy_seconds(), _own_seconds()

    def others(self) -> float:
        """Cores busy with other processes' work since the last call (or since the watch began)."""
        (t0, busy0, own0), now = self._mark, self._now()
        if now[0] - t0 < PROBE_S:  # too short a look to mean anything: look for PROBE_S
            time.sleep(PROBE_S - (now[0] - t0))
            now = self._now()
        self._mark = now
        if busy0 is None or now[1] is None:
            return 0.0
        return max(0.0, (now[1] - busy0) - (now[2] - own0)) / max(now[0] - t0, 1e-9)

    def free(self) -> int:
        """Cores no other process is using (at least 1)."""
        taken = math.ceil(max(0.0, self.others() - SPARE))
        return max(1, min(machine_cores(), (os.cpu_count() or 1) - taken))


def choose(work: Work, requested: int | None = None, watch: CoreWatch | None = None, keep: int = 0) -> int:
    """The thread count for `work`: `requested` (--threads), else the environment's, else the policy's, which
    for BATCH work leaves `keep` of the free cores to this process's other work (at least 1 thread)."""
    if requested:
        return requested
    fixed = env_threads()
    if fixed:
        return fixed
    if work is Work.STEP:
        return 1
    return max(1, (watch or CoreWatch()).free() - keep)


def use(work: Work, requested: int | None = None, watch: CoreWatch | None = None, keep: int = 0) -> int:
    """Set this OS thread's torch count by the policy (see `choose`); returns it."""
    n = choose(work, requested, watch, keep)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class Follow:
    """For a long BATCH run: the policy's count now, and again every CHECK_S seconds (`check`), unless fixed;
    `keep`: free cores left to the rest of this process (SERVER_KEEPS in the app)."""

    def __init__(self, requested: int | None = None, keep: int = 0):
        self.fixed = bool(requested or env_threads())
        self.keep = keep
        self._watch = CoreWatch()
        self.threads = use(Work.BATCH, requested, self._watch, keep)
        self.changes = 0  # how often the count changed (a speed measured across a change is of neither count)
        self._next = time.monotonic() + CHECK_S

    def check(self) -> int:
        """Cheap between checks (one clock read); at a check, follows the cores other processes left free."""
        if not self.fixed and time.monotonic() >= self._next:
            now = use(Work.BATCH, watch=self._watch, keep=self.keep)
            self.changes += now != self.threads
            self.threads, self._next = now, time.monotonic() + CHECK_S
        return self.threads
