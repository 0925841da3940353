#!/usr/bin/env python3
"""chat-load: N conversations at once against a personaplex-server (or any
server of the PersonaPlex protocol, /api/chat), each streaming an Ogg Opus
file in real time; prints what each got, as JSON.

  chat-load.py URL --audio USER.ogg [--sessions N] [--seconds S]
      [--voice NATF2.pt] [--prompt TEXT] [--distinct-prompts] [--stagger S]
      [--insecure]

URL is the server's, http(s)://HOST:PORT. Make USER.ogg from any audio with
  gst-launch-1.0 filesrc location=user.wav ! decodebin ! audioconvert ! \\
    audioresample ! opusenc frame-size=20 ! oggmux max-page-delay=39000000 ! \\
    filesink location=user.ogg
It is sent page by page at its own pace (looped for --seconds): pages of 40 ms,
as the reference's web client sends them (oggmux's default pages of 0.5 s
arrive, and are answered, in bursts; oggmux closes a page once it holds more
than max-page-delay, so 40000000 makes pages of 60 ms, whose 80 ms frames
then complete 60, 60 and 120 ms apart). The summary's user_page_ms is the
file's usual page length.

--distinct-prompts gives every call a role of its own (the prompt, then one of
several roles of different lengths and the call's number), as real callers
have: no call's prompts then come from another's (the server's prompt cache).

Per session: handshake_s (connect to the 0x00 message: the prompts), then
for the agent's audio pages (one per 80 ms frame, after the two header
pages): first_audio_s (after the handshake), pages, pages_per_s over the
call, max_gap_ms between two pages (max_gap_after_1s_ms: after its first second,
max_gap_after_1s_at_s: when, in seconds after the first page),
text_pieces, and error / close when the server ended the call ("connection
lost", with lost_after_s, when the connection closed without a websocket
close). The summary adds stalls: gaps over 200 ms that several calls had
at once (the server stalled, not one connection), the most calls first;
late_together: the same of pages over half a frame late (a step late or
skipped for every call then talking); client_loop_lag_ms_max and
client_loop_lags (on the run's clock): how late this client's own event
loop woke, since a page it reads late looks like one the server sent late;
run_start_monotonic_s: the run's clock on the system's monotonic one.
Only the Python standard library is needed.
"""

import argparse
import asyncio
import base64
import json
import os
import ssl
import struct
import sys
import time
import urllib.parse

HANDSHAKE, AUDIO, TEXT, ERROR = 0x00, 0x01, 0x02, 0x05


