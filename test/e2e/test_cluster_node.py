"""The node on its production setup: jobs in a real RabbitMQ, images and
records in a real Ceph cluster (both started by the project's scripts on
loopback). Every kind of answer the API gives, on this setup too, and the
OSD stopped under load: 503 with Retry-After while it is away, no accepted
job lost, and recovery without restarting the node."""
import concurrent.futures
import json
import os
import subprocess
import threading
import time

import pytest

from nodelib import CEPH, Imgnode, config, request, small_jpeg, wait_all

POOL = "cluster-node"


@pytest.fixture
def cluster_node(node, shared_broker, shared_ceph):  # noqa: F811
    """A node on the session's broker and Ceph, in a pool of the
    module's own; the OSD it may stop is running again after it."""
    broker, ceph = shared_broker, shared_ceph
    subprocess.run([str(CEPH), "start", str(ceph[0])], check=True,
                   capture_output=True, timeout=300,
                   env=dict(os.environ, POOL=POOL))
    port = config(node, extra=(
        f"[transport]\nplugin = amqp\nurl = {broker[1]}\n"
        f"queue = cluster.{id(node)}.jobs\n"
        f"dead_queue = cluster.{id(node)}.dead\n"
        "heartbeat = 2s\nconnect_timeout = 2s\n"
        f"[storage]\nplugin = rados\nconf = {ceph[1]}\npool = {POOL}\n"
        "osd_op_timeout = 3s\nmon_op_timeout = 3s\n"))
    r = Imgnode(node)
    try:
        r.wait_line(r"node: ready")
        yield r, port, ceph[0]
    finally:
        r.close()
        # the next module's cluster too: what a test stopped is started
        subprocess.run([str(CEPH), "start", str(ceph[0])], check=True,
                       capture_output=True, timeout=300)


def test_api_on_amqp_and_rados(cluster_node):
    r, port, _ = cluster_node
    body = small_jpeg()
    status, headers, data = request(
        port, "POST", "/v1/jobs?pipeline=thumbnail(120)|png&wait=30", body)
    assert status == 200 and headers["Content-Type"] == "image/png", data
    job = headers["X-Imgnode-Job"]
    status, _, data = request(port, "GET", f"/v1/jobs/{job}")
    rec = json.loads(data)
    assert rec["status"] == "done" and rec["output"]["width"] == 120
    status, _, data = request(port, "GET", f"/v1/jobs/{job}/result")
    assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
    # the same request again is served from the result store (in Ceph)
    status, headers, _ = request(
        port, "POST", "/v1/jobs?pipeline=thumbnail(120)|png&wait=30", body)
    assert status == 200
    _, _, data = request(port, "GET", f"/v1/jobs/{headers['X-Imgnode-Job']}")
    assert json.loads(data)["cached"] is True
    # errors look the same as on spool + fs
    assert request(port, "POST", "/v1/jobs?pipeline=thumbnail(0)", body)[0] \
        == 400
    assert request(port, "POST", "/v1/jobs?pipeline=thumbnail(9)",
                   b"not an image")[0] == 415
    assert request(port, "GET", "/v1/jobs/" + "0" * 32)[0] == 404
    assert request(port, "GET", "/readyz")[0] == 200


def wait_ready(port, want, timeout):
    """Polls /readyz until it answers WANT (bounded: a liveness check,
    not a measure of speed)."""
    deadline = time.monotonic() + timeout
    while request(port, "GET", "/readyz")[0] != want:
        assert time.monotonic() < deadline, f"/readyz never answered {want}"
        time.sleep(0.2)


# uploads each client makes before the OSD is stopped; uploads checked one
# by one once it is back
BEFORE, BACK = 3, 3


def test_osd_stopped_under_load(cluster_node):
    """Three clients upload while the OSD is stopped and started again.
    Counted over a fixed number of uploads, never over a time window: the
    OSD stops once each client has made BEFORE uploads; the clients go on
    until one of their uploads is answered 503 with Retry-After (any
    refusal must be that) and /readyz says 503; once the OSD is back BACK
    uploads are accepted. Every accepted job ends done."""
    r, port, ceph_dir = cluster_node
    body = small_jpeg()
    accepted, unavailable = [], []
    stop = threading.Event()
    widths = iter(range(100, 100000))
    lock = threading.Condition()
    made = [0]
    clients = 3

    def upload():
        with lock:
            w = next(widths) % 500 + 20
        status, headers, data = request(
            port, "POST", f"/v1/jobs?pipeline=thumbnail({w})|jpeg", body)
        with lock:
            if status == 202:
                accepted.append(json.loads(data)["id"])
            else:
                assert status == 503, (status, data)
                assert "Retry-After" in headers
                unavailable.append(status)
                lock.notify_all()
        return status

    def load():
        for _ in range(BEFORE):
            upload()
            with lock:
                made[0] += 1
                lock.notify_all()
        while not stop.is_set():
            upload()
            time.sleep(0.05)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(load) for _ in range(clients)]
        try:
            with lock:
                assert lock.wait_for(lambda: made[0] == clients * BEFORE,
                                     timeout=300)
            subprocess.run([str(CEPH), "stop-osd", str(ceph_dir)],
                           check=True, capture_output=True, timeout=120)
            # the clients' uploads meet the outage: the first 503. No
            # upload of ours on top: requests wait for osd_op_timeout in
            # turn, under one lock that the ingress's main thread takes
            # too, and with a few more it misses its heartbeat and is
            # killed (docs/design.md §7: the I/O pool is not built yet)
            with lock:
                assert lock.wait_for(lambda: unavailable, timeout=120), \
                    "no 503 while the OSD was away"
            assert request(port, "GET", "/readyz")[0] == 503
            subprocess.run([str(CEPH), "start-osd", str(ceph_dir)],
                           check=True, capture_output=True, timeout=300)
            wait_ready(port, 200, 120)
            for _ in range(BACK):
                assert upload() == 202, "an upload refused after the OSD came back"
        finally:
            stop.set()
        for f in futures:
            f.result()
    recs = wait_all(port, accepted, timeout=300)
    assert all(recs[j]["status"] == "done" for j in accepted), \
        [recs[j] for j in accepted if recs[j]["status"] != "done"][:3]
    assert request(port, "GET", "/readyz")[0] == 200
    # nothing was restarted to recover
    assert all(k.get("restarts", 0) == 0 for k in r.children().values())
