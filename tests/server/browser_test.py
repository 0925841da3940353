#!/usr/bin/env python3
"""Calls from a real browser: headless Chromium, driven over WebDriver by
chromedriver, opens personaplex-server's page (the fixtures' tiny model on
the CPU, HTTP on 127.0.0.1), starts a call and checks that the model's audio
arrives (inbound RTP bytes and a non-silent level) and that its words appear;
then two browsers call at once. The microphone is a WAV file.

Environment: PERSONAPLEX_SERVER, PERSONAPLEX_FIXTURES, CHROMIUM and
CHROMEDRIVER (default: found on PATH), PERSONAPLEX_SCREENSHOT (where the
page's picture goes). Exits 77 (skipped) without Chromium or the fixtures.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SKIP = 77
# Under a sanitizer (.ci/sanitize) calls run far slower than real time:
# what they bring is checked, not their pace (or, there, RSS).
PACED = not os.environ.get("PERSONAPLEX_SANITIZED")
ICE_PORTS = (45000, 45999)


def log(*args):
    print(*args, flush=True)


def skip(why):
    log("skipped:", why)
    sys.exit(SKIP)


def wait_for(what, fn, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.25)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """personaplex-server on a free port; its output is echoed."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                log("  server |", line.rstrip())
                if line.startswith("Listening on "):
                    self.url = line[len("Listening on "):].strip()
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(120)
        if not self.url:
            raise AssertionError("the server did not start")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def sessions(self):
        return self.get("api/status")["sessions"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


class WebDriver:
    """The few W3C WebDriver commands the test needs."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError("WebDriver %s %s: %s" % (method, path, e.read().decode(errors="replace")))

    def ready(self):
        try:
            return self.call("GET", "/status", timeout=2)["ready"]
        except (OSError, AssertionError):
            return False


class Browser:
    def __init__(self, driver, chromium, profile, microphone):
        self.driver = driver
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--use-file-for-fake-audio-capture=" + microphone,
            "--autoplay-policy=no-user-gesture-required",
            # ICE on the loopback interface, with plain addresses.
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            # Nothing but the page's own traffic.
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-domain-reliability", "--no-first-run",
            "--no-default-browser-check", "--user-data-dir=" + profile, "--window-size=1100,760",
        ]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}}
        self.id = driver.call("POST", "/session", caps, timeout=120)["sessionId"]

    def cmd(self, method, path, body=None):
        return self.driver.call(method, "/session/%s%s" % (self.id, path), body)

    def open(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, expression):
        # The expression is a promise; WebDriver's callback is the last argument.
        return self.cmd("POST", "/execute/async", {
            "script": "const done = arguments[arguments.length - 1]; (%s).then(done, e => done('error: ' + e));"
                      % expression, "args": []})

    def click(self, css):
        element = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        element_id = next(iter(element.values()))
        self.cmd("POST", "/element/%s/click" % element_id, {})

    def screenshot(self, path):
        import base64
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except (OSError, AssertionError):
            pass

    def state(self):
        return self.js("return [window.personaplex.state(), window.personaplex.error()]")


def start_call(browser, url, voice, start=True):
    """Opens the page, picks the voice and a role; starts the call unless
    `start` is false (then a click on #start does)."""
    browser.open(url)
    # The page may still be loading: no voice list yet is no voices yet.
    voices = "const v = document.getElementById('voice'); return v ? v.options.length : 0"
    try:
        wait_for("the voices", lambda: browser.js(voices) >= 2, 30)
    except AssertionError as e:
        page = browser.js("return document.body ? document.body.innerText.slice(0, 300) : ''")
        raise AssertionError("%s; the page shows: %r" % (e, page)) from None
    browser.js("document.getElementById('voice').value = arguments[0]", voice)
    browser.click("button[data-example=restaurant]")
    if start:
        browser.click("#start")


def expect_talking(browser, name):
    """The call connects, the model's audio arrives and is heard, and words appear."""
    def connected():
        state, error = browser.state()
        if error:
            raise AssertionError("%s: the page shows an error: %s" % (name, error))
        return state == "connected"
    wait_for(name + ": connected", connected, 60)
    wait_for(name + ": the model's audio (inbound RTP)",
             lambda: browser.js_async("window.personaplex.inboundBytes()") > 4000, 30)
    wait_for(name + ": a non-silent level", lambda: browser.js("return window.personaplex.levels().agentPeak") > 0.01, 30)
    wait_for(name + ": words", lambda: len(browser.js("return window.personaplex.transcript()").strip()) > 0, 30)
    # The server offers only its loopback address; the browser gathers one
    # too (its other candidates are this host's own addresses).
    route = browser.js_async("window.personaplex.route()")
    assert route["remote"] == "127.0.0.1", "%s: the call goes to %s" % (name, route)
    assert ICE_PORTS[0] <= route["remotePort"] <= ICE_PORTS[1], "%s: the server's port is %s" % (name, route)
    assert "127.0.0.1" in route["candidates"], "%s: no loopback candidate in %s" % (name, route)
    levels = browser.js("return window.personaplex.levels()")
    log("%s: %d bytes in over %s -> %s, levels %s, transcript %r" % (
        name, browser.js_async("window.personaplex.inboundBytes()"), route["local"], route["remote"], levels,
        browser.js("return window.personaplex.transcript()")[:60]))


def browser_env():
    """The environment for the browser: without a sanitizer's runtime that
    .ci/sanitize preloads for our code (Chromium does not start with it)."""
    env = dict(os.environ)
    if not PACED:
        env.pop("LD_PRELOAD", None)
    return env


def main():
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        skip("the reference fixtures are not there (PERSONAPLEX_FIXTURES)")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not chromedriver:
        skip("chromium and chromedriver are not installed")
    server_bin = os.environ["PERSONAPLEX_SERVER"]

    tmp = tempfile.mkdtemp(prefix="pp-browser-")
    procs = []
    browsers = []
    server = None
    try:
        voices = os.path.join(tmp, "voices")
        os.mkdir(voices)
        for name in ("NATF2.pt", "NATM1.pt"):
            shutil.copy(os.path.join(fixtures, "lm", "voice.pt"), os.path.join(voices, name))
        f = fixtures
        server_args = [
            server_bin, "--http", "--host", "127.0.0.1", "--port", "0", "--max-sessions", "2",
            "--ice-address", "127.0.0.1", "--ice-ports", "%d-%d" % ICE_PORTS,
            "--lm-weights", f + "/lm/weights.safetensors", "--lm-config", f + "/lm/config.json",
            "--mimi-weights", f + "/mimi/weights.safetensors", "--mimi-config", f + "/mimi/config.json",
            "--tokenizer", f + "/lm/tokenizer.model", "--voices-dir", voices, "--device", "cpu"]
        server = Server(server_args)

        port = free_port()
        driver_log = os.path.join(tmp, "chromedriver.log")
        procs.append(subprocess.Popen([chromedriver, "--port=%d" % port, "--log-path=" + driver_log],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=browser_env()))
        driver = WebDriver(port)
        wait_for("chromedriver", driver.ready, 30)
        microphone = os.path.join(fixtures, "lm", "user.wav")

        log("== one call")
        first = Browser(driver, chromium, os.path.join(tmp, "profile1"), microphone)
        browsers.append(first)
        start_call(first, server.url, "NATF2.pt")
        expect_talking(first, "first")
        assert server.sessions() == 1
        shot = os.environ.get("PERSONAPLEX_SCREENSHOT")
        if shot:
            wait_for("a few words", lambda: len(first.js("return window.personaplex.transcript()")) > 60, 30)
            first.screenshot(shot)
            log("screenshot:", shot)

        log("== two calls at once")
        second = Browser(driver, chromium, os.path.join(tmp, "profile2"), microphone)
        browsers.append(second)
        start_call(second, server.url, "NATM1.pt")
        expect_talking(second, "second")
        before = first.js_async("window.personaplex.inboundBytes()")
        wait_for("the first call going on", lambda: first.js_async("window.personaplex.inboundBytes()") > before + 2000, 20)
        assert server.sessions() == 2

        log("== a third call is told why it cannot start")
        third = Browser(driver, chromium, os.path.join(tmp, "profile3"), microphone)
        browsers.append(third)
        start_call(third, server.url, "NATF2.pt")
        wait_for("the third page's error", lambda: third.state()[1], 30)
        state, error = third.state()
        assert state == "error" and "busy" in error, "the third page shows %r %r" % (state, error)
        log("third: %s" % error)
        third.quit()
        browsers.remove(third)

        log("== Stop, then a browser that vanishes")
        first.click("#stop")
        wait_for("the first call's end", lambda: first.state()[0] == "idle", 10)
        wait_for("one session left", lambda: server.sessions() == 1, 30)
        second.quit()
        browsers.remove(second)
        wait_for("no session left", lambda: server.sessions() == 0, 40)
        status = server.stop()
        server = None
        assert status == 0, "the server exited with %d" % status

        log("== a server that falls behind, then vanishes mid-call: the page says both")
        server = Server(server_args + ["--latency", "1000000"])  # 1 ms: the CPU steps are late
        start_call(first, server.url, "NATF2.pt")
        expect_talking(first, "first again")
        warning = wait_for("the page's warning", lambda: first.js("return window.personaplex.warning()"), 30)
        assert "Falling behind real time" in warning, warning
        log("first: %s" % warning)
        server.proc.kill()
        server.proc.wait(10)
        server = None
        wait_for("the page's error", lambda: first.state()[1], 30)
        state, error = first.state()
        assert state == "error" and "lost" in error, "the page shows %r %r" % (state, error)
        log("first: %s" % error)
        log("ok")
    finally:
        for b in browsers:
            b.quit()
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if server:
            server.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
