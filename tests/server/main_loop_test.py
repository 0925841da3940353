#!/usr/bin/env python3
"""personaplex-server's main loop, from which every call's pages go out, is
never held up by another call's start: calls join a batch while one talks,
each with a long role of its own (its prompts run inside its pipeline's
start, under that pipeline's state lock), on the demo model (CPU), with
PERSONAPLEX_STALL_LOG=1. The server then logs each join's end and each time
its main loop woke late; a main loop that waits for a starting pipeline
(its latency recalculated there) wakes late by the prompts' time, the
moment the join ends. Needs no fixtures."""

import json
import os
import re
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_model_test import Server, question_ogg  # noqa: E402
from load_test import load  # noqa: E402

JOIN = re.compile(r"batch join at ([\d.]+) s: slot \d+, ([\d.]+) ms prompts")
LATE = re.compile(r"main loop woke ([\d.]+) ms late at ([\d.]+) s")
# A role of some 120 tokens: prompts long enough to see on a CPU.
ROLE = " ".join(["You help travellers find trains, hotels and restaurants in every city of Portugal."] * 8)


def held_up(lines):
    """(joins after the first, joins that held the main loop up): a join
    whose prompts took 40 ms or more and whose end the main loop woke late
    at, by most of that time."""
    text = "".join(lines)
    joins = [(float(t), float(ms)) for t, ms in JOIN.findall(text)][1:]  # the first is the warm-up's
    lates = [(float(ms), float(t)) for ms, t in LATE.findall(text)]
    long_ones = [(t, ms) for t, ms in joins if ms >= 40]
    held = [(t, ms, late) for t, ms in long_ones for late, at in lates if abs(at - t) < 0.02 and late >= 0.6 * ms]
    return long_ones, held


def main():
    tmp = tempfile.mkdtemp(prefix="pp-main-loop-")
    server = None
    try:
        os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        os.environ["PERSONAPLEX_STALL_LOG"] = "1"
        os.chdir(tmp)
        server = Server([os.environ["PERSONAPLEX_SERVER"], "--http", "--host", "127.0.0.1", "--port", "0",
                         "--device", "cpu", "--batch", "--max-sessions", "3"])
        ogg = question_ogg(tmp)
        rc, result, _ = load(server.url.rstrip("/"), ogg, "--sessions", "3", "--seconds", "4", "--stagger", "1.5",
                             "--distinct-prompts", "--prompt", ROLE)
        print(json.dumps(result["summary"]))
        assert rc == 0, result
        long_ones, held = held_up(server.lines)
        print("joins with prompts of 40 ms or more:", long_ones, "holding the main loop up:", held)
        assert long_ones, "no join's prompts took 40 ms: nothing to check (a faster CPU: make the role longer)"
        assert not held, held
        print("ok")
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
