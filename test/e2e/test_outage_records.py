"""Every job record reaches a final state (issue 21, point 4), on spool + fs
and on amqp + rados against a real RabbitMQ and a real Ceph:

- a submission answered 503 because its publish was refused or never
  confirmed (the broker frozen with SIGSTOP) leaves no record, or one
  marked failed with the reason, never one queued for ever;
- records planted as stuck (queued or running, their message lost) are
  published again by the reaper's sweep once [workers] stuck_after has
  passed, with the reason in the record, or failed with the reason (the
  original gone, or published again stuck_republish times already);
- a worker recycled after every job ([workers] max_jobs = 1), or rolled
  by a reload in the middle of a job, with the broker sending jobs ahead
  (prefetch 4) uses up no delivery of the jobs it was sent: each job runs
  as attempt 1, none reaches delivery_limit.

The rados nodes use a pool of this module's own, so the sweep never sees
another module's records."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from nodelib import Node, error_of, start

POOL = "outage-records"
TERMINAL = ("done", "failed")


# ---- where records live: the fs store or the rados pool ----

class FsStore:
    def __init__(self, server):
        self.root = server.node.state / "store"

    def ids(self):
        d = self.root / "jobs"
        return {p.name for p in d.iterdir() if not p.name.startswith(".")} \
            if d.is_dir() else set()

    def get(self, key):
        return (self.root / key).read_bytes()

    def put(self, key, data):
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class RadosStore:
    def __init__(self, conf):
        self.conf = conf

    def rados(self, *args, data=None):
        return subprocess.run(
            ["timeout", "30", "rados", "-c", self.conf, "-p", POOL, *args],
            input=data, capture_output=True, check=True).stdout

    def ids(self):
        return {k[5:] for k in self.rados("ls").decode().split()
                if k.startswith("jobs/")}

    def get(self, key):
        return self.rados("get", key, "-")

    def put(self, key, data):
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self.rados("put", key, f.name)


@pytest.fixture(scope="module", params=["spool+fs", "amqp+rados"])
def setup(request):
    """make(path, transport=..., workers=..., ...) starts a node on this
    parametrization's services; returns (Server, store)."""
    amqp = request.param == "amqp+rados"
    if amqp:
        url = request.getfixturevalue("shared_broker")[1]
        conf = request.getfixturevalue("shared_ceph")[1]
        # a pool of the module's own (the sweep lists the whole pool)
        subprocess.run(["timeout", "60", "ceph", "-c", conf, "osd", "pool",
                        "create", POOL, "8", "8"], check=True,
                       capture_output=True)

    def make(path, transport="", workers="", amqp_transport="", count=1,
             **kw):
        extra = "[transport]\n" + transport
        if amqp:
            extra += (f"plugin = amqp\nurl = {url}\n"
                      f"queue = {path.name}.jobs\n"
                      f"dead_queue = {path.name}.dead\n"
                      "heartbeat = 2s\nconnect_timeout = 2s\n"
                      + amqp_transport +
                      f"[storage]\nplugin = rados\nconf = {conf}\n"
                      f"pool = {POOL}\n"
                      "osd_op_timeout = 5s\nmon_op_timeout = 5s\n")
        extra += "[workers]\n" + workers
        s = start(path, workers=count, extra=extra, **kw)
        return s, (RadosStore(conf) if amqp else FsStore(s))
    make.amqp = amqp
    return make


@pytest.fixture
def nodes(setup, tmp_path):
    made = []

    def make(**kw):
        path = tmp_path / f"n{uuid.uuid4().hex[:12]}"  # names its queues
        path.mkdir()
        s, store = setup(path, **kw)
        made.append(s)
        return s, store
    make.amqp = setup.amqp
    yield make
    for s in made:
        s.stop()


def record(store, job):
    return json.loads(store.get(f"jobs/{job}"))


def record_api(s, job):
    """The job's record from the API; None while the ingress is being
    replaced (a roll)."""
    try:
        return s.record(job)
    except requests.ConnectionError:
        return None


