#!/usr/bin/env python3
"""A fleet on loopback (suite 'fleet'): pipelines/deploy/personaplex-fleet
starts three personaplex-server instances on the fixtures' tiny model (CPU),
each --max-sessions 2, behind a real HAProxy. Then:

- 6 calls at once (chat-load.py) are all served, 2 per instance; a 7th is
  told busy by the balancer, one sent to a full instance directly by the
  instance; /metrics parses as Prometheus text and counts what was done;
- an instance killed mid-call: its call ends at once, the others go on,
  HAProxy marks it down and new calls go to the survivors;
- SIGTERM on an instance during a call: readiness says draining at once,
  HAProxy stops sending it calls, the call runs to its end, the instance
  exits 0; a drain asked for on loopback, then SIGTERM, ends a call at once;
- calls that fail in the model mark an instance down until one succeeds.

Prints the figures (calls served, time to notice a dead instance, drain
time) as JSON. Exits 77 (skipped) without the fixtures or haproxy."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Under a sanitizer (.ci/sanitize) calls run far slower than real time:
# what they bring is checked, not their pace (or, there, RSS).
PACED = not os.environ.get("PERSONAPLEX_SANITIZED")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
LOAD = os.path.join(ROOT, "pipelines", "server", "chat-load.py")
FLEET = os.path.join(ROOT, "pipelines", "deploy", "personaplex-fleet")
SKIP = 77


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def prometheus_parser():
    """prometheus_client's parser (Debian's python3-prometheus-client)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")  # Debian's, for another python3
        from prometheus_client.parser import text_string_to_metric_families
    return text_string_to_metric_families


def wait_for(what, predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", headers=headers or {}), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Fleet:
    def __init__(self, tmp, fixtures, server_options, instances=3, check_ms=300):
        self.run_dir = os.path.join(tmp, "run")
        self.log_path = os.path.join(tmp, "fleet.log")
        self.process = subprocess.Popen(
            [sys.executable, FLEET, "--instances", str(instances), "--device", "cpu", "--port", "0",
             "--check-ms", str(check_ms),
             "--run-dir", self.run_dir, "--drain-timeout", "30", "--start-timeout", "120", "--fixtures", fixtures,
             "--", *server_options],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        state = os.path.join(self.run_dir, "fleet.json")
        wait_for("the fleet", lambda: os.path.exists(state) or self.process.poll() is not None, 180, 0.2)
        if self.process.poll() is not None:
            raise AssertionError("the fleet did not start:\n" + self.output())
        with open(state) as f:
            self.state = json.load(f)
        self.url = self.state["url"].rstrip("/")
        self.instances = {i["name"]: i for i in self.state["instances"]}

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def instance_url(self, name):
        return f"http://127.0.0.1:{self.instances[name]['port']}"

    def calls(self, name):
        return json.loads(get(self.instance_url(name) + "/api/status")[1])["sessions"]

    def balancer_stats(self):
        """HAProxy's statistics of each instance (status, wredis...)."""
        _, csv = get(self.state["stats_url"] + ";csv")
        lines = csv.splitlines()
        columns = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(columns, line.split(","))) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows if r["pxname"] == "personaplex" and r["svname"] in self.instances}

    def balancer_status(self):
        """HAProxy's view of each instance: UP, DOWN, DRAIN (agent)..."""
        return {name: row["status"] for name, row in self.balancer_stats().items()}

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


class Load:
    """chat-load.py in the background."""

    def __init__(self, url, ogg, *args):
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, LOAD, url, "--audio", ogg, *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self):
        out, err = self.process.communicate(timeout=180)
        if err:
            log(err, end="")
        return self.process.returncode, json.loads(out) if out.strip() else None


def load(url, ogg, *args):
    return Load(url, ogg, *args).result()


