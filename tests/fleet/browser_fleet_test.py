#!/usr/bin/env python3
"""WebRTC through the fleet: headless Chromium opens the page through
HAProxy (pipelines/deploy/personaplex-fleet, two instances of the fixtures'
model on the CPU); the signalling websocket goes through HAProxy to one
instance and the media straight to that instance's own candidate. A second
browser's call goes to the other instance. A third call, forced through
a TURN relay (coturn on loopback, the page's ?relay), connects over it.
Exits 77 (skipped) without
Chromium, haproxy or the fixtures."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "server"))
from browser_test import ICE_PORTS, Browser, WebDriver, browser_env, expect_talking, free_port, start_call  # noqa: E402
from fleet_test import SKIP, Fleet, log, wait_for  # noqa: E402


def start_turn(tmp, port):
    """coturn on loopback, one user, relaying to loopback peers."""
    process = subprocess.Popen(
        ["turnserver", "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port),
         "--allow-loopback-peers", "--lt-cred-mech", "--user", "fleet:secret", "--realm", "personaplex.test",
         "--no-tls", "--no-dtls", "--no-cli", "--min-port", "46000", "--max-port", "46999",
         "--log-file", os.path.join(tmp, "turn.log"), "--simple-log", "--no-stdout-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for("coturn", lambda: udp_port_taken(port) or process.poll() is not None, 10, 0.1)
    if process.poll() is not None:
        raise AssertionError("turnserver exited with %d" % process.returncode)
    return process


def udp_port_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def main():
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        log("skipped: the reference fixtures are not there (PERSONAPLEX_FIXTURES)")
        sys.exit(SKIP)
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not chromedriver:
        log("skipped: chromium and chromedriver are not installed")
        sys.exit(SKIP)
    if not shutil.which("turnserver"):
        log("skipped: coturn is not installed")
        sys.exit(SKIP)
    if not shutil.which("haproxy") and not os.access("/usr/sbin/haproxy", os.X_OK):
        log("skipped: haproxy is not installed")
        sys.exit(SKIP)
    tmp = tempfile.mkdtemp(prefix="pp-fleet-browser-")
    fleet, driver_process, turn, browsers = None, None, None, []
    try:
        turn_port = free_port()
        turn = start_turn(tmp, turn_port)
        fleet = Fleet(tmp, fixtures, ["--max-sessions", "1", "--ice-address", "127.0.0.1",
                                      "--ice-ports", "%d-%d" % ICE_PORTS,
                                      "--turn-server", "turn://fleet:secret@127.0.0.1:%d" % turn_port], instances=2)
        # The page's check wants a choice of voices.
        shutil.copy(os.path.join(fixtures, "lm", "voice.pt"), os.path.join(fleet.run_dir, "voices", "NATM1.pt"))
        port = free_port()
        driver_process = subprocess.Popen([chromedriver, "--port=%d" % port], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=browser_env())
        driver = WebDriver(port)
        wait_for("chromedriver", driver.ready, 30, 0.25)
        microphone = os.path.join(fixtures, "lm", "user.wav")
        page = fleet.url + "/"
        # A page opened while there is room, its call started once there is none.
        third = Browser(driver, chromium, os.path.join(tmp, "profile3"), microphone)
        start_call(third, page, "NATF2.pt", start=False)
        for n in (1, 2):
            browser = Browser(driver, chromium, os.path.join(tmp, "profile%d" % n), microphone)
            browsers.append(browser)
            start_call(browser, page, "NATF2.pt")
            # expect_talking checks that the media goes to an instance's own
            # loopback candidate in its port range, not through HAProxy.
            expect_talking(browser, "call %d" % n)
            calls = sorted(fleet.calls(name) for name in fleet.instances)
            assert calls == ([0, 1] if n == 1 else [1, 1]), calls
        # It is told why: the balancer's busy answer, which the browser does
        # not show for a websocket, read by the page.
        third.click("#start")
        wait_for("the third page's error", lambda: third.state()[1], 30, 0.25)
        state, error = third.state()
        third.quit()
        assert state == "error" and error.startswith("busy: every personaplex instance"), (state, error)
        for browser in browsers:
            browser.click("#stop")
        wait_for("the calls' end", lambda: all(fleet.calls(name) == 0 for name in fleet.instances), 30, 0.25)
        # HAProxy learns it at its next agent check; until then every
        # instance is full to it, and it answers the page itself: busy.
        wait_for("HAProxy to see the instances free",
                 lambda: all(s == "UP" for s in fleet.balancer_status().values()), 30, 0.25)

        relayed = browsers[0]
        start_call(relayed, page + "?relay", "NATF2.pt")
        wait_for("the relayed call connected", lambda: relayed.state()[0] == "connected", 60, 0.25)
        wait_for("the model's audio over the relay",
                 lambda: relayed.js_async("window.personaplex.inboundBytes()") > 4000, 30, 0.25)
        route = relayed.js_async("window.personaplex.route()")
        log("relayed call:", route)
        assert route["localType"] == "relay", route
        relayed.click("#stop")
        wait_for("the relayed call's end", lambda: all(fleet.calls(name) == 0 for name in fleet.instances), 30, 0.25)
        assert fleet.stop() == 0, fleet.output()
        log("ok")
    except BaseException:
        if fleet:
            log(fleet.output())
        raise
    finally:
        for b in browsers:
            b.quit()
        if driver_process:
            driver_process.terminate()
            driver_process.wait(10)
        if fleet:
            fleet.stop()
        if turn:
            turn.terminate()
            turn.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
