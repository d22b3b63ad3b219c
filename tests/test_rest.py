"""The JSON routes' bounds (charrnn/web/rest.py), without a server: the gate's workers, its line, its refusal."""

from __future__ import annotations

import threading

import anyio
import pytest
from fastapi import HTTPException

from charrnn.web.rest import QUEUE_FULL, Gate


def test_the_gate_runs_its_workers_queues_the_line_and_refuses_the_rest():
    gate, release = Gate(workers=2, waiting=1), threading.Event()
    running, outcomes = [], []

    def work(i):
        running.append(i)
        release.wait(30)
        return i

    async def call(i):
        try:
            outcomes.append(await gate.run(work, i))
        except HTTPException as e:
            outcomes.append(e.status_code)

    async def main():
        async with anyio.create_task_group() as tasks:
            for i in range(5):
                tasks.start_soon(call, i)
            while len(running) < 2:  # two run, one waits in line, two are refused at once
                await anyio.sleep(0.01)
            await anyio.sleep(0.1)
            assert len(running) == 2 and outcomes == [503, 503]
            release.set()

    anyio.run(main)
    assert sorted(outcomes, key=str) == [0, 1, 2, 503, 503] and gate.inside == 0
    assert len(running) == 3


def test_a_refusal_says_the_queue_is_full():
    gate = Gate(workers=1, waiting=0)
    gate.inside = 1
    with pytest.raises(HTTPException) as refused:
        anyio.run(gate.run, lambda: None)
    assert refused.value.status_code == 503 and refused.value.detail == QUEUE_FULL
