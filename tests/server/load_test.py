#!/usr/bin/env python3
"""pipelines/server/chat-load.py against personaplex-server on the fixtures'
tiny model (CPU): two batched calls at once, each streaming the fixtures'
user audio for a few seconds, get the handshake and one audio page per 80 ms
frame in real time, also with roles of their own arriving one after the
other; a third call is told busy; bad arguments fail cleanly.
Exits 77 (skipped) without the fixtures."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_test import PACED, Server, skip  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(HERE, "..", "..", "pipelines", "server", "chat-load.py")


def load(url, ogg, *extra):
    p = subprocess.run([sys.executable, LOAD, url, "--audio", ogg, *extra], capture_output=True, text=True,
                       timeout=300)
    print(p.stderr, end="")
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def main():
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        skip("the reference fixtures are not there (PERSONAPLEX_FIXTURES)")
    tmp = tempfile.mkdtemp(prefix="pp-load-")
    server = None
    try:
        voices = os.path.join(tmp, "voices")
        os.mkdir(voices)
        shutil.copy(os.path.join(fixtures, "lm", "voice.pt"), os.path.join(voices, "NATF2.pt"))
        ogg = os.path.join(tmp, "user.ogg")
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=" + os.path.join(fixtures, "lm", "user.wav"),
                        "!", "decodebin", "!", "audioconvert", "!", "audioresample", "!", "opusenc", "!",
                        "oggmux", "!", "filesink", "location=" + ogg], check=True, timeout=60)
        f = fixtures
        server_args = [
            os.environ["PERSONAPLEX_SERVER"], "--http", "--host", "127.0.0.1", "--port", "0",
            "--max-sessions", "2", "--batch",
            "--lm-weights", f + "/lm/weights.safetensors", "--lm-config", f + "/lm/config.json",
            "--mimi-weights", f + "/mimi/weights.safetensors", "--mimi-config", f + "/mimi/config.json",
            "--tokenizer", f + "/lm/tokenizer.model", "--voices-dir", voices, "--device", "cpu"]
        server = Server(server_args)
        url = server.url.rstrip("/")

        rc, out, _ = load(url, ogg, "--sessions", "2", "--seconds", "4")
        print(json.dumps(out["summary"]))
        assert rc == 0, out
        for s in out["sessions"]:
            assert s["handshake_s"] < 60, s
            # 4 s of calls: about 50 frames, in real time (12.5 per s).
            assert s["pages"] >= (30 if PACED else 1), s
            assert not PACED or 9 <= s["pages_per_s"] <= 16, s
            assert not PACED or s["first_audio_s"] < 2, s

        # Roles of their own, the second call arriving while the first talks:
        # its prompts run beside the first call's steps.
        rc, out, _ = load(url, ogg, "--sessions", "2", "--seconds", "3", "--distinct-prompts", "--stagger", "1")
        print(json.dumps(out["summary"]))
        assert rc == 0 and out["summary"]["distinct_prompts"], out
        assert isinstance(out["summary"]["stalls"], list), out["summary"]
        for s in out["sessions"]:
            assert s["pages"] >= (20 if PACED else 1), s

        rc, out, _ = load(url, ogg, "--sessions", "3", "--seconds", "2")
        assert rc == 1, out
        busy = [s for s in out["sessions"] if "busy" in s.get("error", "")]
        assert len(busy) == 1, out["sessions"]

        rc, out, err = load(url, ogg, "--voice", "../x.pt")
        assert rc == 1 and "400" in out["sessions"][0]["error"], out
        rc, out, err = load(url, os.path.join(fixtures, "lm", "config.json"))
        assert rc == 2 and "Ogg" in err, err
        server.stop()
        server = None

        # 8-bit weights, an fp8 KV cache, Mimi in bf16 and a layer kept in host
        # memory, as a server short of memory runs.
        server = Server(server_args + ["--weight-format", "int8", "--kv-cache", "fp8", "--mimi-dtype", "bfloat16",
                                       "--offload-layers", "1"])
        rc, out, _ = load(server.url.rstrip("/"), ogg, "--sessions", "2", "--seconds", "3")
        print(json.dumps(out["summary"]))
        assert rc == 0, out
        for s in out["sessions"]:
            assert s["pages"] >= (20 if PACED else 1) and s["text_pieces"] > 0, s
        print("ok")
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
