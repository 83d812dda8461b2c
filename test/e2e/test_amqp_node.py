"""The node on the amqp transport against a real RabbitMQ, started by
test/lib/rabbitmq on loopback (one broker for the module, its state in a
temp dir): a job's round trip, a poison job that the broker dead-letters
after its delivery limit and the reaper fails with the reason, and the
broker SIGKILLed under a running node, which answers 503 meanwhile and
recovers by itself once the broker is back. Each test has queues of its
own."""
import itertools
import json
import shutil
import time

import pytest

from nodelib import (FIXTURES, PLUGINS, Imgnode, config, rabbitmq, request,
                     small_jpeg, submit, wait_all)

_queues = itertools.count(1)


@pytest.fixture
def amqp_node(node, tmp_path, broker):
    """Starts the node on the broker with fresh queues (and the segv
    filter among its plugins); returns (Imgnode, port)."""
    made = []

    def start(extra=""):
        plugins = tmp_path / "plugins"
        shutil.copytree(PLUGINS, plugins)
        shutil.copy(FIXTURES / "segv.so", plugins / "segv.so")
        n = next(_queues)
        port = config(node, plugins=plugins, extra=(
            f"[transport]\nplugin = amqp\nurl = {broker[1]}\n"
            f"queue = e2e.{n}.jobs\ndead_queue = e2e.{n}.dead\n"
            "heartbeat = 2s\nconnect_timeout = 2s\n" + extra))
        r = Imgnode(node)
        made.append(r)
        r.wait_line(r"node: ready")
        return r, port
    yield start
    for r in made:
        r.close()


def test_job_round_trip(amqp_node):
    r, port = amqp_node()
    status, headers, data = request(
        port, "POST", "/v1/jobs?pipeline=thumbnail(64)|webp&wait=20",
        small_jpeg())
    assert status == 200, data
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    job = headers["X-Imgnode-Job"]
    status, _, data = request(port, "GET", f"/v1/jobs/{job}")
    rec = json.loads(data)
    assert rec["status"] == "done" and rec["attempts"] == 1, rec


def test_poison_job_is_dead_lettered_by_the_broker(amqp_node):
    r, port = amqp_node()
    body = small_jpeg()
    poison = submit(port, "segv|jpeg", body)
    normal = [submit(port, f"thumbnail({w})|jpeg", body)
              for w in range(60, 70)]
    recs = wait_all(port, [poison] + normal, timeout=120)
    rec = recs[poison]
    assert rec["status"] == "failed"
    assert "delivery limit (5) exceeded" in rec["error"], rec["error"]
    assert all(recs[j]["status"] == "done" for j in normal)
    # one crash per delivery, and the reaper's reason from x-death
    restarts = sum(k.get("restarts", 0) for c, k in r.children().items()
                   if c.startswith("worker."))
    assert restarts == 5, restarts


def test_broker_killed_and_back(amqp_node, broker):
    r, port = amqp_node()
    ready = time.monotonic()
    body = small_jpeg()
    status, _, _ = request(port, "POST",
                           "/v1/jobs?pipeline=thumbnail(40)|png&wait=20",
                           body)
    assert status == 200
    # a quorum queue SIGKILLed within ~1 s of its declare can come back
    # leaderless and empty (RabbitMQ 3.10.8, measured): let it settle
    time.sleep(max(0, ready + 3 - time.monotonic()))
    before = {c: k.get("restarts", 0) for c, k in r.children().items()}
    rabbitmq("kill", broker[0])
    status, headers, data = request(port, "POST",
                                    "/v1/jobs?pipeline=thumbnail(41)|png",
                                    body)
    assert status == 503, data
    assert headers["Retry-After"] == "5"
    status, _, _ = request(port, "GET", "/readyz")
    assert status == 503
    rabbitmq("restart", broker[0])
    deadline = time.monotonic() + 30
    while request(port, "GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline, "".join(r.lines[-30:])
        time.sleep(0.2)
    status, _, _ = request(port, "POST",
                           "/v1/jobs?pipeline=thumbnail(42)|png&wait=20",
                           body)
    assert status == 200
    # reconnected inside the processes: nothing was restarted
    after = {c: k.get("restarts", 0) for c, k in r.children().items()}
    assert after == before
    assert r.proc.poll() is None