class WebSocket:
    """A minimal client side of RFC 6455: binary messages, masked frames."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, url, path, insecure):
        u = urllib.parse.urlsplit(url)
        secure = u.scheme in ("https", "wss")
        ctx = None
        if secure:
            ctx = ssl.create_default_context()
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        port = u.port or (443 if secure else 80)
        reader, writer = await asyncio.open_connection(u.hostname, port, ssl=ctx)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                     .encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            body = await asyncio.wait_for(reader.read(4096), 5)
            writer.close()
            raise ConnectionError(f"{status}: {body.decode(errors='replace').strip()}")
        return cls(reader, writer)

    def send(self, payload, opcode=0x2):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def receive(self):
        """(opcode, payload) of the next whole message."""
        data, first_opcode = b"", None
        while True:
            b0, b1 = await self.reader.readexactly(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            if opcode == 0x9:  # ping
                self.send(payload, 0xA)
                continue
            if opcode >= 0x8:
                return opcode, payload
            first_opcode = opcode if first_opcode is None else first_opcode
            data += payload
            if b0 & 0x80:
                return first_opcode, data

    async def close(self):
        try:
            self.send(struct.pack("!H", 1000), 0x8)
            await self.writer.drain()
            self.writer.close()
        except (ConnectionError, OSError):
            pass


def ogg_pages(data):
    """(page bytes, end time in s) of each Ogg page (Opus granules: 48 kHz)."""
    pages, at = [], 0
    while at + 27 <= len(data):
        if data[at:at + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {at}")
        (granule,) = struct.unpack("<q", data[at + 6:at + 14])
        segments = data[at + 26]
        size = 27 + segments + sum(data[at + 27:at + 27 + segments])
        pages.append((data[at:at + size], max(granule, 0) / 48000.0))
        at += size
    if not pages:
        raise ValueError("no Ogg pages")
    return pages


# Roles of different lengths, as callers' own prompts differ.
ROLES = [
    "You work for a bakery and answer questions about opening hours.",
    "You are a patient teacher.",
    "You are a travel agent who helps people plan a week in Lisbon, with hotels, restaurants and trains.",
    "You answer the phone for a dentist.",
    "You are a friendly support agent for a bank; you never ask for passwords and you explain fees clearly.",
    "You like to talk about football.",
]


def call_prompt(args, index):
    if not args.distinct_prompts:
        return args.prompt
    return f"{args.prompt} {ROLES[index % len(ROLES)]} Your name is Agent {index}."


async def converse(args, index, pages):
    await asyncio.sleep(index * args.stagger)
    result = {"session": index}
    query = urllib.parse.urlencode({"text_prompt": call_prompt(args, index), "voice_prompt": args.voice})
    t0 = time.monotonic()
    try:
        ws = await WebSocket.connect(args.url, "/api/chat?" + query, args.insecure)
    except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
        result["error"] = f"connect: {e}"
        return result
    arrivals, texts = [], []
    handshake = None

    async def receive():
        nonlocal handshake
        while True:
            try:
                opcode, payload = await ws.receive()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                # The server (or its host) went away without a close frame.
                result["close"] = {"code": None, "reason": "connection lost"}
                result.setdefault("error", "connection lost")
                result["lost_after_s"] = round(time.monotonic() - t0, 3)
                return
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                result["close"] = {"code": code, "reason": payload[2:].decode(errors="replace")}
                return
            if not payload:
                continue
            kind, body = payload[0], payload[1:]
            if kind == HANDSHAKE and handshake is None:
                handshake = time.monotonic()
                result["handshake_s"] = round(handshake - t0, 3)
            elif kind == AUDIO:
                arrivals.append(time.monotonic())
            elif kind == TEXT:
                texts.append(body.decode(errors="replace"))
            elif kind == ERROR:
                result["error"] = body.decode(errors="replace")

    async def send():
        while handshake is None:
            if receiver.done():  # closed before the handshake (busy, an error)
                return
            await asyncio.sleep(0.01)
        start, offset = time.monotonic(), 0.0
        while time.monotonic() - start < args.seconds and not receiver.done():
            for page, end in pages:
                if offset + end > args.seconds:
                    break
                due = start + offset + end
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                ws.send(bytes([AUDIO]) + page)
                await ws.writer.drain()
            offset += pages[-1][1]

    receiver = asyncio.ensure_future(receive())
    try:
        await asyncio.wait_for(send(), args.seconds + 120)
    except (ConnectionError, OSError, asyncio.TimeoutError) as e:
        result.setdefault("error", f"send: {e!r}")
    await asyncio.sleep(0.5)  # the last frames
    receiver.cancel()
    await ws.close()
    frames = arrivals[2:]  # after OpusHead and OpusTags
    result["pages"] = len(frames)
    result["text_pieces"] = len(texts)
    result["text"] = "".join(texts)[:200]
    if handshake is not None and frames:
        result["first_audio_s"] = round(frames[0] - handshake, 3)
        span = frames[-1] - frames[0]
        result["pages_per_s"] = round((len(frames) - 1) / span, 2) if span > 0 else None
        gaps = [b - a for a, b in zip(frames, frames[1:])]
        result["max_gap_ms"] = round(1000 * max(gaps), 1) if gaps else None
        # Past the first second (the codec's first frames), the call's continuity.
        later = [(b - a, a - frames[0]) for a, b in zip(frames, frames[1:]) if a >= frames[0] + 1.0]
        if later:
            gap, at = max(later)
            result["max_gap_after_1s_ms"] = round(1000 * gap, 1)
            result["max_gap_after_1s_at_s"] = round(at, 2)  # seconds after the first page
        # Where the long ones were: (seconds after the first page, ms).
        result["gaps_over_200ms"] = [(round(a - frames[0], 2), round(1000 * (b - a)))
                                     for a, b in zip(frames, frames[1:]) if b - a > 0.2][:20]
        # The same gaps on the run's clock (seconds since the first call
        # started), where calls' gaps can be matched.
        result["gap_ends_over_200ms_at_s"] = [(round(b - args.run_start, 2), round(1000 * (b - a)))
                                              for a, b in zip(frames, frames[1:]) if b - a > 0.2][:50]
        # Pages over half a frame late (their step late, or skipped).
        result["gap_ends_over_120ms_at_s"] = [(round(b - args.run_start, 2), round(1000 * (b - a)))
                                              for a, b in zip(frames, frames[1:]) if b - a > 0.12][:100]
    return result


def stalls(results, window=0.1, top=10, key="gap_ends_over_200ms_at_s"):
    """Gaps over 200 ms (or those of `key`) that several calls had at once
    (their pages came late together: the server, not one connection,
    stalled): clusters of gap ends within `window` seconds of each other,
    the most calls first."""
    ends = sorted((at, ms, r["session"]) for r in results for at, ms in r.get(key, []))
    clusters = []
    for at, ms, session in ends:
        if clusters and at - clusters[-1]["last"] <= window:
            c = clusters[-1]
            c["last"], c["longest_ms"] = at, max(c["longest_ms"], ms)
            c["sessions"].add(session)
        else:
            clusters.append({"at_s": at, "last": at, "longest_ms": ms, "sessions": {session}})
    out = [{"at_s": c["at_s"], "calls": len(c["sessions"]), "longest_ms": c["longest_ms"]} for c in clusters]
    return sorted(out, key=lambda c: (-c["calls"], c["at_s"]))[:top]


class LoopLag:
    """How late this client's own event loop woke: a page it receives late
    because the loop was busy looks like a page the server sent late. Wakes
    every `period` s; lags over `threshold` s are kept, on the run's clock."""

    def __init__(self, run_start, period=0.005, threshold=0.02):
        self.run_start, self.period, self.threshold = run_start, period, threshold
        self.longest, self.lags = 0.0, []

    async def watch(self):
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.period)
            now = time.monotonic()
            lag = now - before - self.period
            self.longest = max(self.longest, lag)
            if lag > self.threshold and len(self.lags) < 50:
                self.lags.append((round(now - self.run_start, 2), round(1000 * lag)))

    def summary(self):
        return {"client_loop_lag_ms_max": round(1000 * self.longest, 1), "client_loop_lags": self.lags}


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if v else None


