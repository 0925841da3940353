#!/usr/bin/env python3
"""The performance targets' judge (engine/tools/targets.py) on small JSON
files of the benchmarks' shapes: each verdict met, missed, or null with why
(a run absent, on a CPU, or of other sizes).

  test_targets.py             the judge
  test_targets.py rehearsal   .ci/gpu/targets end to end on a CPU with the
                              fixtures' small models and this build (skipped
                              without the fixtures)"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_ROOT = os.environ.get("PERSONAPLEX_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
JUDGE = os.path.join(SOURCE_ROOT, "engine", "tools", "targets.py")
RUNNER = os.path.join(SOURCE_ROOT, ".ci", "gpu", "targets")
SKIP = 77


def bench(median, p99, batch=1, context=500, device="cuda", **extra):
    b = {"batch": batch, "frame_ms": {"median": median, "p99": p99}, "gpu_memory_gib_uncached": extra.pop("gib", 9.0)}
    return {"device": device, "device_name": "NVIDIA H200", "context": context, "batches": [b], **extra}


def mimi(one, sixty_four, config="released"):
    rows = [{"batch": n, "encode_ms": {"median": ms}, "decode_ms": {"median": ms}}
            for n, ms in ((1, one), (64, sixty_four))]
    return {"device": "cuda", "dtype": "bfloat16", "config": config, "results": rows}


def load_run(calls, ok, gap, elements=None, device="cuda"):
    return {"device": device, "device_name": "NVIDIA H200",
            "server": [{"calls": calls, "ok": ok, "failed": calls - ok, "max_gap_after_1s_ms": gap}],
            "elements": elements}


class Judge(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pp-targets-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f)

    def judge(self):
        p = subprocess.run([sys.executable, JUDGE, self.dir], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        return out, {t["target"]: t for t in out["targets"]}

    def find(self, targets, start):
        found = [t for name, t in targets.items() if name.startswith(start)]
        self.assertEqual(len(found), 1, (start, list(targets)))
        return found[0]

    def test_nothing_run_is_not_judged(self):
        out, targets = self.judge()
        self.assertEqual(out["met"], [])
        self.assertEqual(out["missed"], [])
        self.assertEqual(len(out["not_judged"]), len(targets))
        self.assertGreaterEqual(len(targets), 17)
        self.assertIn("part frame", self.find(targets, "batch-1 frame at context 500")["why"])
        self.assertIn("part server", self.find(targets, "64 server calls")["why"])

    def test_batch_one_frame_takes_the_fastest_format(self):
        self.write("b1-bf16-early.json", bench(8.0, 8.3))
        self.write("b1-int8-early.json", bench(5.5, 5.8))
        self.write("b1-fp8-early.json", bench(5.9, 6.2))
        self.write("b1-bf16-full.json", bench(8.4, 8.8, context=2900, gib=17.0))
        self.write("b1-int8-full.json", bench(5.8, 7.2, context=2900, gib=10.1))  # p99 over 7
        self.write("b1-fp8-full.json", bench(6.3, 6.6, context=2900, gib=11.5))
        out, targets = self.judge()
        early = self.find(targets, "batch-1 frame at context 500")
        self.assertEqual((early["weights"], early["median_ms"], early["met"]), ("int8", 5.5, True))
        full = self.find(targets, "batch-1 frame at context 2900")
        self.assertEqual((full["weights"], full["met"]), ("int8", False))
        self.assertTrue(self.find(targets, "int8 weights below bf16 at batch 1")["met"])
        self.assertTrue(self.find(targets, "fp8 weights below bf16 at batch 1")["met"])
        self.assertTrue(self.find(targets, "int8 weights at batch 1, context 2900")["met"])
        fp8_memory = self.find(targets, "fp8 weights at batch 1, context 2900")
        self.assertEqual((fp8_memory["gpu_memory_gib"], fp8_memory["met"]), (11.5, False))
        self.assertIn(full["target"], out["missed"])
        self.assertIn(early["target"], out["met"])

    def test_eight_bit_at_batch_64_must_be_below_bf16(self):
        self.write("b64-bf16.json", bench(25.2, 26.0, batch=64, context=2900))
        self.write("b64-int8.json", bench(26.0, 26.5, batch=64, context=2900))
        self.write("b64-fp8.json", bench(25.1, 25.9, batch=64, context=2900))
        _, targets = self.judge()
        self.assertFalse(self.find(targets, "int8 weights below bf16 at batch 64")["met"])
        self.assertTrue(self.find(targets, "fp8 weights below bf16 at batch 64")["met"])

    def test_128_conversations(self):
        run = bench(48.7, 50.1, batch=128, context=2900, gib=116.7)
        run["kv_cache"] = {"logit_error": {"text": {"greedy_agree": 0.998}}}
        self.write("b128.json", run)
        _, targets = self.judge()
        t = self.find(targets, "128 conversations")
        self.assertEqual((t["conversations"], t["median_ms"], t["met"]), (128, 48.7, True))
        self.assertTrue(self.find(targets, "fp8 KV cache's logit error")["met"])
        # Out of memory: missed, with the error.
        self.write("b128.json", {"device": "cuda", "context": 2900,
                                 "batches": [{"batch": 128, "error": "CUDA out of memory"}]})
        _, targets = self.judge()
        t = self.find(targets, "128 conversations")
        self.assertEqual((t["met"], t["errors"]), (False, ["CUDA out of memory"]))

    def test_rehearsals_are_not_judged(self):
        self.write("b128.json", bench(10.0, 11.0, batch=3, context=20))
        self.write("b1-int8-early.json", bench(5.0, 5.5, context=500, device="cpu"))
        self.write("mimi.json", mimi(0.3, 1.0, config="fixtures/mimi/config.json"))
        _, targets = self.judge()
        t = self.find(targets, "128 conversations")
        self.assertIsNone(t["met"])
        self.assertIn("conversations 3, not 128", t["why"])
        self.assertIn("measured on cpu", self.find(targets, "batch-1 frame at context 500")["why"])
        self.assertIsNone(self.find(targets, "Mimi at batch 1")["met"])

    def test_mimi(self):
        self.write("mimi.json", mimi(0.45, 2.4))
        _, targets = self.judge()
        self.assertTrue(self.find(targets, "Mimi at batch 1")["met"])
        self.assertFalse(self.find(targets, "Mimi at batch 64")["met"])

    def test_server_calls_and_elements(self):
        elements = {"elements": 64, "reporting": 64, "frames_processed": 34112, "frames_late": 0}
        self.write("load-64/load.json", load_run(64, 64, 160.0, elements))
        self.write("load-128/load.json", load_run(128, 127, 150.0))
        _, targets = self.judge()
        self.assertTrue(self.find(targets, "64 server calls")["met"])
        self.assertFalse(self.find(targets, "128 server calls")["met"])  # one call failed
        self.assertTrue(self.find(targets, "64 live elements")["met"])
        self.write("load-64/load.json", load_run(64, 64, 250.0, {**elements, "frames_late": 3}))
        _, targets = self.judge()
        self.assertFalse(self.find(targets, "64 server calls")["met"])  # a gap over 200 ms
        self.assertFalse(self.find(targets, "64 live elements")["met"])

    def test_reference_side_by_side(self):
        figures = {"frame_ms_median": {"ours": 8.0, "reference": 25.3, "ratio": 3.16}}
        self.write("compare.json", {"figures": figures})
        _, targets = self.judge()
        t = self.find(targets, "side by side with the reference")
        self.assertEqual((t["frame_ms_median"]["ratio"], t["met"]), (3.16, True))

    def test_usage(self):
        p = subprocess.run([sys.executable, JUDGE], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage", p.stderr)


def rehearsal():
    """.ci/gpu/targets on a CPU: every part but the reference's runs, and
    every target it covers has its figures, judged null (a CPU's)."""
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    build = os.environ.get("PERSONAPLEX_BUILD_ROOT", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        print("skipped: the reference fixtures are not there (PERSONAPLEX_FIXTURES)", file=sys.stderr)
        sys.exit(SKIP)
    out = tempfile.mkdtemp(prefix="pp-targets-rehearsal-")
    try:
        env = dict(os.environ, PERSONAPLEX_BUILD_DIR=build, PERSONAPLEX_TARGETS_DEVICE="cpu",
                   PERSONAPLEX_FIXTURES_DIR=fixtures, PERSONAPLEX_TARGETS_PARTS="frame,batch,mimi,offload,server",
                   GST_REGISTRY_1_0=os.path.join(out, "registry.bin"))
        p = subprocess.run(["bash", RUNNER, out], capture_output=True, text=True, timeout=500, env=env)
        assert p.returncode == 0, p.stderr
        result = json.loads(p.stdout)
        with open(os.path.join(out, "targets.json")) as f:
            assert json.load(f) == result
        targets = {t["target"]: t for t in result["targets"]}
        assert result["met"] == [] and result["missed"] == [], result
        measured = [t for t in targets.values() if "measured on cpu" in t.get("why", "")]
        # fp8 weights need a newer libtorch than some CPU builds have, the
        # reference is not run, and a CPU has no GPU memory to weigh.
        not_run = [t for t in targets.values() if t not in measured]
        for t in not_run:
            assert any(w in t["why"] for w in ("fp8", "part reference", "no GPU memory")), t
        for start in ("batch-1 frame at context 500", "batch-1 frame at context 2900", "128 conversations",
                      "int8 weights below bf16 at batch 1", "int8 weights below bf16 at batch 64", "Mimi at batch 1",
                      "Mimi at batch 64", "layers in host memory", "64 server calls", "128 server calls",
                      "64 live elements"):
            found = [t for name, t in targets.items() if name.startswith(start)]
            assert len(found) == 1 and found[0] in measured, (start, found)
        assert targets_value(targets, "64 server calls", "ok") == 2
        assert targets_value(targets, "64 live elements", "frames_processed") > 0
        print(json.dumps({"measured_on_cpu": len(measured), "not_run": len(not_run)}))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def targets_value(targets, start, key):
    return next(t for name, t in targets.items() if name.startswith(start))[key]


if __name__ == "__main__":
    if sys.argv[1:] == ["rehearsal"]:
        rehearsal()
    else:
        unittest.main()
