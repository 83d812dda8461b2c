"""The ingress during an outage of its storage (the Ceph OSD SIGKILLed) or
its transport (the RabbitMQ broker SIGKILLed), on real services with the
shipped timeouts (etc/imgnode/examples/cluster.ini: osd_op_timeout 30s,
mon_op_timeout 10s; [ingress] dependency_wait 5s). No storage or transport
call runs on an HTTP thread or on the ingress's heartbeat's path, and each
dependency has a breaker (docs/design.md, "Outages"), so:

- /healthz answers within a second throughout;
- once the dependency is known down (the first 503, within dependency_wait
  of the first request that needs it), every request needing it gets 503
  {"error": "storage unavailable" | "transport unavailable"} with
  Retry-After within a second, /readyz says 503 naming it, and
  imgnode_dependency_up says 0;
- the log says it once when it goes and once when it is back, never once
  per request, and nothing is restarted (no "heartbeat missed");
- once it is back, jobs flow again.

Counted over a fixed number of requests; the only bounds on time are
latencies of single loopback requests, with margins."""
import json
import re
import subprocess
import threading
import time

import pytest
import requests

from nodelib import BUILD, CEPH, Node, error_of, rabbitmq, start

IMGNODECTL = BUILD / "imgnodectl"
FAST = 1.0  # s: /healthz, and a 503 once the dependency is known down
DEPENDENCY_WAIT = 5.0  # s: the shipped [ingress] dependency_wait
DOWN_REQUESTS = 35  # requests during the outage, one a second: it outlasts
# osd_op_timeout (30s), so a stuck call returns and pings go on meanwhile


def shipped(path, broker_url, ceph_conf):  # noqa: F811
    """The cluster example's timeouts, queues named after path."""
    return (f"[transport]\nplugin = amqp\nurl = {broker_url}\n"
            f"queue = {path.name}.jobs\ndead_queue = {path.name}.dead\n"
            "heartbeat = 30s\n"
            f"[storage]\nplugin = rados\nconf = {ceph_conf}\n"
            "osd_op_timeout = 30s\nmon_op_timeout = 10s\n"
            "mount_timeout = 10s\n")


@pytest.fixture
def node(tmp_path, broker, ceph):  # noqa: F811
    path = tmp_path / "n"
    path.mkdir()
    s = start(path, workers=1, wait_max="30s",
              extra=shipped(path, broker[1], ceph[1]))
    yield s
    s.stop()


