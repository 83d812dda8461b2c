"""Idempotency-Key on POST /v1/jobs (issue 22, point 4): a retry makes
no second job, on whichever node it lands.

Two nodes sharing their queue and store (spool + fs, then amqp + rados
on the real RabbitMQ and Ceph), with two API keys: the same key and
request answer the same job from either node (Idempotent-Replayed: true),
counted in imgnode_jobs_accepted_total; another request under the key is
a 422; another API key's same key is its own; duplicates sent at once
make one job; a malformed key is a 400. Then a node with a 1 s window:
retention sweeps the key's record (counted) and the key makes a new job.
Then nginx (the shipped site): a POST with the key, sent to a node that
dies mid-request, is retried on the other and accepted there; one
without it is not retried (the client gets nginx's 502)."""
import socket
import subprocess
import threading
import uuid

import pytest
import requests

from nodelib import (ROOT, error_of, free_port, setup_extra, small_jpeg,
                     start, wait_for)

ALICE, BOB = "key-alice-0123456789", "key-bob-0123456789"
KEYS = f"alice:{ALICE}, bob:{BOB}"
PIPE = "thumbnail(32)|jpeg"


def accepted(nodes):
    return sum(n.metric("imgnode_jobs_accepted_total") for n in nodes)


def post(node, body, key=None, api=ALICE, pipeline=PIPE, **params):
    headers = {"X-Api-Key": api}
    if key is not None:
        headers["Idempotency-Key"] = key
    return node.submit(body, pipeline=pipeline, headers=headers, **params)


@pytest.fixture(scope="module", params=["spool+fs", "amqp+rados"])
def pair(request, tmp_path_factory):
    """Two nodes on one queue and one store."""
    shared = tmp_path_factory.mktemp("idem")
    shared.chmod(0o755)
    extra = setup_extra(request, shared)
    if not extra:
        extra = (f"[transport]\nplugin = spool\ndir = {shared}/spool\n"
                 f"[storage]\nplugin = fs\ndir = {shared}/store\n")
    nodes = []
    try:
        for name in ("a", "b"):
            (shared / name).mkdir()
            nodes.append(start(shared / name, workers=1, extra=extra,
                               api_keys=KEYS))
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def test_same_key_and_request_is_one_job_from_either_node(pair):
    a, b = pair
    body, key = small_jpeg(), str(uuid.uuid4())
    before = accepted(pair)
    first = post(a, body, key)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    job = first.json()["id"]
    for node in (b, a, b):
        again = post(node, body, key)
        assert again.status_code == 202, again.text
        assert again.json()["id"] == job
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["X-Imgnode-Job"] == job
    assert accepted(pair) == before + 1
    # a replay that waits answers the job's result, as the first would
    done = post(b, body, key, wait=20)
    assert done.status_code == 200, done.text
    assert done.headers["X-Imgnode-Job"] == job
    assert done.headers["Idempotent-Replayed"] == "true"
    assert done.content[:2] == b"\xff\xd8"
    assert accepted(pair) == before + 1


def test_same_key_with_another_request_is_422(pair):
    a, b = pair
    body, key = small_jpeg(), str(uuid.uuid4())
    assert post(a, body, key).status_code == 202
    before = accepted(pair)
    other = error_of(post(b, body, key, pipeline="thumbnail(33)|jpeg"), 422,
                     "idempotency key reused")
    assert "idempotency_window" in other["detail"]
    error_of(post(a, body + b"\0", key), 422, "idempotency key reused")
    assert accepted(pair) == before


def test_keys_are_per_api_key(pair):
    a, b = pair
    body, key = small_jpeg(), str(uuid.uuid4())
    mine = post(a, body, key)
    theirs = post(b, body, key, api=BOB)
    assert mine.status_code == theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


def test_duplicates_at_once_make_one_job(pair):
    """Eight requests with one key, half on each node, released together:
    one job; each answer is that job (202) or 409 with Retry-After while
    it was being stored, and asking again then gets the job."""
    body, key, n = small_jpeg(), str(uuid.uuid4()), 8
    before = accepted(pair)
    go = threading.Barrier(n)
    answers = [None] * n

    def one(i):
        go.wait(timeout=30)
        answers[i] = post(pair[i % 2], body, key)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {202, 409}, [(r.status_code, r.text)
                                     for r in answers]
    for r in answers:
        if r.status_code == 409:
            error_of(r, 409, "request in progress")
            assert r.headers["Retry-After"] == "1"
    ids = {r.json()["id"] for r in answers if r.status_code == 202}
    assert len(ids) == 1, ids
    new = [r for r in answers if r.status_code == 202
           and "Idempotent-Replayed" not in r.headers]
    assert len(new) <= 1
    job = ids.pop()
    retried = wait_for("the job to be answered", lambda: (
        lambda r: r if r.status_code == 202 else None)(post(pair[1], body,
                                                          key)))
    assert retried.json()["id"] == job
    assert accepted(pair) == before + 1


@pytest.mark.parametrize("value", [
    "", '""', "x" * 256, "has space", "tab\tinside", 'quo"te', "back\\slash",
    "caf\u00e9"])
