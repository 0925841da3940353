#!/usr/bin/env python3
"""The tools that measure the reference PyTorch implementation next to ours
(engine/tools/reference/), without PyTorch: compare-bench.py on small JSON
files, reference-bench.py's argument and checkout errors, fetch-reference
on a local git repository."""

import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_ROOT = os.environ.get("PERSONAPLEX_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(SOURCE_ROOT, "engine", "tools", "reference")
COMPARE = os.path.join(TOOLS, "compare-bench.py")
BENCH = os.path.join(TOOLS, "reference-bench.py")
FETCH = os.path.join(TOOLS, "fetch-reference")


def run(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env)


def have_torch():
    return run(sys.executable, "-c", "import torch").returncode == 0


OURS = {
    "device": "cuda:0", "dtype": "bfloat16", "steps": 30, "context": 0,
    "weights": "/data/lm.safetensors", "load_s": 4.0,
    "prompt": {"prefill": {"ms": {"median": 80.0, "p99": 90.0}, "model_steps": 71},
               "stepped": {"ms": {"median": 560.0, "p99": 600.0}, "model_steps": 71}},
    "batches": [
        {"batch": 1, "frame_ms": {"median": 14.0, "p99": 20.0}, "gpu_memory_gib": 19.0},
        {"batch": 8, "frame_ms": {"median": 16.0, "p99": 22.0}, "gpu_memory_gib": 31.0},
        {"batch": 64, "error": "CUDA out of memory"},
    ],
}
REFERENCE = {
    "device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3", "dtype": "bfloat16",
    "reference_commit": "3428dfd95309a7f3c84fd93259ded0f810d1ff91", "steps": 100, "context": 0,
    "frame_ms": {"median": 28.0, "p99": 50.0}, "server_frame_ms": {"median": 35.0, "p99": 60.0},
    "prompt": {"ms": {"median": 2000.0, "p99": 2100.0}}, "prompt_ms": 2000.0,
    "gpu_memory_gib": 17.5, "gpu_memory_in_use_gib": 19.0, "load_s": 10.0, "max_batch": 1,
    "fallbacks": [],
}


class CompareBench(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def compare(self, ours, reference):
        r = run(sys.executable, COMPARE, self.write("ours.json", ours),
                self.write("ref.json", reference))
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_ratios(self):
        f = self.compare(OURS, REFERENCE)["figures"]
        self.assertAlmostEqual(f["frame_ms_median"]["ratio"], 2.0)
        self.assertEqual(f["frame_ms_median"]["ours"], 14.0)
        self.assertAlmostEqual(f["frame_ms_p99"]["ratio"], 2.5)
        self.assertAlmostEqual(f["server_frame_ms_median"]["ratio"], 2.5)
        self.assertAlmostEqual(f["start_ms"]["ratio"], 25.0)
        self.assertEqual(f["start_ms"]["ours"], 80.0)
        self.assertAlmostEqual(f["start_stepped_ms"]["ratio"], 2000.0 / 560.0)
        self.assertAlmostEqual(f["gpu_memory_gib"]["ratio"], 1.0)
        self.assertEqual(f["gpu_memory_gib"]["reference_peak_allocated"], 17.5)
        self.assertAlmostEqual(f["load_s"]["ratio"], 2.5)
        self.assertEqual(f["max_batch"]["ours"], 8)  # 64 did not run
        self.assertEqual(f["max_batch"]["reference"], 1)

    def test_missing_figures(self):
        ours = dict(OURS, weights="random in memory",
                    batches=[{"batch": 1, "error": "CUDA out of memory"}])
        reference = dict(REFERENCE, load_s=None)
        out = self.compare(ours, reference)
        f = out["figures"]
        self.assertIsNone(f["frame_ms_median"]["ratio"])
        self.assertIn("batch-1", f["frame_ms_median"]["note"])
        self.assertIsNone(f["load_s"]["ratio"])
        self.assertIn("--write-random-weights", f["load_s"]["note"])
        self.assertIsNone(f["max_batch"]["ours"])
        self.assertAlmostEqual(f["start_ms"]["ratio"], 25.0)

    def test_notes(self):
        out = self.compare(dict(OURS, context=500),
                           dict(REFERENCE, fallbacks=["einops: missing"]))
        self.assertTrue(any("500" in n for n in out["notes"]), out["notes"])
        self.assertTrue(any("einops" in n for n in out["notes"]), out["notes"])

    def test_bad_input(self):
        good = self.write("ok.json", OURS)
        for args in ([good], [good, os.path.join(self.tmp, "absent.json")],
                     [good, self.write("bad.json", "{")], [good, good]):
            r = run(sys.executable, COMPARE, *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertNotIn("Traceback", r.stderr)
            self.assertTrue(r.stderr.strip())


class ReferenceBench(unittest.TestCase):
    def test_compiles(self):
        for path in (BENCH, COMPARE):
            py_compile.compile(path, cfile=os.path.join(tempfile.gettempdir(),
                                                        "reference-tools-check.pyc"), doraise=True)

    def bench(self, *args):
        return run(sys.executable, BENCH, *args)

    def test_not_a_checkout(self):
        with tempfile.TemporaryDirectory() as tmp:
            for directory in (os.path.join(tmp, "absent"), tmp):
                r = self.bench("--reference", directory)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("fetch-reference", r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_argument_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            make_checkout(tmp)
            for args in (["--steps", "x"], ["--steps", "0"], ["--warmup", "-1"],
                         ["--weights", "a", "--write-random-weights", "b"],
                         ["--weights", os.path.join(tmp, "absent.safetensors")],
                         ["--write-random-weights", os.path.join(tmp, "no", "dir", "lm.safetensors")]):
                r = self.bench("--reference", tmp, *args)
                self.assertEqual(r.returncode, 2, (args, r.stderr))
                self.assertNotIn("Traceback", r.stderr)
            r = self.bench()
            self.assertEqual(r.returncode, 2)
            self.assertIn("--reference", r.stderr)

    @unittest.skipIf(have_torch(), "this python has torch")
    def test_no_torch(self):
        with tempfile.TemporaryDirectory() as tmp:
            make_checkout(tmp)
            r = self.bench("--reference", tmp)
            self.assertEqual(r.returncode, 1)
            self.assertIn("PyTorch is needed", r.stderr)
            self.assertNotIn("Traceback", r.stderr)


def make_checkout(root):
    """The files reference-bench.py looks for in a checkout (empty)."""
    for f in ("moshi/moshi/__init__.py", "moshi/moshi/models/lm.py", "moshi/moshi/models/loaders.py",
              "moshi/moshi/models/compression.py", "moshi/moshi/utils/compile.py"):
        path = os.path.join(root, f)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()


@unittest.skipIf(shutil.which("git") is None, "no git")
class FetchReference(unittest.TestCase):
    def test_local_repository(self):
        with tempfile.TemporaryDirectory() as tmp:
            repo = os.path.join(tmp, "upstream")
            os.makedirs(repo)
            make_checkout(repo)
            env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                       GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
                       GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
            for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "reference"]):
                r = run("git", "-C", repo, *cmd, env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
            sha = run("git", "-C", repo, "rev-parse", "HEAD", env=env).stdout.strip()

            dest = os.path.join(tmp, "ref")
            r = run(FETCH, "--from", repo, "--commit", sha, dest, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(dest, ".reference-commit")) as f:
                self.assertEqual(f.read().strip(), sha)
            self.assertTrue(os.path.isfile(os.path.join(dest, "moshi/moshi/models/lm.py")))
            r = run(FETCH, "--from", repo, "--commit", sha, dest, env=env)  # again: nothing to do
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("already", r.stdout)

            # Another commit into the same directory: refused.
            r = run(FETCH, "--from", repo, "--commit", "0" * 40, dest, env=env)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not empty", r.stderr)
            # A repository without the reference's files.
            other = os.path.join(tmp, "other")
            os.makedirs(other)
            for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
                run("git", "-C", other, *cmd, env=env)
            osha = run("git", "-C", other, "rev-parse", "HEAD", env=env).stdout.strip()
            r = run(FETCH, "--from", other, "--commit", osha, os.path.join(tmp, "ref2"), env=env)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not the PersonaPlex reference", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
