"""Retention ([retention]): the reaper's pass deletes results, originals
and records once their TTL has passed, on spool + fs and on amqp + rados
(objects counted with the rados CLI), and never what a job in flight or a
kept image (/v1/images: a variant's record names "image": ID) still
needs. TTLs
of seconds; every wait is for a state (bounded), and the store's size is
checked over a fixed number of jobs, not over a time window."""
import datetime
import json
import os
import subprocess
import tempfile
import time

import pytest
import requests

from nodelib import MAX_BODY, corpus, setup_extra, start, wait_for

TTL = ("[retention]\nresult_ttl = 2s\noriginal_ttl = 1s\nrecord_ttl = 2s\n"
       "interval = 1s\n")


class FsStore:
    def __init__(self, root):
        self.root = root

    def keys(self):
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")
                if p.is_file() and not p.name.startswith(".")}

    def put(self, key, data):
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get(self, key):
        return (self.root / key).read_bytes()

    def delete(self, key):
        (self.root / key).unlink()


class RadosStore:
    def __init__(self, conf, pool):
        self.conf, self.pool = conf, pool

    def rados(self, *args):
        return subprocess.run(
            ["timeout", "30", "rados", "-c", self.conf, "-p", self.pool, *args],
            capture_output=True, check=True).stdout

    def keys(self):
        return {k for k in self.rados("ls").decode().split()
                if "/" in k}  # not the script's probe object

    def put(self, key, data):
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self.rados("put", key, f.name)

    def get(self, key):
        return self.rados("get", key, "-")

    def delete(self, key):
        self.rados("rm", key)


@pytest.fixture(scope="module", params=["spool+fs", "amqp+rados"])
def kept(request, tmp_path_factory):
    """A node with TTLs of seconds and its store, on both setups."""
    path = tmp_path_factory.mktemp("retention")
    extra = setup_extra(request, path)
    s = start(path, extra=extra + TTL)
    if request.param == "amqp+rados":
        # the session's Ceph, the pool setup_extra gave the node
        store = RadosStore(request.getfixturevalue("shared_ceph")[1],
                           path.name)
    else:
        store = FsStore(path / "state" / "store")
    yield s, store
    s.stop()


def photos():
    """Real photos of the corpus within the node's max_body, smallest
    first."""
    paths = sorted((p for p in corpus("photos").values()
                    if os.path.getsize(p) <= MAX_BODY), key=os.path.getsize)
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def run_job(s, data, pipeline):
    """A job run to its end: (id, its record)."""
    r = s.submit(data, pipeline, wait=30)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    return job, s.record(job)


def objects_of(job, rec):
    return {f"jobs/{job}", f"orig/{job}", rec["result"],
            rec["result"] + ".meta"}


