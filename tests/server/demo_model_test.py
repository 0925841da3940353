#!/usr/bin/env python3
"""personaplex-server started with no model: it makes (or reuses) the demo
model, says so and how to get the real one, lists its voice, and answers a
call over the websocket protocol with one audio page per 80 ms frame. Needs
no fixtures: the demo model is made into a fresh cache directory."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request

# Under a sanitizer (.ci/sanitize) calls run far slower than real time:
# what they bring is checked, not their pace (or, there, RSS).
PACED = not os.environ.get("PERSONAPLEX_SANITIZED")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
LOAD = os.path.join(ROOT, "pipelines", "server", "chat-load.py")
QUESTION = os.path.join(ROOT, "pipelines", "demo", "question.wav")


class Server:
    """personaplex-server on a free port; `lines` holds its output."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines, self.url = [], None
        for line in self.proc.stdout:
            print("  server |", line.rstrip(), flush=True)
            self.lines.append(line)
            if line.startswith("Listening on "):
                self.url = line[len("Listening on "):].strip()
                break
        assert self.url, "the server did not start"
        threading.Thread(target=self._echo, daemon=True).start()

    def _echo(self):
        for line in self.proc.stdout:
            print("  server |", line.rstrip(), flush=True)
            self.lines.append(line)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def question_ogg(directory):
    """The demo's question as Ogg Opus in 40 ms pages, as the web client sends."""
    ogg = os.path.join(directory, "question.ogg")
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=" + QUESTION, "!", "decodebin", "!",
                    "audioconvert", "!", "audioresample", "!", "opusenc", "frame-size=20", "!", "oggmux",
                    "max-page-delay=39000000", "!", "filesink", "location=" + ogg], check=True, timeout=60)
    return ogg


def main():
    tmp = tempfile.mkdtemp(prefix="pp-demo-server-")
    server = None
    try:
        os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        os.chdir(tmp)  # no personaplex-7b-v1/ here
        server = Server([os.environ["PERSONAPLEX_SERVER"], "--http", "--host", "127.0.0.1", "--port", "0",
                         "--device", "cpu"])
        out = "".join(server.lines)
        assert "demo model" in out and "pipelines/fetch-model.sh" in out, out
        demo = os.path.join(tmp, "cache", "gst-personaplex", "demo-model-1")
        assert os.path.isfile(os.path.join(demo, "model.safetensors")), os.listdir(tmp)

        status = server.get("api/status")
        assert status["sessions"] == 0, status
        voices = server.get("api/voices")
        print("voices:", json.dumps(voices))
        assert "NATF2.pt" in json.dumps(voices), voices

        ogg = question_ogg(tmp)
        p = subprocess.run([sys.executable, LOAD, server.url.rstrip("/"), "--audio", ogg, "--seconds", "3"],
                           capture_output=True, text=True, timeout=120)
        print(p.stderr, end="")
        result = json.loads(p.stdout)
        print(json.dumps(result["sessions"]))
        assert p.returncode == 0, result
        # 3 s of call: about 37 frames of answer.
        assert result["sessions"][0]["pages"] >= (20 if PACED else 1), result
        print("ok")
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
