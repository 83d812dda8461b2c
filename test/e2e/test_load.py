"""The node under load and under fire: 500 concurrent jobs, workers
SIGKILLed every ~100 ms, and a poison job that crashes every worker it
touches. No accepted job may be lost or duplicated; every one ends done
(or, for the poison, failed with the reason)."""
import concurrent.futures
import os
import random
import shutil
import signal
import threading
import time

import pytest

from nodelib import (FIXTURES, PLUGINS, Imgnode, config, request, small_jpeg,
                     submit, wait_all)


@pytest.fixture
def loaded(node, tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugins)
    shutil.copy(FIXTURES / "segv.so", plugins / "segv.so")
    # room for all 500 jobs in flight at once, from this one client:
    # submitting outpaces the workers (which yield the CPU), and past the
    # limits the node says 429
    port = config(node, plugins=plugins,
                  extra="[ingress]\nmax_inflight = 1000\n"
                        "max_inflight_per_client = 1000\n")
    r = Imgnode(node)
    r.wait_line(r"node: ready")
    yield r, port
    r.close()


def test_500_concurrent_jobs(loaded):
    r, port = loaded
    body = small_jpeg()
    widths = list(range(50, 550))  # all distinct: no result-cache hits
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(
            lambda w: submit(port, f"thumbnail({w})|jpeg(q=70)", body),
            widths))
    assert len(set(ids)) == 500
    recs = wait_all(port, ids)
    for w, job in zip(widths, ids):
        rec = recs[job]
        assert rec["status"] == "done", rec
        assert rec["output"]["format"] == "jpeg"
        assert rec["output"]["width"] == w
        assert rec["output"]["height"] == round(w * 450 / 600) or \
            abs(rec["output"]["height"] - w * 0.75) <= 1
        assert rec["attempts"] == 1
    # spot-check the bytes themselves
    status, headers, data = request(port, "GET", f"/v1/jobs/{ids[7]}/result")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert data[:2] == b"\xff\xd8"


def worker_pids(r):
    return [k["pid"] for c, k in r.children().items()
            if c.startswith("worker.") and k.get("pid")]


def jobs_done(port):
    """The node's count of jobs finished done (/metrics)."""
    _, _, data = request(port, "GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith('imgnode_jobs_total{outcome="done"} '):
            return int(line.split()[1])
    return 0


# workers the killer SIGKILLs, one after each job finished since the last
KILLS = 10


def test_killing_workers_under_load_loses_nothing(loaded):
    """200 jobs while a killer SIGKILLs a worker KILLS times, each time
    after one more job has been done: the kills are counted and spread
    over the work, not over a time window. Every job ends done, some on a
    second delivery."""
    r, port = loaded
    body = small_jpeg()
    kills = []
    stop = threading.Event()

    def killer():
        last = jobs_done(port)
        while len(kills) < KILLS and not stop.is_set():
            done = jobs_done(port)
            pids = worker_pids(r)
            if done > last and pids:
                pid = random.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                    last = done
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(
                lambda w: submit(port, f"thumbnail({w})|sharpen|jpeg", body),
                range(100, 300)))
        recs = wait_all(port, ids)
    finally:
        stop.set()
        t.join()
    statuses = [recs[j]["status"] for j in ids]
    assert statuses.count("done") == len(ids), \
        [recs[j]["error"] for j in ids if recs[j]["status"] != "done"][:5]
    assert len(kills) == KILLS, kills
    assert r.proc.poll() is None  # the node itself never went down
    assert any(recs[j]["attempts"] > 1 for j in ids)


def test_poison_job_fails_after_the_delivery_limit(loaded):
    r, port = loaded
    body = small_jpeg()
    poison = submit(port, "segv|jpeg", body)
    normal = [submit(port, f"thumbnail({w})|jpeg", body)
              for w in range(60, 90)]
    recs = wait_all(port, [poison] + normal)
    rec = recs[poison]
    assert rec["status"] == "failed"
    assert "delivery limit (5) exceeded" in rec["error"], rec["error"]
    assert all(recs[j]["status"] == "done" for j in normal)
    assert r.proc.poll() is None
    restarts = sum(k.get("restarts", 0) for c, k in r.children().items()
                   if c.startswith("worker."))
    assert restarts == 5, restarts
    status, _, data = request(port, "GET", f"/v1/jobs/{poison}/result")
    assert status == 422 and b"delivery limit" in data