def metrics_of(fleet, name, parse):
    """{(metric sample name, labels as a sorted tuple): value} of one instance."""
    status, text = get(fleet.instance_url(name) + "/metrics")
    assert status == 200, status
    samples = {}
    for family in parse(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def wait_for_idle(fleet, names=None):
    """The calls before have ended and HAProxy knows it. Until its next agent
    check an instance that had calls keeps a lower weight (or DRAIN, when it
    was full), and leastconn sends the next calls to the others."""
    names = names or list(fleet.instances)
    wait_for("the calls before to be freed", lambda: all(fleet.calls(n) == 0 for n in names), 20)

    def idle():
        stats = fleet.balancer_stats()
        return all(stats[n]["status"] == "UP" and stats[n]["weight"] == "100" for n in names)
    wait_for(f"HAProxy to see {', '.join(names)} up with all their room", idle, 10)


def wait_for_calls(fleet, load, calls, names, timeout):
    """`calls` calls on each of `names` while `load` runs; else what HAProxy
    and the instances saw, and what the calls got."""
    try:
        wait_for(f"{calls} calls on each of {', '.join(names)}", lambda: all(fleet.calls(n) == calls for n in names),
                 timeout)
    except AssertionError:
        log("balancer:", fleet.balancer_stats(), "calls:", {n: fleet.calls(n) for n in names})
        log("the calls:", load.result())
        raise


def check_options(fleet, fixtures):
    """The fleet options' errors are clear."""
    server = os.environ["PERSONAPLEX_SERVER"]
    f = fixtures
    model = ["--lm-weights", f + "/lm/weights.safetensors", "--lm-config", f + "/lm/config.json",
             "--mimi-weights", f + "/mimi/weights.safetensors", "--mimi-config", f + "/mimi/config.json",
             "--tokenizer", f + "/lm/tokenizer.model", "--voices-dir", os.path.join(fleet.run_dir, "voices"),
             "--device", "cpu", "--http", "--port", "0"]
    for bad, message in ((["--agent-port", "70000"], "--agent-port must be 0..65535"),
                         (["--drain-timeout", "-1"], "--drain-timeout cannot be negative"),
                         (["--agent-port", str(fleet.instances["pp0"]["agent_port"])], "cannot listen for agent checks")):
        p = subprocess.run([server, *model, *bad], capture_output=True, text=True, timeout=60)
        assert p.returncode in (1, 2) and message in p.stderr, (bad, p.returncode, p.stderr)


def check_ice_servers(fleet):
    """The page learns the STUN and TURN servers through the balancer."""
    status, body = get(fleet.url + "/api/ice")
    assert status == 200, status
    assert json.loads(body) == {"iceServers": [
        {"urls": "stun:127.0.0.1:3478"},
        {"urls": "turn:127.0.0.1:3479", "username": "fleet", "credential": "s@cret"}]}, body


def check_capacity(fleet, ogg, parse, figures):
    six = Load(fleet.url, ogg, "--sessions", "6", "--seconds", "4")
    wait_for("2 calls on every instance", lambda: all(fleet.calls(n) == 2 for n in fleet.instances), 60)
    # The agent checks tell HAProxy that every instance is full.
    wait_for("HAProxy to see them full",
             lambda: all(s.startswith("DRAIN") for s in fleet.balancer_status().values()), 10)
    rc, out = load(fleet.url, ogg, "--sessions", "1", "--seconds", "1")
    assert rc == 1 and "503" in out["sessions"][0]["error"] and "busy" in out["sessions"][0]["error"], out
    # An instance behind HAProxy refuses before the websocket opens (HAProxy may try another).
    rc, out = load(fleet.instance_url("pp0"), ogg, "--sessions", "1", "--seconds", "1")
    assert rc == 1 and out["sessions"][0]["error"] == (
        "connect: HTTP/1.1 503 Service Unavailable: busy: all 2 conversations are in use"), out
    rc, out = six.result()
    log(json.dumps(out["summary"]))
    assert rc == 0, out
    for s in out["sessions"]:
        assert "error" not in s and s["pages"] >= (30 if PACED else 1), s
    figures["calls_served"] = out["summary"]["ok"]
    figures["pages_per_call_min"] = min(s["pages"] for s in out["sessions"])
    # Every slot given back, and HAProxy told so by its next agent check
    # (until then it answers busy, as it should).
    wait_for_idle(fleet)
    rc, out = load(fleet.url, ogg, "--voice", "../x.pt")
    assert rc == 1 and "400" in out["sessions"][0]["error"], out

    # Each instance's counters say what happened.
    bad_requests = frames = 0
    for name in fleet.instances:
        m = metrics_of(fleet, name, parse)
        assert value(m, "personaplex_build_info", version="0.1.0", model="weights.safetensors", device="cpu") == 1, m
        assert value(m, "personaplex_up") == 1 and value(m, "personaplex_calls_max") == 2
        assert value(m, "personaplex_calls_active") == 0
        assert value(m, "personaplex_calls_total", kind="chat") == 2, (name, m)
        assert value(m, "personaplex_calls_total", kind="webrtc") == 0
        assert value(m, "personaplex_calls_refused_total", reason="busy") == (1 if name == "pp0" else 0), (name, m)
        assert value(m, "personaplex_calls_ended_total", code="1000") == 2, (name, m)
        assert value(m, "personaplex_handshake_seconds_count") == 2
        # Each call's prompts: run, or (some of) them from the prompt cache.
        assert sum(value(m, "personaplex_prompts_total", from_cache=f) for f in ("prompts", "voice", "none")) == 2, m
        assert value(m, "personaplex_handshake_seconds_bucket", le="+Inf") == 2
        assert value(m, "personaplex_batch_size_count") > 0
        # 2 calls of 4 s: about 100 frames of 80 ms.
        assert not PACED or 60 <= value(m, "personaplex_frames_total") <= 140, (name, m)
        assert value(m, "personaplex_frame_seconds_count") == value(m, "personaplex_frames_total")
        bad_requests += value(m, "personaplex_calls_refused_total", reason="bad_request")
        frames += value(m, "personaplex_frames_total")
    assert bad_requests == 1
    figures["frames_stepped"] = int(frames)


def check_health(fleet, ogg, figures):
    """Calls that fail in the model one after another (here a corrupt voice
    file) mark an instance down, for HAProxy too; a good call brings it back."""
    with open(os.path.join(fleet.run_dir, "voices", "BROKEN.pt"), "wb") as f:
        f.write(b"not a voice")
    direct = fleet.instance_url("pp2")
    for _ in range(3):
        rc, out = load(direct, ogg, "--voice", "BROKEN.pt", "--seconds", "1")
        assert rc == 1 and out["sessions"][0].get("close", {}).get("code") == 1011, out
    status, text = get(direct + "/healthz")
    assert status == 503 and "3 calls in a row failed" in text, (status, text)
    assert get(direct + "/readyz")[0] == 503
    wait_for("HAProxy to mark pp2 down", lambda: "DOWN" in fleet.balancer_status()["pp2"], 5)
    rc, out = load(direct, ogg, "--seconds", "1")
    assert rc == 0, out
    assert get(direct + "/healthz") == (200, "ok\n")
    wait_for("HAProxy to mark pp2 up", lambda: fleet.balancer_status()["pp2"] == "UP", 5)
    os.remove(os.path.join(fleet.run_dir, "voices", "BROKEN.pt"))


def check_kill(fleet, ogg, figures):
    # Long enough that the survivors' calls still run when the new ones
    # arrive, on a loaded machine too.
    wait_for_idle(fleet)
    three = Load(fleet.url, ogg, "--sessions", "3", "--seconds", "12")
    wait_for("a call on every instance", lambda: all(fleet.calls(n) == 1 for n in fleet.instances), 60)
    time.sleep(1)
    killed_at = time.monotonic()
    os.kill(fleet.instances["pp0"]["pid"], signal.SIGKILL)
    wait_for("HAProxy to mark pp0 down", lambda: fleet.balancer_status()["pp0"].startswith("DOWN"), 10, 0.02)
    figures["dead_instance_marked_down_s"] = round(time.monotonic() - killed_at, 2)
    # New calls go to the survivors, beside the calls there.
    two = Load(fleet.url, ogg, "--sessions", "2", "--seconds", "2")
    wait_for_calls(fleet, two, 2, ("pp1", "pp2"), 30)
    rc, out = two.result()
    assert rc == 0, out
    rc, out = three.result()
    lost = [s for s in out["sessions"] if s.get("error")]
    assert len(lost) == 1 and lost[0]["error"] == "connection lost", out
    # Ended when the instance died, not at a timeout.
    assert lost[0]["lost_after_s"] < killed_at - three.started + 1.5, (lost, killed_at - three.started)
    for s in out["sessions"]:
        if s is not lost[0]:
            assert s["pages"] >= (60 if PACED else 1), s  # 12 s: 150 frames
    figures["calls_cut_by_the_kill"] = 1
    figures["calls_untouched_by_the_kill"] = 2


def check_drain(fleet, ogg, figures):
    wait_for_idle(fleet, ("pp1", "pp2"))
    two = Load(fleet.url, ogg, "--sessions", "2", "--seconds", "4")
    wait_for_calls(fleet, two, 1, ("pp1", "pp2"), 60)
    time.sleep(0.5)
    term_at = time.monotonic()
    os.kill(fleet.instances["pp1"]["pid"], signal.SIGTERM)
    status, text = wait_for("pp1's readiness to say draining", lambda: (lambda r: r if r[0] == 503 else None)(
        get(fleet.instance_url("pp1") + "/readyz")), 2)
    assert text.startswith("draining"), text
    wait_for("HAProxy to see pp1 draining", lambda: fleet.balancer_status()["pp1"].startswith("DRAIN"), 5, 0.02)
    figures["drain_seen_by_haproxy_s"] = round(time.monotonic() - term_at, 2)
    rc, out = load(fleet.url, ogg, "--sessions", "1", "--seconds", "1")
    assert rc == 0, out
    rc, out = two.result()
    assert rc == 0, out  # the call on pp1 ran to its end
    for s in out["sessions"]:
        assert "error" not in s and s["pages"] >= (30 if PACED else 1), s
    pid = fleet.instances["pp1"]["pid"]
    wait_for("pp1 to exit 0", lambda: f"pp1 (pid {pid}) exited with 0" in fleet.output(), 10)
    figures["drain_s"] = round(time.monotonic() - term_at, 2)
    with open(fleet.instances["pp1"]["log"]) as f:
        drained = [line for line in f if line.startswith("Drained after")]
    assert drained, "pp1 did not report its drain"
    wait_for("HAProxy to mark pp1 down", lambda: "DOWN" in fleet.balancer_status()["pp1"], 5)

    # A second SIGTERM ends the call now.
    wait_for_idle(fleet, ("pp2",))
    one = Load(fleet.url, ogg, "--sessions", "1", "--seconds", "10")
    wait_for("a call on pp2", lambda: fleet.calls("pp2") == 1, 60)
    pid = fleet.instances["pp2"]["pid"]
    # Drain is not for the balancer's clients, nor for proxied requests.
    assert post(fleet.url + "/admin/drain")[0] == 403
    assert post(fleet.instance_url("pp2") + "/admin/drain", {"X-Forwarded-For": "192.0.2.1"})[0] == 403
    status, text = post(fleet.instance_url("pp2") + "/admin/drain")
    assert status == 202 and text.startswith("draining: 1 calls"), (status, text)
    assert get(fleet.instance_url("pp2") + "/readyz")[1].startswith("draining")
    os.kill(pid, signal.SIGTERM)
    rc, out = one.result()
    s = out["sessions"][0]
    assert s["close"]["code"] == 1001 and s["pages"] < 100, s
    wait_for("pp2 to exit 0", lambda: f"pp2 (pid {pid}) exited with 0" in fleet.output(), 10)


def check_busy_retried(tmp, fixtures, ogg, parse, figures):
    """An instance that filled up since HAProxy's last agent check refuses
    the call HAProxy sends it with 503 before the websocket opens, and
    HAProxy tries the call on another instance: no caller is told busy
    while an instance has room. Here the agent checks are two minutes apart
    and pp0 is filled behind HAProxy's back."""
    os.mkdir(os.path.join(tmp, "stale"))
    fleet = Fleet(os.path.join(tmp, "stale"), fixtures, ["--max-sessions", "2", "--batch"], instances=2,
                  check_ms=120000)
    try:
        direct = Load(fleet.instance_url("pp0"), ogg, "--sessions", "2", "--seconds", "6")
        wait_for("pp0 full", lambda: fleet.calls("pp0") == 2, 60)
        # leastconn: HAProxy saw none of pp0's calls, so one of these goes there.
        rc, out = load(fleet.url, ogg, "--sessions", "2", "--seconds", "2")
        assert rc == 0, out
        assert direct.result()[0] == 0
        # One or both (the second may come while the first is retried).
        refused = value(metrics_of(fleet, "pp0", parse), "personaplex_calls_refused_total", reason="busy")
        assert refused in (1, 2), refused
        assert value(metrics_of(fleet, "pp1", parse), "personaplex_calls_total", kind="chat") == 2
        redispatched = int(fleet.balancer_stats()["pp0"]["wredis"])
        assert redispatched == refused, fleet.balancer_stats()["pp0"]
        figures["busy_calls_redispatched"] = redispatched
        assert fleet.stop() == 0, fleet.output()
    except BaseException:
        log(fleet.output())
        raise
    finally:
        fleet.stop()


def check_service_config(tmp):
    """pipelines/deploy/haproxy.cfg is valid for HAProxy (without its
    certificate, which a test machine lacks)."""
    deploy = os.path.join(ROOT, "pipelines", "deploy")
    with open(os.path.join(deploy, "haproxy.cfg")) as f:
        cfg = f.read()
    cfg = re.sub(r" ssl crt \S+ alpn \S+", "", cfg).replace("log /dev/log local0", "")
    cfg = cfg.replace("/etc/haproxy/errors/personaplex-busy.http", os.path.join(deploy, "busy.http"))
    path = os.path.join(tmp, "service-haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    p = subprocess.run([shutil.which("haproxy") or "/usr/sbin/haproxy", "-c", "-f", path], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and "Configuration file is valid" in p.stdout + p.stderr, p.stdout + p.stderr


def main():
    fixtures = os.environ.get("PERSONAPLEX_FIXTURES", "")
    if not os.path.isfile(os.path.join(fixtures, "lm", "weights.safetensors")):
        log("skipped: the reference fixtures are not there (PERSONAPLEX_FIXTURES)")
        sys.exit(SKIP)
    if not shutil.which("haproxy") and not os.access("/usr/sbin/haproxy", os.X_OK):
        log("skipped: haproxy is not installed")
        sys.exit(SKIP)
    parse = prometheus_parser()
    tmp = tempfile.mkdtemp(prefix="pp-fleet-")
    fleet = None
    try:
        ogg = os.path.join(tmp, "user.ogg")
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=" + os.path.join(fixtures, "lm", "user.wav"),
                        "!", "decodebin", "!", "audioconvert", "!", "audioresample", "!", "opusenc", "!",
                        "oggmux", "!", "filesink", "location=" + ogg], check=True, timeout=60)
        # The launcher finds the build's server through PERSONAPLEX_SERVER.
        fleet = Fleet(tmp, fixtures, ["--max-sessions", "2", "--batch", "--stun-server", "stun://127.0.0.1:3478",
                                      "--turn-server", "turn://fleet:s%40cret@127.0.0.1:3479"])
        check_service_config(tmp)
        check_ice_servers(fleet)
        check_options(fleet, fixtures)
        figures = {}
        check_capacity(fleet, ogg, parse, figures)
        check_health(fleet, ogg, figures)
        check_kill(fleet, ogg, figures)
        check_drain(fleet, ogg, figures)
        assert fleet.stop() == 0, fleet.output()
        check_busy_retried(tmp, fixtures, ogg, parse, figures)
        print(json.dumps(figures))
        print("ok")
    except BaseException:
        if fleet:
            log(fleet.output())
        raise
    finally:
        if fleet:
            fleet.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
