#!/usr/bin/env python3
"""Runs personaplex-bench on the CPU with the fixture configurations and
checks its JSON: keys present, times positive, one entry per batch size, the
context it was filled to, and an impossible batch size reported as an error
without stopping the run."""
import json
import os
import subprocess
import sys
import tempfile

bench, fixtures = sys.argv[1], os.environ.get("PERSONAPLEX_FIXTURES", "")
if not fixtures or not os.path.isfile(os.path.join(fixtures, "lm", "config.json")):
    print("no fixtures: skipped")
    sys.exit(77)

with tempfile.TemporaryDirectory() as tmp:
    weights = os.path.join(tmp, "lm.safetensors")
    # The last batch size is far past any memory: its allocation fails.
    out = subprocess.run([bench, "--device", "cpu", "--fixtures", fixtures, "--batch", f"1,3,{10**12}",
                          "--context", "40",
                          "--steps", "3", "--warmup", "1", "--write-random-weights", weights],
                         check=True, capture_output=True, text=True).stdout
    assert os.path.isfile(weights), "weights file not written"
d = json.loads(out)
for key in ["device", "dtype", "load_s", "weights_write_s", "prompt", "batches", "steps", "context"]:
    assert key in d, key
assert d["load_s"] > 0 and d["weights_write_s"] > 0
for mode in ["stepped", "prefill"]:
    p = d["prompt"][mode]
    assert p["ms"]["median"] > 0 and p["model_steps"] > 0, p
assert d["prompt"]["stepped"]["model_steps"] == d["prompt"]["prefill"]["model_steps"]
assert d["context"] == 40, d["context"]
assert [b["batch"] for b in d["batches"]] == [1, 3, 10**12], d["batches"]
failed = d["batches"].pop()
assert failed["error"] and "frame_ms" not in failed, failed
# On the CPU the batched step runs eagerly, stage by stage.
stages = ["mimi_encode", "inputs", "embeddings", "temporal", "sampling", "depformer", "mimi_decode"]
for b in d["batches"]:
    assert "error" not in b, b
    assert b["cuda_graphs"] is False and b["graph_steps"] == 0, b
    assert b["frame_ms"]["median"] > 0 and b["frame_ms"]["p99"] >= b["frame_ms"]["median"]
    for s in stages:
        assert b["stage_ms"][s]["median"] > 0, (b["batch"], s)
print("personaplex-bench JSON OK")