def wait_final(s, jobs, timeout=90):
    """Polls the API until every job is done or failed; their records."""
    left, recs = set(jobs), {}
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for job in list(left):
            rec = record_api(s, job)
            if rec and rec["status"] in TERMINAL:
                recs[job] = rec
                left.discard(job)
        time.sleep(0.1)
    assert not left, f"never finished: {left}\n" + s.log()
    return recs


def stamp(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        f".{int(t * 1000) % 1000:03d}Z"


# ---- a refused submission leaves no queued record ----

def broker_pids(broker_dir):
    """The broker's processes (its session), checked to be this broker's."""
    pid = int((broker_dir / "server.pid").read_text())
    out = subprocess.run(["ps", "-o", "pid=", "-s", str(pid)],
                         capture_output=True, text=True).stdout.split()
    pids = []
    for p in map(int, out):
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
        except OSError:
            continue
        if str(broker_dir).encode() in cmd or p == pid:
            pids.append(p)
    assert pid in pids
    return pids


def test_refused_publish_leaves_no_queued_record(nodes, images, request):
    data = images("tiny.jpg")
    if not nodes.amqp:
        # the queue refuses every message (spool's size cap)
        s, store = nodes(transport="max_message = 16\n")
        r = s.submit(data, pipeline="png")
        body = error_of(r, 503, "transport unavailable")
        assert "queue" in body["detail"]
        assert store.ids() == set()
        return
    s, store = nodes()
    assert s.submit(data, pipeline="png", wait=20).status_code == 200
    before = store.ids()
    bdir = request.getfixturevalue("shared_broker")[0]
    pids = broker_pids(bdir)
    for p in pids:
        os.kill(p, signal.SIGSTOP)  # a hung broker: nothing is confirmed
    try:
        r = s.submit(data, pipeline="jpeg")
        body = error_of(r, 503, "transport unavailable")
        new = store.ids() - before
        recs = {j: record(store, j) for j in new}
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    # the detail names the publish, in the ingress's words or (once the
    # transport's breaker has the failure) the plugin's own
    assert re.search(r"unable to (queue the job|publish)", body["detail"]), \
        body
    # the record of the refused job, if any is left, is over, with the
    # reason: never queued for ever
    for job, rec in recs.items():
        assert rec["status"] == "failed", rec
        assert rec["error"].startswith("not queued: unable to queue"), rec
        assert rec["error"].endswith("; the upload was refused")
    assert s.metric('imgnode_unqueued_records_total{action="failed"}') \
        == len(recs)
    # once the broker is back, a copy that reaches a worker finds the job
    # over and leaves it so; new jobs go through
    deadline = time.monotonic() + 60
    while requests.get(s.url + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, s.log()
        time.sleep(0.2)
    assert s.submit(data, pipeline="thumbnail(20)|png",
                    wait=20).status_code == 200
    for job in recs:
        assert record(store, job)["status"] == "failed"


# ---- the sweep ----

def plant(store, template, status, pipeline, orig=None, swept=None):
    """A record like template, queued or running, whose message is lost;
    its original is orig (None: none). Returns its id."""
    job = uuid.uuid4().hex
    rec = {k: v for k, v in template.items()
           if k not in ("output", "processed", "worker", "started",
                        "finished", "error", "cached")}
    rec.update(id=job, status=status, pipeline=pipeline, created=stamp(),
               started=stamp() if status == "running" else None,
               finished=None, error=None, output=None, attempts=0)
    if status == "running":
        rec.update(attempts=1, worker="worker.9")
    if swept:
        rec["swept"] = swept
    if orig is not None:
        store.put(f"orig/{job}", orig)
    store.put(f"jobs/{job}", json.dumps(rec).encode())
    return job


def test_sweep_republishes_or_fails_stuck_records(nodes, images):
    s, store = nodes(workers="job_timeout = 2s\n"
                    "stuck_after = 3s\nstuck_republish = 1\n")
    data = images("tiny.jpg")
    r = s.submit(data, pipeline="png", wait=20)
    assert r.status_code == 200
    template = record(store, r.headers["X-Imgnode-Job"])
    assert template["status"] == "done"
    queued = plant(store, template, "queued", "thumbnail(33)|png", data)
    running = plant(store, template, "running", "thumbnail(34)|png", data)
    no_orig = plant(store, template, "queued", "thumbnail(35)|png")
    in_vain = plant(store, template, "queued", "thumbnail(36)|png", data,
                    swept={"at": stamp(time.time() - 60), "count": 1,
                           "reason": "queued for 3 s"})
    recs = wait_final(s, [queued, running, no_orig, in_vain])
    for job, was in ((queued, "queued"), (running, "running")):
        rec = record(store, job)
        assert rec["status"] == "done", rec
        assert rec["attempts"] == 1 and rec["output"]["width"] <= 34
        assert rec["swept"]["count"] == 1
        assert rec["swept"]["reason"].startswith(f"{was} for "), rec
        assert "stuck_after" in rec["swept"]["reason"]
    assert recs[no_orig]["status"] == "failed"
    assert recs[no_orig]["error"].startswith("lost: queued for ")
    assert "its original is gone" in recs[no_orig]["error"]
    assert recs[in_vain]["status"] == "failed"
    assert "published again before, in vain" in recs[in_vain]["error"]
    assert s.metric('imgnode_stuck_jobs_total{action="republished"}') == 2
    assert s.metric('imgnode_stuck_jobs_total{action="failed"}') == 2
    # the job that went well was never touched
    assert record(store, template["id"]) == template


def test_stuck_after_must_exceed_job_timeout(tmp_path):
    n = Node(tmp_path)
    n.write(n.base() + "[workers]\njob_timeout = 5s\nstuck_after = 5s\n")
    r = n.run("-t")
    assert r.returncode == 100
    assert "[workers] stuck_after: 5s is not longer than [workers] " \
        "job_timeout" in r.stderr


# ---- recycled workers ----

def test_recycled_worker_uses_up_no_delivery(nodes, images):
    s, store = nodes(count=2, workers="max_jobs = 1\n",
                    transport="delivery_limit = 2\n",
                    amqp_transport="prefetch = 4\n")
    data = images("tiny.jpg")
    jobs = []
    for w in range(40, 52):
        r = s.submit(data, pipeline=f"thumbnail({w})|png")
        assert r.status_code == 202, r.text
        jobs.append(r.json()["id"])
    recs = wait_final(s, jobs, timeout=180)
    bad = {j: (r["status"], r["attempts"], r.get("error"))
           for j, r in recs.items()
           if r["status"] != "done" or r["attempts"] != 1}
    assert not bad, bad
    assert s.metric("imgnode_redeliveries_total") == 0


def test_rolled_worker_uses_up_no_delivery(nodes, images):
    """A roll (reload) SIGTERMs each worker mid-job: its last ack must not
    free a prefetch slot that the close would count as a delivery."""
    s, store = nodes(workers="", transport="delivery_limit = 2\n",
                     amqp_transport="prefetch = 4\n", max_body="4M")
    data = images("bridge.jpg")  # 4352x2448: each job takes a while
    jobs = []
    for w in range(12):
        r = s.submit(data, pipeline=f"thumbnail({2000 + w})|png")
        assert r.status_code == 202, r.text
        jobs.append(r.json()["id"])
    for gen in range(2, 5):
        # a worker is busy with a job: the roll's SIGTERM catches it
        s.wait(lambda: any((record_api(s, j) or {}).get("status")
                           == "running" for j in jobs),
               "a running job", timeout=120)
        s.ctl("reload")
        s.wait(lambda: s.tree()["node"]["generation"] == gen,
               f"generation {gen}")
    recs = wait_final(s, jobs, timeout=300)
    bad = {j: (r["status"], r["attempts"], r.get("error"))
           for j, r in recs.items()
           if r["status"] != "done" or r["attempts"] != 1}
    assert not bad, bad
