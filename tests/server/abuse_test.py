#!/usr/bin/env python3
"""personaplex-server under abuse, on loopback with the fixtures' tiny model
(CPU): requests closed by the client, idle and slow connections, a JSON
message nested 100,000 deep, garbage frames, non-Ogg audio, huge and
non-UTF-8 prompts, traversing voice names, malformed voice files, calls
beyond --max-sessions and calls dropped at random points. After each group
the server must still serve a normal call, and its open file descriptors and
RSS must come back to where they were. Prints the figures as JSON; exits 77
(skipped) without the fixtures."""

import base64
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_test import PACED, Server, skip  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(HERE, "..", "..", "pipelines", "server", "chat-load.py")
HANDSHAKE_TIMEOUT = 2  # --handshake-timeout, seconds
FD_SLACK = 2           # descriptors GLib or GStreamer may open lazily
RSS_SLACK_MB = 40      # allocator caches after thousands of requests


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s):
    """Status and body of one HTTP response (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), body, lines


def request(port, target, headers=(), keep_alive=True):
    s = connect(port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    conn = "keep-alive" if keep_alive else "close"
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: {conn}\r\n{extra}\r\n".encode())
    try:
        status, body, _ = read_response(s)
    except ConnectionError:  # refused without an answer (a request line too long)
        status, body = 0, b""
    s.close()
    return status, body


def closed_by_server(s, seconds, received=None):
    """Whether the server closes `s` within `seconds` (reading what comes,
    kept in the bytearray `received` when given)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
            if received is not None:
                received += data
            if not data:
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def ws_open(port, target, origin=None, rest=None):
    """A websocket handshake; what came after the response's head goes into
    the bytearray `rest` when given."""
    s = connect(port)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Origin: {origin}\r\n" if origin else ""
    s.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if rest is not None:
        rest += data.partition(b"\r\n\r\n")[2]
    return s, data.split(b"\r\n", 1)[0].decode("latin-1")