def test_a_malformed_key_is_400(pair, value):
    a, _ = pair
    before = accepted(pair)
    r = requests.post(a.url + "/v1/jobs", params={"pipeline": PIPE},
                      data=small_jpeg(),
                      headers={"X-Api-Key": ALICE,
                               "Idempotency-Key": value.encode()},
                      timeout=30)
    error_of(r, 400, "bad idempotency key")
    r = requests.post(a.url + "/v1/images", data=small_jpeg(),
                      headers={"X-Api-Key": ALICE,
                               "Idempotency-Key": value.encode()},
                      timeout=30)
    error_of(r, 400, "bad idempotency key")
    assert accepted(pair) == before


def test_quoted_and_longest_keys_are_taken(pair):
    a, b = pair
    body, key = small_jpeg(), "k" * 255
    first = post(a, body, key)
    assert first.status_code == 202, first.text
    assert post(b, body, f'"{key}"').json()["id"] == first.json()["id"]


def test_images_are_content_addressed_the_key_is_only_checked(pair):
    a, b = pair
    body = small_jpeg()
    h = {"X-Api-Key": ALICE, "Idempotency-Key": str(uuid.uuid4())}
    one = requests.post(a.url + "/v1/images", data=body, headers=h,
                        timeout=30)
    two = requests.post(b.url + "/v1/images", data=body, headers=h,
                        timeout=30)
    assert one.status_code in (200, 201), one.text
    assert two.status_code == 200, two.text
    assert one.json()["id"] == two.json()["id"]


def test_after_the_window_the_key_is_swept_and_fresh(tmp_path):
    """[ingress] idempotency_window = 1s, retention every second: once a
    pass has swept the key's record (counted), the key makes a new job."""
    node = start(tmp_path, workers=1, idempotency_window="1s",
                 extra="[retention]\ninterval = 1s\n")
    try:
        body, key = small_jpeg(), str(uuid.uuid4())
        swept = 'imgnode_swept_objects_total{kind="idempotency"}'
        first = node.submit(body, pipeline=PIPE,
                            headers={"Idempotency-Key": key})
        assert first.status_code == 202, first.text
        wait_for("retention to sweep the key",
                 lambda: node.metric(swept) >= 1)
        again = node.submit(body, pipeline=PIPE,
                            headers={"Idempotency-Key": key})
        assert again.status_code == 202, again.text
        assert "Idempotent-Replayed" not in again.headers
        assert again.json()["id"] != first.json()["id"]
        assert node.metric("imgnode_idempotent_replays_total") == 0
    finally:
        node.stop()


# ---- behind nginx ----

class DiesMidRequest:
    """A node that dies mid-request, on loopback: it takes each
    connection, reads what comes, and closes it without an answer."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    if c.recv(65536):
                        self.requests += 1
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """A node of its own, and a way to put nginx before it and others."""
    base = tmp_path_factory.mktemp("front")
    (base / "b").mkdir()
    node = start(base / "b", workers=1)
    made = []

    def proxy(*ports):
        d = base / f"nginx{len(made)}"
        port = free_port()
        subprocess.run(["test/lib/nginx", "start", str(d), str(port),
                        *map(str, ports)], cwd=ROOT, check=True)
        made.append(d)
        return f"http://127.0.0.1:{port}"
    yield node, proxy
    for d in made:
        subprocess.run(["test/lib/nginx", "stop", str(d)], cwd=ROOT)
    node.stop()


def test_nginx_retries_a_post_with_a_key_on_the_next_node(front):
    node, proxy = front
    dead = DiesMidRequest()
    try:
        url = proxy(dead.port, node.port)  # the dead one is tried first
        before = node.metric("imgnode_jobs_accepted_total")
        r = requests.post(url + "/v1/jobs", params={"pipeline": PIPE},
                          data=small_jpeg(),
                          headers={"Idempotency-Key": str(uuid.uuid4())},
                          timeout=60)
        assert r.status_code == 202, r.text
        assert dead.requests == 1  # sent there first, then retried
        assert node.metric("imgnode_jobs_accepted_total") == before + 1
    finally:
        dead.close()


def test_nginx_does_not_retry_a_post_without_a_key(front):
    node, proxy = front
    dead = DiesMidRequest()
    try:
        url = proxy(dead.port, node.port)
        before = node.metric("imgnode_jobs_accepted_total")
        r = requests.post(url + "/v1/jobs", params={"pipeline": PIPE},
                          data=small_jpeg(), timeout=60)
        # the client cannot tell whether a job was made: nginx's 502
        assert r.status_code == 502, r.text
        assert dead.requests == 1
        assert node.metric("imgnode_jobs_accepted_total") == before
        # a GET is retried on the next node all the same
        assert requests.get(url + "/healthz", timeout=30).status_code \
            == 200
    finally:
        dead.close()


def test_nginx_with_a_node_killed_takes_keyed_posts_on_the_other(front):
    """A node killed (its port refuses connections): nginx tries the
    other, key or not (nothing was sent); with the key, a retry by the
    client after any failure gets the same job."""
    node, proxy = front
    gone = free_port()  # nothing listens there
    url = proxy(gone, node.port)
    body, key = small_jpeg(), str(uuid.uuid4())
    first = requests.post(url + "/v1/jobs", params={"pipeline": PIPE},
                          data=body, headers={"Idempotency-Key": key},
                          timeout=60)
    assert first.status_code == 202, first.text
    again = requests.post(url + "/v1/jobs", params={"pipeline": PIPE},
                          data=body, headers={"Idempotency-Key": key},
                          timeout=60)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
