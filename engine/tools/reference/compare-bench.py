#!/usr/bin/env python3
"""compare-bench: our engine's figures next to the reference's, with the
ratio of each.

  compare-bench.py OURS.json REFERENCE.json

OURS.json is what personaplex-bench printed, REFERENCE.json what
reference-bench.py printed, on the same GPU. Prints one JSON object:
"figures" maps each figure to {"ours", "reference", "ratio"}, ratio being
reference / ours, so above 1 ours is faster (or smaller); a figure one side
lacks has "ratio": null and a "note".

- frame_ms median and p99: our batch-1 frame (Mimi encode + LM step + Mimi
  decode) against the reference's frame_ms (the same work);
  server_frame_ms: against the frame of the reference's server loop (which
  also runs a second Mimi).
- start_ms: our prompts prefilled (the default) against the reference's
  prompt phase (LMGen.step_system_prompts); start_stepped_ms: our prompts
  stepped one by one, against the same.
- gpu_memory_gib: device memory in use, batch 1, on both sides (ours at
  batch 1, the reference's at the end of its run); the reference's peak of
  allocated tensors is given alongside.
- load_s: loading the weight file to the GPU, when our run loaded one
  (personaplex-bench --write-random-weights).
- max_batch: conversations at once: our largest batch size that ran, the
  reference's 1 (no ratio).
"""

import json
import sys


def fail(message):
    print(f"compare-bench: {message}", file=sys.stderr)
    sys.exit(2)


def load(path, what):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        fail(f"cannot read {what} {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{what} {path} is not JSON: {e}")
    if not isinstance(data, dict):
        fail(f"{what} {path} is not a JSON object")
    return data


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def number(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def figure(ours, reference, unit, note=None):
    ours, reference = number(ours), number(reference)
    ratio = reference / ours if ours and reference is not None else None
    out = {"ours": ours, "reference": reference, "unit": unit, "ratio": ratio}
    if ratio is None:
        missing = [side for side, v in (("ours", ours), ("reference", reference)) if v is None]
        note = note or (f"no figure from {' and '.join(missing)}" if missing else "ours is 0")
    if note:
        out["note"] = note
    return out


def batch_entry(ours, size):
    for b in ours.get("batches") or []:
        if isinstance(b, dict) and b.get("batch") == size and "error" not in b:
            return b
    return None


def compare(ours, ref):
    b1 = batch_entry(ours, 1) or {}
    no_b1 = None if b1 else "our run has no batch-1 result"
    figures = {
        "frame_ms_median": figure(get(b1, "frame_ms", "median"),
                                  get(ref, "frame_ms", "median"), "ms", no_b1),
        "frame_ms_p99": figure(get(b1, "frame_ms", "p99"), get(ref, "frame_ms", "p99"), "ms", no_b1),
        "server_frame_ms_median": figure(get(b1, "frame_ms", "median"),
                                         get(ref, "server_frame_ms", "median"), "ms", no_b1),
        "start_ms": figure(get(ours, "prompt", "prefill", "ms", "median"),
                           get(ref, "prompt", "ms", "median"), "ms"),
        "start_stepped_ms": figure(get(ours, "prompt", "stepped", "ms", "median"),
                                   get(ref, "prompt", "ms", "median"), "ms"),
        "gpu_memory_gib": figure(get(b1, "gpu_memory_gib"), get(ref, "gpu_memory_in_use_gib"),
                                 "GiB", no_b1),
    }
    figures["gpu_memory_gib"]["reference_peak_allocated"] = number(get(ref, "gpu_memory_gib"))

    loaded = ours.get("weights") not in (None, "random in memory")
    figures["load_s"] = figure(get(ours, "load_s") if loaded else None, get(ref, "load_s"), "s",
                               None if loaded else "our run built its weights in memory: "
                               "run personaplex-bench with --write-random-weights FILE")

    ran = [b["batch"] for b in ours.get("batches") or []
           if isinstance(b, dict) and number(b.get("batch")) and "error" not in b]
    figures["max_batch"] = {"ours": max(ran) if ran else None,
                            "reference": number(ref.get("max_batch")) or 1,
                            "unit": "conversations",
                            "note": "the reference serves one conversation per process"}

    notes = []
    if ours.get("dtype") != ref.get("dtype"):
        notes.append(f"dtypes differ: ours {ours.get('dtype')}, reference {ref.get('dtype')}")
    if number(ours.get("context")) and ours.get("context") != ref.get("context"):
        notes.append(f"our conversations were filled to {ours['context']} steps before timing, "
                     f"the reference's to {ref.get('context')} (its attention spans its whole "
                     "3000-step cache at any length)")
    if ref.get("fallbacks"):
        notes.append("the reference ran with stand-ins: " + "; ".join(ref["fallbacks"]))
    return {
        "ratio": "reference / ours: above 1, ours is faster or smaller",
        "ours": {"device": ours.get("device"), "dtype": ours.get("dtype"),
                 "steps": ours.get("steps"), "weights": ours.get("weights")},
        "reference": {"device": ref.get("device"), "device_name": ref.get("device_name"),
                      "dtype": ref.get("dtype"), "steps": ref.get("steps"),
                      "commit": ref.get("reference_commit"), "weights": ref.get("weights")},
        "figures": figures,
        "notes": notes,
    }


def main(argv):
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: compare-bench.py OURS.json REFERENCE.json", file=sys.stderr)
        return 2
    ours = load(argv[0], "our bench's JSON")
    ref = load(argv[1], "the reference bench's JSON")
    if "batches" not in ours:
        fail(f"{argv[0]} has no \"batches\": not personaplex-bench's output")
    if "frame_ms" not in ref or "prompt" not in ref:
        fail(f"{argv[1]} has no \"frame_ms\" or \"prompt\": not reference-bench.py's output")
    json.dump(compare(ours, ref), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
