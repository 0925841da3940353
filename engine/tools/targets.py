#!/usr/bin/env python3
"""targets: the project's performance targets judged from the benchmarks'
JSON, as .ci/gpu/targets leaves them in one folder.

  targets.py RESULTS

Prints one JSON object: the device, and per target what was measured, the
limit and "met" (true, false, or null where the run it needs is not in
RESULTS, with "why"); then the names of those met, missed and not judged.
The targets (docs/performance.md, "The targets at a glance"), on the
released configuration:

- batch-1 frame (Mimi encode + LM step + Mimi decode, sampling on) at
  contexts 500 and 2900: median <= 6 ms, p99 <= 7 ms, the fastest weight
  format (b1-{bf16,int8,fp8}-{early,full}.json);
- 128 conversations at context 2900 with the fp8 KV cache: median <= 50 ms,
  p99 <= 60 ms (b128.json); the fp8 cache's logit error against a cache in
  the model's dtype, measured (its kv_cache.logit_error);
- 8-bit weights faster than bf16: int8 and fp8 each below bf16 at batch 1
  (both contexts) and at batch 64 (b64-*.json), and at batch 1 with the full
  context in <= 11 GiB of GPU memory;
- Mimi (bf16) <= 0.5 ms each way for one stream, <= 2 ms for 64
  (mimi.json);
- layers kept in host memory, measured (offload.json);
- the server in real time: 64 calls (int8, fp8 KV) and 128 calls (fp8 KV)
  with no call failed and no gap over 200 ms after a call's first second;
  64 live elements with no late frame (load-64/load.json,
  load-128/load.json);
- the reference side by side on the same weights (compare.json), measured.

A run on a CPU, or of other sizes (fewer conversations, a shorter context:
a rehearsal), gives its figures with "met": null.
"""

import json
import os
import sys

FRAME_MEDIAN_MS, FRAME_P99_MS = 6.0, 7.0
B128_MEDIAN_MS, B128_P99_MS = 50.0, 60.0
EIGHT_BIT_GIB = 11.0
MIMI_ONE_MS, MIMI_64_MS = 0.5, 2.0
GAP_MS = 200.0
CONTEXTS = {"early": 500, "full": 2900}
FORMATS = ("bf16", "int8", "fp8")