def ws_frame(payload, opcode=0x2, fin=True):
    mask = os.urandom(4)
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Abuse:
    def __init__(self, server, ogg, voices):
        self.server, self.ogg, self.voices = server, ogg, voices
        self.port = urllib.parse.urlsplit(server.url).port
        self.pid = server.proc.pid
        self.report = {}

    def normal_call(self):
        p = subprocess.run([sys.executable, LOAD, self.server.url.rstrip("/"), "--audio", self.ogg,
                            "--seconds", "1.5"], capture_output=True, text=True, timeout=120)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        assert p.returncode == 0 and out["sessions"][0]["pages"] >= (5 if PACED else 1), (p.returncode, out, p.stderr)

    def settle(self, baseline_fds, seconds=10):
        deadline = time.monotonic() + seconds
        while fds(self.pid) > baseline_fds + FD_SLACK and time.monotonic() < deadline:
            time.sleep(0.1)

    def wait_free(self, seconds=10):
        """Until the last call is freed (its client left first): the next
        group's call would be told busy otherwise."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status, body = request(self.port, "/api/status")
            if status == 200 and json.loads(body)["sessions"] == 0:
                return
            time.sleep(0.05)

    def check(self, name, fn):
        """Runs one group, then a normal call; the figures go to the report."""
        before_fds, before_rss = fds(self.pid), rss_mb(self.pid)
        t0 = time.monotonic()
        detail = fn()
        self.settle(before_fds)
        self.normal_call()
        self.wait_free()
        self.settle(before_fds)
        after_fds, after_rss = fds(self.pid), rss_mb(self.pid)
        self.report[name] = {"fds_before": before_fds, "fds_after": after_fds, "rss_mb_before": round(before_rss, 1),
                             "rss_mb_after": round(after_rss, 1), "seconds": round(time.monotonic() - t0, 1)}
        if detail:
            self.report[name].update(detail)
        print(name, json.dumps(self.report[name]), flush=True)
        assert self.server.proc.poll() is None, f"{name}: the server died"
        assert after_fds <= before_fds + FD_SLACK, f"{name}: {before_fds} -> {after_fds} open descriptors"
        # ASan keeps freed memory in quarantine: RSS is not measured there.
        assert not PACED or after_rss <= before_rss + RSS_SLACK_MB, f"{name}: RSS {before_rss:.1f} -> {after_rss:.1f} MB"

    # -- the groups -----------------------------------------------------------

    def closed_requests(self):
        targets = [("/api/status", (), 200), ("/nope", (), 404), ("/api/chat?text_prompt=x", (), 400),
                   ("/ws", (("Origin", "http://evil.example"),), 403), ("/api/voices", (), 200)]
        for i in range(300):
            target, headers, want = targets[i % len(targets)]
            status, _ = request(self.port, target, headers, keep_alive=i % 3 != 0)
            assert status == want, (target, status)
        return {"requests": 300}

    def idle_connections(self):
        # A keep-alive connection whose request was answered, one that never
        # says anything, one that sends half a request a byte at a time.
        answered = connect(self.port)
        answered.sendall(f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        read_response(answered)
        silent = connect(self.port)
        slow = connect(self.port)
        t0 = time.monotonic()
        for b in b"GET /api/status HTTP/1.1\r\nHost: x\r\n":
            try:
                slow.send(bytes([b]))
            except OSError:
                break
            if time.monotonic() - t0 > HANDSHAKE_TIMEOUT + 3:
                break
            time.sleep(0.25)
        dropped = {n: closed_by_server(s, HANDSHAKE_TIMEOUT + 3)
                   for n, s in (("answered", answered), ("silent", silent), ("slowloris", slow))}
        for s in (answered, silent, slow):
            s.close()
        assert all(dropped.values()), dropped
        return {"dropped": dropped}

    def nested_json(self):
        s, status = ws_open(self.port, "/ws")
        assert " 101 " in status + " ", status
        depth = 100000
        s.sendall(ws_frame(b'{"type":"start","seed":' + b"[" * depth + b"]" * depth + b"}", opcode=0x1))
        assert closed_by_server(s, 10), "a nested message did not end the session"
        s.close()
        return {"depth": depth}

    def garbage_frames(self):
        ended = {}
        for name, payload, opcode in (("random", os.urandom(3000), 0x2),
                                      ("not_ogg", b"\x01" + b"not an ogg stream" * 100, 0x2),
                                      ("random_ogg", b"\x01" + os.urandom(5000), 0x2),
                                      ("reserved_opcode", os.urandom(100), 0x3),
                                      ("text_not_utf8", b"\xff\xfe", 0x1), ("empty", b"", 0x2)):
            s, status = ws_open(self.port, "/api/chat?text_prompt=&voice_prompt=NATF2.pt")
            assert " 101 " in status + " ", status
            s.sendall(ws_frame(payload, opcode))
            ended[name] = closed_by_server(s, 5)
            s.close()
        s = connect(self.port)  # a websocket frame without a handshake
        s.sendall(ws_frame(os.urandom(200)))
        ended["frame_without_handshake"] = closed_by_server(s, HANDSHAKE_TIMEOUT + 3)
        s.close()
        return {"ended_by_server": ended}

    def bad_queries(self):
        cases = {
            "text_prompt=" + "a" * 200000 + "&voice_prompt=NATF2.pt": 400,
            "text_prompt=%ff%fe&voice_prompt=NATF2.pt": 400,
            "text_prompt=&voice_prompt=..": 400,
            "text_prompt=&voice_prompt=%2e%2e%2fNATF2.pt": 400,
            "text_prompt=&voice_prompt=%2e%2e%2f%2e%2e%2fetc%2fpasswd": 400,
            "text_prompt=&voice_prompt=/etc/passwd": 400,
            "text_prompt=&voice_prompt=%2fetc%2fpasswd": 400,
            "text_prompt=&voice_prompt=NATF2.pt%00.wav": 400,
            "text_prompt=&voice_prompt=..%5cNATF2.pt": 400,
            "text_prompt=&voice_prompt=%ff%fe%2e.pt": 400,
        }
        seen = {}
        for query, want in cases.items():
            status, body = request(self.port, "/api/chat?" + query)
            seen[query[:40]] = status
            assert status in (want, 0, 413, 414), (query[:80], status, body[:200])  # 0: connection refused
            # A refusal reads as text and tells nothing of where the server keeps its files.
            text = body.decode("utf-8")
            assert self.voices not in text and "/tmp" not in text, (query[:80], text[:300])
        return {"statuses": seen}

    def bad_voices(self):
        ended = {}
        for name in ("evil.pt", "huge_rate.wav", "one_hz.wav", "truncated.pt"):
            told = bytearray()
            s, status = ws_open(self.port, f"/api/chat?text_prompt=&voice_prompt={name}", rest=told)
            if " 101 " in status + " ":
                ended[name] = closed_by_server(s, 30, told)
                # The error names the voice, not the server's path to it.
                assert name.encode() in told, (name, bytes(told[:300]))
                assert self.voices.encode() not in told and b"/tmp" not in told, (name, bytes(told[:300]))
            else:
                ended[name] = status
            s.close()
        return {"voices": ended}

    def beyond_max_sessions(self):
        # The holder must really hold the one conversation: a call of an earlier
        # check may still be freeing it, and then the holder itself is refused.
        deadline = time.monotonic() + 30
        while True:
            holder, status = ws_open(self.port, "/api/chat?text_prompt=&voice_prompt=NATF2.pt")
            assert " 101 " in status + " ", status
            if not closed_by_server(holder, 1):
                break
            holder.close()
            assert time.monotonic() < deadline, "the one conversation never came free"
            time.sleep(0.2)
        refused = 0
        for _ in range(5):
            s, status = ws_open(self.port, "/api/chat?text_prompt=&voice_prompt=NATF2.pt")
            refused += closed_by_server(s, 10) if " 101 " in status + " " else 1
            s.close()
        holder.close()
        assert refused == 5, refused
        return {"refused": refused}

    def dropped_calls(self):
        rng = random.Random(1234)
        for _ in range(200):
            point = rng.choice(["connect", "half-request", "handshake", "audio", "later"])
            if point == "connect":
                connect(self.port).close()
                continue
            if point == "half-request":
                s = connect(self.port)
                s.sendall(b"GET /api/chat?text_prompt=&voice_prompt=NATF2.pt HTTP/1.1\r\nHost: x\r\nUpgr")
                s.close()
                continue
            s, status = ws_open(self.port, "/api/chat?text_prompt=&voice_prompt=NATF2.pt")
            if point == "audio":
                s.sendall(ws_frame(b"\x01" + self.ogg_bytes[:rng.randint(1, 4000)]))
            elif point == "later":
                time.sleep(rng.uniform(0, 0.3))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, no close frame
            s.close()
        return {"calls": 200}


def write_bad_voices(voices, fixtures):
    with zipfile.ZipFile(os.path.join(voices, "evil.pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.")
    with open(os.path.join(fixtures, "lm", "voice.pt"), "rb") as f:
        good = f.read()
    with open(os.path.join(voices, "truncated.pt"), "wb") as f:
        f.write(good[: len(good) // 2])

    def wav(rate, frames):
        data = b"\x00\x00" * frames
        return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16) +
                b"data" + struct.pack("<I", len(data)) + data)
    with open(os.path.join(voices, "huge_rate.wav"), "wb") as f:
        f.write(wav(4294967295, 1000))
    with open(os.path.join(voices, "one_hz.wav"), "wb") as f:
        f.write(wav(1, 10000))


def main():
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        skip("the reference fixtures are not there (PERSONAPLEX_FIXTURES)")
    tmp = tempfile.mkdtemp(prefix="pp-abuse-")
    server = None
    try:
        voices = os.path.join(tmp, "voices")
        os.mkdir(voices)
        shutil.copy(os.path.join(fixtures, "lm", "voice.pt"), os.path.join(voices, "NATF2.pt"))
        write_bad_voices(voices, fixtures)
        ogg = os.path.join(tmp, "user.ogg")
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=" + os.path.join(fixtures, "lm", "user.wav"),
                        "!", "decodebin", "!", "audioconvert", "!", "audioresample", "!", "opusenc",
                        "frame-size=20", "!", "oggmux", "max-page-delay=39000000", "!", "filesink",
                        "location=" + ogg], check=True, timeout=60)
        f = fixtures
        server = Server([
            os.environ["PERSONAPLEX_SERVER"], "--http", "--host", "127.0.0.1", "--port", "0",
            "--max-sessions", "1", "--handshake-timeout", str(HANDSHAKE_TIMEOUT),
            "--lm-weights", f + "/lm/weights.safetensors", "--lm-config", f + "/lm/config.json",
            "--mimi-weights", f + "/mimi/weights.safetensors", "--mimi-config", f + "/mimi/config.json",
            "--tokenizer", f + "/lm/tokenizer.model", "--voices-dir", voices, "--device", "cpu"])
        abuse = Abuse(server, ogg, voices)
        with open(ogg, "rb") as fh:
            abuse.ogg_bytes = fh.read()
        abuse.normal_call()  # warm-up: the model loaded, the first pipeline made
        abuse.normal_call()
        start_fds, start_rss = fds(abuse.pid), rss_mb(abuse.pid)
        groups = sys.argv[1:] or ["closed_requests", "idle_connections", "nested_json", "garbage_frames",
                                  "bad_queries", "bad_voices", "beyond_max_sessions", "dropped_calls"]
        for name in groups:
            abuse.check(name, getattr(abuse, name))
        abuse.report["total"] = {"fds_before": start_fds, "fds_after": fds(abuse.pid),
                                 "rss_mb_before": round(start_rss, 1), "rss_mb_after": round(rss_mb(abuse.pid), 1)}
        print(json.dumps(abuse.report, indent=1))
        assert abuse.report["total"]["fds_after"] <= start_fds + FD_SLACK, abuse.report["total"]
        print("ok")
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
