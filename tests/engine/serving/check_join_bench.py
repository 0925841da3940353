#!/usr/bin/env python3
"""Runs join-bench on the CPU with the fixture LM configuration and checks
its JSON: every call joined and talked, the calls stepped together (their
frame grids on the batch's phase), each join's time in its parts, and the
prompts giving way to the steps only on a GPU (never here)."""
import json
import os
import subprocess
import sys

bench, fixtures = sys.argv[1], os.environ.get("PERSONAPLEX_FIXTURES", "")
config = os.path.join(fixtures, "lm", "config.json")
if not fixtures or not os.path.isfile(config):
    print("no fixtures: skipped")
    sys.exit(77)


def run(**env):
    p = subprocess.run([bench, "--lm-config", config, "--talking", "2", "--joins", "3", "--join-every-ms", "200",
                        "--seconds", "2", "--warmup-s", "1"],
                       capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


d = run()
assert d["failed"] == 0 and d["errors"] == [], d
assert d["talking"] == 2 and d["joins"] == 3, d
assert d["prompts_give_way"] is False and d["steps_first"] is False, d
# All five calls were in one step at the end: they submit together.
assert d["widest_step"] == 5, d
assert d["steps"] > 10, d
gaps = d["gaps_ms"]
assert gaps is not None and gaps["min"] > 0, gaps
j = d["join"]
for part in ["ms", "queued_ms", "prompts_ms", "first_graphs_ms", "step_wait_ms"]:
    assert j[part] is not None and j[part]["min"] >= 0, (part, j)
assert j["prompts_ms"]["min"] > 0 and j["prompts_ms"]["max"] <= j["ms"]["max"], j
# Every join has a role of its own and the voice the warm-up ran: no whole
# prompt is shared, every voice phase is.
cache = d["prompt_cache"]
assert cache["hits"] == 0 and cache["voice_misses"] == 1 and cache["voice_hits"] == 2 + 3, cache

d = run(PERSONAPLEX_PREFILL_GIVES_WAY="0", PERSONAPLEX_STEP_PRIORITY="high")
assert d["prompts_give_way"] is False and d["steps_first"] is True and d["failed"] == 0, d
assert d["choices"].get("PERSONAPLEX_PREFILL_GIVES_WAY") == "0", d["choices"]
print("ok")
