#!/usr/bin/env python3
"""The reference web client's microphone encoder against the server: a
stand-in page (tests/server/standin/) that records with opus-recorder and the
reference client's settings, hosted by personaplex-server --static, in
headless Chromium with the page's audio at 44.1 kHz and at 48 kHz (the
encoder writes that rate into the OpusHead). Each call must get the model's
audio (one page per 80 ms sent) and text, and no error.

Environment: as browser_test.py. Exits 77 (skipped) without Chromium, the
fixtures, or opus-recorder (npm ci in tests/server/standin).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser_test as bt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "standin")
RECORDER = os.path.join(STANDIN, "node_modules", "opus-recorder", "dist")
SECONDS = 8


def call(browser, url, rate):
    browser.open(url + "?rate=%d" % rate)
    bt.wait_for("the handshake", lambda: browser.js("return window.standin.handshake || !!window.standin.failure "
                                                      "|| !!window.standin.closed"), 60)
    begin = time.monotonic()
    bt.wait_for("recording", lambda: browser.js("return window.standin.started || !!window.standin.closed"), 20)
    time.sleep(SECONDS)
    s = browser.js("return window.standin")
    bt.log("page at %d Hz: %s (%.1f s)" % (rate, s, time.monotonic() - begin))
    assert not s["failure"], s["failure"]
    assert s["rate"] == rate, "the page's audio runs at %s" % s["rate"]
    assert s["opusHeadRates"] == [rate], "OpusHead rates %s" % s["opusHeadRates"]
    assert not s["errors"] and not s["closed"], "the call ended: %s %s" % (s["errors"], s["closed"])
    # One page per 80 ms sent, after the two header pages; the microphone
    # starts a little late and the model runs behind it by a frame or two.
    want = 2 + int(SECONDS / 0.08 * 0.7) if bt.PACED else 3
    assert s["audioPages"] >= want, "%d audio pages in %d s" % (s["audioPages"], SECONDS)
    assert s["textPieces"] > 0, "no text"
    return s


def main():
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        bt.skip("the reference fixtures are not there (PERSONAPLEX_FIXTURES)")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not chromedriver:
        bt.skip("chromium and chromedriver are not installed")
    if not os.path.isfile(os.path.join(RECORDER, "encoderWorker.min.js")):
        bt.skip("opus-recorder is not installed (npm ci in tests/server/standin)")

    tmp = tempfile.mkdtemp(prefix="pp-standin-")
    site = os.path.join(tmp, "site")
    os.mkdir(site)
    for name in ("index.html", "standin.js"):
        shutil.copy(os.path.join(STANDIN, name), site)
    for name in ("recorder.min.js", "encoderWorker.min.js"):
        shutil.copy(os.path.join(RECORDER, name), site)
    voices = os.path.join(tmp, "voices")
    os.mkdir(voices)
    shutil.copy(os.path.join(fixtures, "lm", "voice.pt"), os.path.join(voices, "NATF2.pt"))
    f = fixtures
    server = bt.Server([
        os.environ["PERSONAPLEX_SERVER"], "--http", "--host", "127.0.0.1", "--port", "0", "--static", site,
        "--lm-weights", f + "/lm/weights.safetensors", "--lm-config", f + "/lm/config.json",
        "--mimi-weights", f + "/mimi/weights.safetensors", "--mimi-config", f + "/mimi/config.json",
        "--tokenizer", f + "/lm/tokenizer.model", "--voices-dir", voices, "--device", "cpu"])
    port = bt.free_port()
    driver_proc = subprocess.Popen([chromedriver, "--port=%d" % port], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=bt.browser_env())
    browser = None
    try:
        driver = bt.WebDriver(port)
        bt.wait_for("chromedriver", driver.ready, 30)
        browser = bt.Browser(driver, chromium, os.path.join(tmp, "profile"), os.path.join(f, "lm", "user.wav"))
        for rate in (44100, 48000):
            call(browser, server.url, rate)
            browser.open("about:blank")  # ends the call
            bt.wait_for("the call's end", lambda: server.sessions() == 0, 30)
        bt.log("ok")
    finally:
        if browser:
            browser.quit()
        driver_proc.terminate()
        driver_proc.wait(10)
        server.proc.terminate()
        server.proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