def stamp(text):
    """A record's timestamp, in seconds since the epoch."""
    return datetime.datetime.strptime(
        text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


def swept(s, kind):
    return s.metric(f'imgnode_swept_objects_total{{kind="{kind}"}}')


def test_expired_objects_are_deleted(kept):
    s, store = kept
    before = {k: swept(s, k) for k in ("result", "original", "record")}
    job, rec = run_job(s, photos()[0], "thumbnail(41)|png")
    mine = objects_of(job, rec) & store.keys()
    assert {f"jobs/{job}", f"orig/{job}", rec["result"]} <= mine
    # the original goes first (1 s), the record and the result after 2 s
    wait_for("the job's objects deleted", lambda: not mine & store.keys(),
             timeout=60)
    assert s.get(f"/v1/jobs/{job}").status_code == 404
    for kind in ("result", "original", "record"):
        assert swept(s, kind) > before[kind], kind


def test_variants_of_a_kept_image_stay(kept):
    """A variant of a kept image (/v1/images) keeps its record and result
    past every TTL while the image exists; a one-off job's expire
    meanwhile. DELETE then removes the image and its variants."""
    s, store = kept
    up = requests.post(s.url + "/v1/images", data=photos()[1], timeout=30)
    assert up.status_code in (200, 201), up.text
    image = up.json()["id"]
    variant = f"/v1/images/{image}/thumbnail%2843%29%7Cpng"
    r = s.get(variant)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    rec = s.record(job)
    assert rec["image"] == image
    other, orec = run_job(s, photos()[2], "thumbnail(44)|png")
    wait_for("the one-off job's objects deleted",
             lambda: not objects_of(other, orec) & store.keys(), timeout=60)
    # passes ran past every TTL: the variant and its result are there
    assert {f"jobs/{job}", rec["result"], f"img/{image}"} <= store.keys()
    again = s.get(variant)
    assert again.status_code == 200 and again.content == r.content
    assert again.headers["X-Imgnode-Job"] == job
    assert requests.delete(s.url + f"/v1/images/{image}",
                           timeout=30).status_code in (200, 204)
    wait_for("the variant's objects deleted with its image",
             lambda: not {f"jobs/{job}", rec["result"], f"img/{image}"}
             & store.keys(), timeout=60)


def test_store_stays_bounded(kept):
    """Two rounds of three jobs with new results each: after each round
    the store comes back to what it held before; nothing accumulates."""
    s, store = kept
    base = store.keys()
    images = photos()[:3]
    for round_ in range(2):
        made = set()
        for i, data in enumerate(images):
            job, rec = run_job(s, data, f"thumbnail({60 + 4 * round_ + i})"
                               "|webp(q=50)")
            made |= objects_of(job, rec)
        assert made & store.keys()
        wait_for(f"round {round_} swept",
                 lambda: not (store.keys() - base), timeout=60)
    assert store.keys() <= base


def test_jobs_in_flight_are_never_broken(kept):
    """Jobs queued while the node has no worker (reloaded with count = 0)
    stay queued, their originals kept, through whole passes that began
    after original_ttl; once the workers are back each ends done, its
    result readable just after."""
    s, store = kept
    drop_in = s.node.write("[workers]\ncount = 0\n", "zz-no-workers.ini")
    s.ctl("reload")
    s.wait(lambda: not [c for c in s.children() if c.startswith("worker.")],
           "no worker left")
    try:
        jobs = []
        for i in range(3):
            r = s.submit(photos()[0], f"blur({4 + i})|jpeg(q=50)")
            assert r.status_code == 202, r.text
            jobs.append(r.json()["id"])
        # a whole pass that began once the originals were older than
        # original_ttl (1 s): the clock awaited, then passes counted
        created = max(stamp(s.record(job)["created"]) for job in jobs)
        wait_for("the originals older than original_ttl",
                 lambda: time.time() > created + 1.5)
        passes = s.metric("imgnode_retention_passes_total")
        wait_for("a pass after", lambda: s.metric(
            "imgnode_retention_passes_total") > passes + 1, timeout=60)
        for job in jobs:
            assert s.record(job)["status"] == "queued"
            assert f"orig/{job}" in store.keys()
    finally:
        drop_in.unlink()
        s.ctl("reload")
    for job in jobs:
        rec = s.wait_status(job, ("done", "failed"), timeout=120)
        assert rec["status"] == "done", rec
        assert s.get(f"/v1/jobs/{job}/result").status_code == 200


def test_an_original_without_a_record_goes_once_old(kept):
    """An original whose record never came (an upload refused while the
    store was failing) is deleted once older than original_ttl and [workers]
    stuck_after (1h here): one dated 2 h back goes, a fresh one stays."""
    s, store = kept
    if not isinstance(store, FsStore):
        pytest.skip("rados sets an object's mtime itself: fs shows the rule")
    old, fresh = "orig/" + "a" * 32, "orig/" + "b" * 32
    store.put(old, b"old")
    store.put(fresh, b"fresh")
    back = time.time() - 7200
    os.utime(store.root / old, (back, back))
    wait_for("the old orphan deleted", lambda: old not in store.keys(),
             timeout=60)
    assert fresh in store.keys()
    store.delete(fresh)