class Healthz(threading.Thread):
    """Asks /healthz every 0.2 s until stopped; keeps each answer's time
    (a failure counts as None)."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s = s
        self.times = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            t = time.monotonic()
            try:
                ok = self.s.get("/healthz", timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            self.times.append(time.monotonic() - t if ok else None)
            self.done.wait(0.2)

    def stop(self):
        self.done.set()
        self.join(30)
        assert self.times, "no /healthz was asked"
        assert None not in self.times, \
            f"{self.times.count(None)} /healthz failed of {len(self.times)}"
        return max(self.times)


def restarts(s):
    """Restarts of every child of the node, from imgnodectl status."""
    out = subprocess.run([str(IMGNODECTL), "-s",
                          str(s.node.runtime / "control.sock"), "--json",
                          "status"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    found = {}

    def walk(n):
        for c in n.get("children", []):
            found[c["id"]] = c.get("restarts", 0)
            walk(c)
    walk(json.loads(out)["tree"])
    return found


def timed(fn, *args, **kw):
    t = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t


def dependency_up(s, name):
    return s.metric(f'imgnode_dependency_up{{dependency="{name}"}}')


def ingress_lines(s, pattern):
    return [x for x in s.lines if re.search(r"ingress: " + pattern, x)]


def outage(s, images, name, kill, revive):
    """Kills the dependency called name, checks the node answers as the
    module says, revives it; returns the figures measured."""
    data = images("tiny.jpg")
    # pipelines of this outage only: a result another test made would be
    # a cache hit, answered without the transport
    widths = iter(range(20, 1000) if name == "storage"
                  else range(1000, 2000))
    r = s.submit(data, pipeline=f"thumbnail({next(widths)})|png", wait=30)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    assert dependency_up(s, name) == 1, s.log()
    before = restarts(s)
    hz = Healthz(s)
    hz.start()
    figures = {}
    try:
        kill()
        killed = time.monotonic()
        # until the first 503: a fixed number of uploads at most
        slowest = 0
        for _ in range(100):
            r, dt = timed(s.submit, data,
                          pipeline=f"thumbnail({next(widths)})|png",
                          timeout=60)
            slowest = max(slowest, dt)
            if r.status_code == 503:
                break
            assert r.status_code == 202, r.text
            time.sleep(0.2)
        body = error_of(r, 503, f"{name} unavailable")
        figures["first 503 after kill"] = time.monotonic() - killed
        # no request waited longer than dependency_wait (with a margin)
        assert slowest < DEPENDENCY_WAIT + 3, slowest
        assert r.headers["Retry-After"] == "5"
        assert body["detail"], body
        # known down: every request needing it answers at once
        for i in range(DOWN_REQUESTS):
            r, dt = timed(s.submit, data,
                          pipeline=f"thumbnail({next(widths)})|png",
                          timeout=60)
            slowest = max(slowest, dt)
            error_of(r, 503, f"{name} unavailable")
            assert r.headers["Retry-After"] == "5"
            assert dt < FAST, (i, dt, r.text)
            if name == "storage":  # reading a job needs the storage
                r, dt = timed(s.get, f"/v1/jobs/{job}", timeout=60)
                error_of(r, 503, "storage unavailable")
                assert dt < FAST, (i, dt)
            r, dt = timed(s.get, "/readyz", timeout=60)
            body = error_of(r, 503, "not ready")
            assert body[name] != "ok" and name in body["detail"], body
            assert dt < FAST, dt
            assert dependency_up(s, name) == 0
            time.sleep(1)
        figures["slowest POST"] = slowest
        revive()
        revived = time.monotonic()
        for _ in range(300):  # jobs flow again: bounded by count
            r = s.submit(data, pipeline=f"thumbnail({next(widths)})|png",
                         wait=30, timeout=60)
            if r.status_code == 200:
                break
            assert r.status_code in (202, 503), r.text
            time.sleep(0.5)
        assert r.status_code == 200, s.log()
        figures["recovered after revival"] = time.monotonic() - revived
    finally:
        figures["slowest /healthz"] = hz.stop()
    assert dependency_up(s, name) == 1, s.log()
    assert s.get("/readyz").status_code == 200
    # one line when it went, one when it came back
    down = ingress_lines(s, f"{name} unavailable: ")
    back = ingress_lines(s, rf"{name} available again after \d+ s")
    assert len(down) == 1 and len(back) == 1, (down, back)
    assert not [x for x in s.lines if "heartbeat missed" in x], s.log()
    assert restarts(s) == before
    figures["down line"] = down[0].strip()
    return figures


def test_osd_killed(node, ceph, images):  # noqa: F811
    def osd(cmd):
        subprocess.run([str(CEPH), cmd, str(ceph[0])], check=True,
                       capture_output=True, timeout=300)
    figures = outage(node, images, "storage", lambda: osd("kill-osd"),
                     lambda: osd("start-osd"))
    print("OSD SIGKILLed:", figures)


def test_broker_killed(node, broker, images):  # noqa: F811
    # a fresh quorum queue has no leader for a moment after a restart
    # (test_amqp_node): let it settle first
    time.sleep(3)
    figures = outage(node, images, "transport",
                     lambda: rabbitmq("kill", broker[0]),
                     lambda: rabbitmq("restart", broker[0]))
    print("broker SIGKILLed:", figures)


@pytest.mark.parametrize("ingress,ok", [
    ("", True),  # shipped: 30s + 2 x 5s < 75s
    ("wait_max = 60s\ndependency_wait = 7s\n", True),  # 74s
    ("wait_max = 60s\ndependency_wait = 8s\n", False),  # 76s
    ("dependency_wait = 30s\n", False),  # 90s
    ("dependency_wait = 30s\nproxy_timeout = 95s\n", True),
])
def test_config_check_keeps_answers_within_the_proxy_timeout(
        tmp_path, ingress, ok):
    """imgnode -t refuses a config where a request during an outage could
    be answered after the proxy gave up on it: wait_max + 2 x
    dependency_wait at or past [ingress] proxy_timeout."""
    tmp_path.chmod(0o755)
    node = Node(tmp_path)
    node.write(node.base() + "[ingress]\n" + ingress)
    r = node.run("-t")
    if ok:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 100, r.stderr
    assert "must stay below proxy_timeout" in r.stderr, r.stderr
    assert f"{node.ini}:" in r.stderr and "[ingress]" in r.stderr, r.stderr
