#!/usr/bin/env python3
"""pipelines/server/chat-load.py's own logic, without a server: the roles
that --distinct-prompts gives the calls, and the stalls its summary finds
(gaps that several calls had at once)."""

import argparse
import asyncio
import importlib.util
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "chat_load", os.path.join(HERE, "..", "..", "pipelines", "server", "chat-load.py"))
chat_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(chat_load)


def test_prompts():
    same = argparse.Namespace(prompt="Be kind.", distinct_prompts=False)
    assert {chat_load.call_prompt(same, i) for i in range(8)} == {"Be kind."}
    own = argparse.Namespace(prompt="Be kind.", distinct_prompts=True)
    prompts = [chat_load.call_prompt(own, i) for i in range(64)]
    assert len(set(prompts)) == 64, prompts
    assert all(p.startswith("Be kind. ") for p in prompts)
    assert len({len(p) for p in prompts}) > 3  # roles of different lengths


def test_stalls():
    calls = [
        {"session": 0, "gap_ends_over_200ms_at_s": [(3.00, 240), (5.0, 210)]},
        {"session": 1, "gap_ends_over_200ms_at_s": [(3.05, 250)]},
        {"session": 2, "gap_ends_over_200ms_at_s": [(3.12, 220), (9.0, 300)]},
        {"session": 3},  # no gap over 200 ms
    ]
    s = chat_load.stalls(calls)
    # The three gaps near 3 s are one stall of three calls (each within
    # 0.1 s of the one before); the others are one call's each.
    assert s[0] == {"at_s": 3.0, "calls": 3, "longest_ms": 250}, s
    assert [c["at_s"] for c in s[1:]] == [5.0, 9.0], s
    # Gaps of one call only never make a stall of more than one call.
    lone = chat_load.stalls([{"session": 0, "gap_ends_over_200ms_at_s": [(1.0, 300), (1.05, 300)]}])
    assert lone == [{"at_s": 1.0, "calls": 1, "longest_ms": 300}], lone
    assert chat_load.stalls([]) == []


def test_late_together():
    calls = [{"session": i, "gap_ends_over_120ms_at_s": [(4.0 + 0.01 * i, 160)]} for i in range(5)]
    assert chat_load.stalls(calls) == []  # none over 200 ms
    assert chat_load.stalls(calls, key="gap_ends_over_120ms_at_s") == [{"at_s": 4.0, "calls": 5, "longest_ms": 160}]


def test_loop_lag():
    """A coroutine that holds the loop for 150 ms shows as a lag of about
    that, on the run's clock; a loop left free shows none as long."""
    async def run(block):
        lag = chat_load.LoopLag(time.monotonic())
        watcher = asyncio.ensure_future(lag.watch())
        await asyncio.sleep(0.05)
        if block:
            time.sleep(0.15)
        await asyncio.sleep(0.05)
        watcher.cancel()
        return lag.summary()
    held = asyncio.run(run(True))
    assert 140 <= held["client_loop_lag_ms_max"] < 400, held
    assert any(ms >= 140 and 0.04 <= at <= 0.5 for at, ms in held["client_loop_lags"]), held
    free = asyncio.run(run(False))
    assert free["client_loop_lag_ms_max"] < 140, free


if __name__ == "__main__":
    test_prompts()
    test_stalls()
    test_late_together()
    test_loop_lag()
    print("ok")