def load(results, name):
    try:
        with open(os.path.join(results, name)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def batch(run, size=None):
    """The run's result for `size` conversations (its first without one)."""
    for b in (run or {}).get("batches") or []:
        if isinstance(b, dict) and "error" not in b and (size is None or b.get("batch") == size):
            return b
    return None


def frame(run):
    b = batch(run)
    if not b or not isinstance(b.get("frame_ms"), dict):
        return None
    return {"median": round(b["frame_ms"]["median"], 3), "p99": round(b["frame_ms"]["p99"], 3)}


def unmeasured(target, why):
    return {"target": target, "met": None, "why": why}


def verdict(entry, met, run, **sizes):
    """entry with "met": met, or null with why where the run is a rehearsal
    (on a CPU, or of other sizes than the target's)."""
    device = str((run or {}).get("device", ""))
    if device and not device.startswith("cuda"):
        return {**entry, "met": None, "why": f"measured on {device}: the targets are a GPU's"}
    for what, (measured, wanted) in sizes.items():
        if measured != wanted:
            return {**entry, "met": None, "why": f"a rehearsal: {what} {measured}, not {wanted}"}
    return {**entry, "met": bool(met)}


def frame_targets(results):
    out = []
    for role, context in CONTEXTS.items():
        target = f"batch-1 frame at context {context}: median <= {FRAME_MEDIAN_MS:g} ms, p99 <= {FRAME_P99_MS:g}"
        runs = {f: load(results, f"b1-{f}-{role}.json") for f in FORMATS}
        frames = {f: m for f, m in ((f, frame(r)) for f, r in runs.items()) if m}
        if not frames:
            out.append(unmeasured(target, f"no b1-*-{role}.json (part frame)"))
            continue
        best = min(frames, key=lambda f: frames[f]["median"])
        m, run = frames[best], runs[best]
        entry = {"target": target, "median_ms": m["median"], "p99_ms": m["p99"], "weights": best,
                 "by_weights": frames}
        out.append(verdict(entry, m["median"] <= FRAME_MEDIAN_MS and m["p99"] <= FRAME_P99_MS, run,
                           context=(run.get("context"), context)))
    return out


def b128_targets(results):
    target = f"128 conversations at context 2900: median <= {B128_MEDIAN_MS:g} ms, p99 <= {B128_P99_MS:g}"
    accuracy = "fp8 KV cache's logit error against bf16 KV"
    run = load(results, "b128.json")
    if not run:
        return [unmeasured(target, "no b128.json (part batch)"), unmeasured(accuracy, "no b128.json (part batch)")]
    b, m = batch(run), frame(run)
    if not m:
        errors = [x.get("error") for x in run.get("batches") or [] if isinstance(x, dict)]
        out = [verdict({"target": target, "errors": errors}, False, run)]
    else:
        entry = {"target": target, "conversations": b.get("batch"), "context": run.get("context"),
                 "median_ms": m["median"], "p99_ms": m["p99"], "gpu_memory_gib": b.get("gpu_memory_gib")}
        out = [verdict(entry, m["median"] <= B128_MEDIAN_MS and m["p99"] <= B128_P99_MS, run,
                       conversations=(b.get("batch"), 128), context=(run.get("context"), CONTEXTS["full"]))]
    error = (run.get("kv_cache") or {}).get("logit_error")
    # Measured is what is asked: there is no limit to meet.
    out.append(verdict({"target": accuracy, "logit_error": error}, True, run) if error
               else unmeasured(accuracy, "b128.json has no kv_cache.logit_error"))
    return out


def below_bf16(results, fmt, size, names):
    target = f"{fmt} weights below bf16 at batch {size}"
    pairs, runs = [], []
    for name in names:
        run = load(results, name.format(fmt))
        ours, bf16 = frame(run), frame(load(results, name.format("bf16")))
        if ours and bf16:
            runs.append(run)
            pairs.append({"run": name.format(fmt), "median_ms": ours["median"], "bf16_median_ms": bf16["median"]})
    if not pairs:
        return unmeasured(target, f"no {' / '.join(n.format(fmt) for n in names)} beside bf16's")
    return verdict({"target": target, "runs": pairs}, all(p["median_ms"] < p["bf16_median_ms"] for p in pairs),
                   runs[0], conversations=(batch(runs[0]).get("batch"), size))


def eight_bit_targets(results):
    out = []
    for fmt in ("int8", "fp8"):
        out.append(below_bf16(results, fmt, 1, [f"b1-{{}}-{role}.json" for role in CONTEXTS]))
        out.append(below_bf16(results, fmt, 64, ["b64-{}.json"]))
        target = f"{fmt} weights at batch 1, context 2900, in <= {EIGHT_BIT_GIB:g} GiB"
        run = load(results, f"b1-{fmt}-full.json")
        gib = (batch(run) or {}).get("gpu_memory_gib_uncached")
        if gib is None:
            out.append(unmeasured(target, f"no GPU memory in b1-{fmt}-full.json"))
        else:
            out.append(verdict({"target": target, "gpu_memory_gib": round(gib, 2)}, gib <= EIGHT_BIT_GIB, run,
                               context=(run.get("context"), CONTEXTS["full"])))
    return out


def mimi_targets(results):
    run = load(results, "mimi.json")
    out = []
    for size, limit in ((1, MIMI_ONE_MS), (64, MIMI_64_MS)):
        target = f"Mimi at batch {size}: <= {limit:g} ms each way"
        rows = [r for r in (run or {}).get("results") or [] if r.get("batch") == size]
        if not rows:
            out.append(unmeasured(target, f"no batch {size} in mimi.json (part mimi)"))
            continue
        enc, dec = rows[0]["encode_ms"]["median"], rows[0]["decode_ms"]["median"]
        entry = {"target": target, "dtype": run.get("dtype"), "encode_ms": round(enc, 3), "decode_ms": round(dec, 3)}
        out.append(verdict(entry, enc <= limit and dec <= limit, run, config=(run.get("config"), "released")))
    return out


def offload_targets(results):
    target = "layers in host memory, measured beside the 8-bit options"
    run = load(results, "offload.json")
    m = frame(run)
    if not m:
        return [unmeasured(target, "no offload.json (part offload)")]
    entry = {"target": target, "offload": run.get("offload"), "weights": (run.get("weight_format") or {}).get("format"),
             "context": run.get("context"), "median_ms": m["median"], "p99_ms": m["p99"],
             "gpu_memory_gib_uncached": batch(run).get("gpu_memory_gib_uncached")}
    return [verdict(entry, True, run)]


def server_targets(results):
    out = []
    for calls, what in ((64, "int8, fp8 KV"), (128, "fp8 KV")):
        target = f"{calls} server calls ({what}): none failed, no gap over {GAP_MS:g} ms after 1 s"
        run = load(results, f"load-{calls}/load.json")
        rows = (run or {}).get("server") or []
        if not rows:
            out.append(unmeasured(target, f"no load-{calls}/load.json (part server)"))
            continue
        s = rows[0]
        gap, ok = s.get("max_gap_after_1s_ms"), s.get("ok")
        entry = {"target": target, "calls": s.get("calls"), "ok": ok, "failed": s.get("failed"),
                 "max_gap_after_1s_ms": gap, "handshake_s_median": s.get("handshake_s_median"),
                 "gpu_memory_mib_max": s.get("gpu_memory_mib_max")}
        met = not s.get("error") and ok == s.get("calls") and gap is not None and gap <= GAP_MS
        out.append(verdict(entry, met, run, calls=(s.get("calls"), calls)))
    target = "64 live elements in one process: no late frames"
    run = load(results, "load-64/load.json") or {}
    e = run.get("elements")
    if not e:
        out.append(unmeasured(target, "no elements in load-64/load.json (part server)"))
    else:
        met = e.get("reporting") == e.get("elements") and e.get("frames_late") == 0 and e.get("frames_processed", 0) > 0
        out.append(verdict({"target": target, **e}, met, run, elements=(e.get("elements"), 64)))
    return out


def reference_targets(results):
    target = "side by side with the reference (same weights, batch 1, context 500)"
    run = load(results, "compare.json")
    figures = (run or {}).get("figures")
    if not figures:
        return [unmeasured(target, "no compare.json (part reference)")]
    keep = ("frame_ms_median", "frame_ms_p99", "start_ms", "load_s", "gpu_memory_gib")
    # Measured is what is asked: the ratios are the figures.
    return [{"target": target, **{k: figures[k] for k in keep if k in figures}, "met": True}]


def device_name(results):
    names = [f"b1-{f}-{r}.json" for f in FORMATS for r in CONTEXTS] + ["b128.json", "mimi.json", "load-64/load.json"]
    for name in names:
        run = load(results, name)
        if run and run.get("device_name"):
            return run["device_name"]
    return None


def judge(results):
    targets = (frame_targets(results) + b128_targets(results) + eight_bit_targets(results) + mimi_targets(results)
               + offload_targets(results) + server_targets(results) + reference_targets(results))
    return {"device_name": device_name(results), "targets": targets,
            "met": [t["target"] for t in targets if t["met"] is True],
            "missed": [t["target"] for t in targets if t["met"] is False],
            "not_judged": [t["target"] for t in targets if t["met"] is None]}


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: targets.py RESULTS (the folder .ci/gpu/targets wrote)", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(judge(sys.argv[1]), indent=1))


if __name__ == "__main__":
    main()