async def main_async(args):
    with open(args.audio, "rb") as f:
        pages = ogg_pages(f.read())
    args.run_start = time.monotonic()
    lag = LoopLag(args.run_start)
    watcher = asyncio.ensure_future(lag.watch())
    results = await asyncio.gather(*(converse(args, i, pages) for i in range(args.sessions)))
    watcher.cancel()
    ok = [r for r in results if "error" not in r and r.get("pages", 0) > 0]
    summary = {"sessions": args.sessions, "ok": len(ok), "seconds": args.seconds,
               "distinct_prompts": args.distinct_prompts, "stagger_s": args.stagger}
    lengths = [round(1000 * (b[1] - a[1])) for a, b in zip(pages, pages[1:])]
    summary["user_page_ms"] = median([n for n in lengths if n > 0])
    summary["failed"] = args.sessions - len(ok)
    errors = sorted({r.get("error", "") for r in results if "error" in r})
    if errors:
        summary["errors"] = errors[:5]
    if ok:
        summary["handshake_s_median"] = median([r["handshake_s"] for r in ok])
        summary["handshake_s_max"] = max(r["handshake_s"] for r in ok)
        summary["pages_per_s_min"] = min(r.get("pages_per_s") or 0 for r in ok)
        summary["pages_per_s_median"] = median([r.get("pages_per_s") or 0 for r in ok])
        summary["max_gap_ms"] = max(r.get("max_gap_ms") or 0 for r in ok)
        summary["max_gap_after_1s_ms"] = max(r.get("max_gap_after_1s_ms") or 0 for r in ok)
        summary["max_gap_after_1s_ms_median"] = median([r.get("max_gap_after_1s_ms") or 0 for r in ok])
        summary["max_gap_after_1s_at_s_median"] = median([r.get("max_gap_after_1s_at_s") or 0 for r in ok])
        summary["calls_with_gaps_over_200ms"] = sum(1 for r in ok if r.get("gaps_over_200ms"))
        summary["stalls"] = stalls(ok)
        summary["late_together"] = stalls(ok, key="gap_ends_over_120ms_at_s")
    summary.update(lag.summary())
    # The run's clock on the system's monotonic one (as a server's
    # PERSONAPLEX_STALL_LOG=1 lines give their times).
    summary["run_start_monotonic_s"] = round(args.run_start, 3)
    print(json.dumps({"summary": summary, "sessions": results}, indent=1))
    return 0 if len(ok) == args.sessions else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="the server, http(s)://HOST:PORT")
    p.add_argument("--audio", required=True, help="the user's audio, an Ogg Opus file")
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each call")
    p.add_argument("--voice", default="NATF2.pt")
    p.add_argument("--prompt", default="You enjoy having a good conversation.")
    p.add_argument("--distinct-prompts", action="store_true", help="a role of its own for every call")
    p.add_argument("--stagger", type=float, default=0.0, help="seconds between the sessions' starts")
    p.add_argument("--insecure", action="store_true", help="accept any certificate (a self-signed one)")
    args = p.parse_args()
    if args.sessions < 1 or args.seconds <= 0:
        p.error("--sessions and --seconds must be positive")
    try:
        return asyncio.run(main_async(args))
    except (OSError, ValueError) as e:
        print(f"chat-load: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
