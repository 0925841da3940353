#!/usr/bin/env python3
"""Runs personaplex-bench on the CPU with the fixture configurations and
checks its JSON: keys present, times positive, one entry per batch size, the
context it was filled to, and an impossible batch size reported as an error
without stopping the run. With --weights int8: the weight bytes and the logit
error against the unquantized model of the same weights (also batched, for
17 conversations); with
--offload-layers too, the bytes kept in host memory. With --kv-cache fp8
(on the fixture model's own weights): the cache's bytes and its logit error
against a cache in the model's dtype. With --mimi-dtype bfloat16: said in the
JSON."""
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
for mode in ["stepped", "prefill"]:
    p = d["prompt"][mode]
    assert 0 < p["queued_ms"]["median"] <= p["ms"]["median"], p
# The voice and the role each one chunk, every step in one.
assert d["prompt"]["stepped"]["chunks"] == 0, d["prompt"]
assert d["prompt"]["prefill"]["chunks"] == 2, d["prompt"]
assert d["prompt"]["prefill"]["chunked_steps"] == d["prompt"]["prefill"]["model_steps"], d["prompt"]
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
assert "weight_format" not in d and "offload" not in d
assert d["mimi_dtype"] == "float32", d["mimi_dtype"]

# 8-bit linear weights, loaded from the written file (and again unquantized
# for the comparison).
with tempfile.TemporaryDirectory() as tmp:
    weights = os.path.join(tmp, "lm.safetensors")
    out = subprocess.run([bench, "--device", "cpu", "--fixtures", fixtures, "--batch", "1", "--steps", "2",
                          "--warmup", "1", "--weights", "int8", "--write-random-weights", weights,
                          "--offload-layers", "1"],
                         check=True, capture_output=True, text=True).stdout
    too_many = subprocess.run([bench, "--device", "cpu", "--fixtures", fixtures, "--batch", "1", "--steps", "1",
                               "--lm-weights", weights, "--offload-layers", "99"], capture_output=True, text=True)
    assert too_many.returncode != 0 and "cannot keep 99 layers in host memory" in too_many.stderr, too_many.stderr
q = json.loads(out)
assert "error" not in q["batches"][0] and q["batches"][0]["frame_ms"]["median"] > 0, q["batches"]
w = q["weight_format"]
assert w["format"] == "int8" and w["reference_dtype"] == "float32", w
# Embeddings stay float: well under the float size, well over a quarter.
assert 0.25 * w["reference_lm_weight_bytes"] < w["lm_weight_bytes"] < 0.9 * w["reference_lm_weight_bytes"], w
# The last layer's four linear weights in host memory.
o = q["offload"]
assert o["layers"] == 1 and 0 < o["host_bytes"] < w["lm_weight_bytes"], o
assert o["device_lm_weight_bytes"] + o["host_bytes"] == w["lm_weight_bytes"], o
e = w["logit_error"]
assert e["steps"] == 16, e
for kind in ["text", "audio"]:
    k = e[kind]
    assert 0 < k["mean_abs"] <= k["max_abs"], k
    assert k["max_rel"] < 0.2 and k["mean_rel"] < 0.03 and k["greedy_agree"] >= 0.9, (kind, k)

assert "logit_error_batched" not in w, w  # one conversation: nothing batched to compare

# 17 conversations or more: also the logit error of 17 stepped together (the
# products' many-row paths), compared while their tokens agree.
out = subprocess.run([bench, "--device", "cpu", "--fixtures", fixtures, "--batch", "17", "--steps", "1",
                      "--warmup", "0", "--weights", "int8"], check=True, capture_output=True, text=True).stdout
b = json.loads(out)["weight_format"]["logit_error_batched"]
assert b["conversations"] == 17 and b["steps"] == 16, b
# Every row's first step, then those still in step with the float model.
assert 17 <= b["text_rows_compared"] <= 17 * 16 and b["audio_rows_compared"] > 0, b
for kind in ["text", "audio"]:
    k = b[kind]
    assert 0 < k["mean_abs"] <= k["max_abs"], k
    assert k["mean_rel"] < 0.03 and k["greedy_agree"] >= 0.9, (kind, k)

# fp8 runs where this libtorch has float8, and says why not otherwise.
fp8 = subprocess.run([bench, "--device", "cpu", "--fixtures", fixtures, "--batch", "1", "--steps", "1",
                      "--warmup", "0", "--weights", "fp8"], capture_output=True, text=True)
if fp8.returncode == 0:
    f = json.loads(fp8.stdout)["weight_format"]
    assert f["format"] == "fp8" and f["logit_error"]["text"]["greedy_agree"] >= 0.7, f
else:
    assert "float8" in fp8.stderr, fp8.stderr

# An fp8 KV cache on the fixture model's own weights: a quarter of the fp32
# cache's bytes (plus a scale per vector) and logits close to it; Mimi in bf16.
out = subprocess.run([bench, "--device", "cpu", "--lm-config", os.path.join(fixtures, "lm", "config.json"),
                      "--mimi-config", os.path.join(fixtures, "mimi", "config.json"),
                      "--lm-weights", os.path.join(fixtures, "lm", "weights.safetensors"),
                      "--batch", "2", "--steps", "2", "--warmup", "1", "--context", "20", "--kv-cache", "fp8",
                      "--mimi-dtype", "bfloat16"],
                     check=True, capture_output=True, text=True).stdout
k = json.loads(out)
assert "error" not in k["batches"][0] and k["batches"][0]["frame_ms"]["median"] > 0, k["batches"]
assert "weight_format" not in k
assert k["mimi_dtype"] == "bfloat16", k["mimi_dtype"]
c = k["kv_cache"]
assert c["format"] == "fp8", c
assert 0.25 < c["bytes_per_conversation"] / c["reference_bytes_per_conversation"] < 0.35, c
e = c["logit_error"]
assert e["steps"] >= 16, e
for kind in ["text", "audio"]:
    x = e[kind]
    assert 0 < x["mean_abs"] <= x["max_abs"], x
    assert x["mean_rel"] < 0.02 and x["greedy_agree"] >= 0.95, (kind, x)

bad = subprocess.run([bench, "--kv-cache", "int4"], capture_output=True, text=True)
assert bad.returncode == 2 and "auto or fp8" in bad.stderr, bad.stderr
bad = subprocess.run([bench, "--weights", "int4"], capture_output=True, text=True)
assert bad.returncode == 2 and "bf16, int8 or fp8" in bad.stderr, bad.stderr
bad = subprocess.run([bench, "--mimi-dtype", "int4"], capture_output=True, text=True)
assert bad.returncode == 2 and "--mimi-dtype: unknown dtype 'int4'" in bad.stderr, bad.stderr
bad = subprocess.run([bench, "--offload-layers", "2"], capture_output=True, text=True)
assert bad.returncode == 2 and "--offload-layers needs the weights from a file" in bad.stderr, bad.stderr
print("personaplex-bench JSON OK")
