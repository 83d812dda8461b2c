"""Webhooks: POST /v1/jobs?callback=URL, to a host of [ingress]
callback_hosts, gets the finished job's record POSTed there by the
notifier, signed (X-Imgnode-Signature over X-Imgnode-Timestamp and the
body, verified here as docs/webhooks.md says), retried with backoff while
the receiver fails, and delivered after a restart of the node (the state
is in the record). A receiver on 127.0.0.1, small backoffs."""
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

from nodelib import (Imgnode, error_of, free_port, setup_extra, small_jpeg,
                     start, wait_for)

SECRET = "webhook-test-secret-0123"


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (path, headers,
    body) and answers each path with its scripted statuses, then 200,
    after the path's delay if it has one."""

    def __init__(self, port=0):
        self.got = []
        self.script = {}
        self.delay = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((self.path, dict(self.headers), body))
                time.sleep(outer.delay.get(self.path, 0))
                todo = outer.script.get(self.path, [])
                self.send_response(todo.pop(0) if todo else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                      Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def posts(self, path):
        return [(h, b) for p, h, b in self.got if p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def verified(headers, body):
    """The signature checked as a receiver does: HMAC-SHA256 of
    "TIMESTAMP." + body, compared in constant time, the timestamp
    recent."""
    ts = headers["X-Imgnode-Timestamp"]
    want = hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                    hashlib.sha256).hexdigest()
    assert abs(time.time() - int(ts)) < 300
    return hmac.compare_digest(headers["X-Imgnode-Signature"],
                               "sha256=" + want)


@pytest.fixture(scope="module", params=["spool+fs", "amqp+rados"])
def hooked(request, tmp_path_factory):
    """A node whose callbacks may go to a live receiver and to a port
    where none listens yet (the restart test starts one there), on
    spool + fs, then on amqp + rados (the record, its callback state and
    the callbacks/ index in Ceph)."""
    receiver = Receiver()
    later = free_port()
    path = tmp_path_factory.mktemp("webhooks")
    s = start(path, callback_hosts=f"127.0.0.1:{receiver.port}, "
              f"127.0.0.1:{later}",
              extra=setup_extra(request, path) +
              f"[webhooks]\nsecret = {SECRET}\nbackoff_min = 200ms\n"
              "backoff_max = 500ms\npoll = 100ms\ntimeout = 2s\n"
              "max_attempts = 50\n")
    yield s, receiver, later
    s.stop()
    receiver.close()


def submit(s, url, pipeline="thumbnail(32)|png"):
    r = s.submit(small_jpeg(), pipeline, callback=url)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_delivered_signed(hooked):
    s, rx, _ = hooked
    url = f"http://127.0.0.1:{rx.port}/signed"
    job = submit(s, url)
    wait_for("the webhook", lambda: rx.posts("/signed"))
    headers, body = rx.posts("/signed")[0]
    assert verified(headers, body)
    assert not verified({**headers, "X-Imgnode-Timestamp":
                         str(int(headers["X-Imgnode-Timestamp"]) + 1)}, body)
    sent = json.loads(body)
    assert sent["id"] == job and sent["status"] == "done"
    assert sent["callback"]["url"] == url
    assert headers["X-Imgnode-Delivery"] == job
    assert headers["X-Imgnode-Event"] == "job.done"
    assert headers["X-Imgnode-Attempt"] == "1"
    assert headers["Content-Type"] == "application/json"
    wait_for("the record to say delivered", lambda: s.record(job)[
        "callback"]["state"] == "delivered")
    cb = s.record(job)["callback"]
    assert cb["attempts"] == 1 and cb["delivered_at"]


def test_retried_until_the_receiver_takes_it(hooked):
    s, rx, _ = hooked
    rx.script["/flaky"] = [500, 503]
    job = submit(s, f"http://127.0.0.1:{rx.port}/flaky",
                 "thumbnail(33)|png")
    wait_for("the third attempt", lambda: len(rx.posts("/flaky")) >= 3)
    attempts = [h["X-Imgnode-Attempt"] for h, _ in rx.posts("/flaky")]
    assert attempts == ["1", "2", "3"]
    assert all(verified(h, b) for h, b in rx.posts("/flaky"))
    wait_for("the record to say delivered", lambda: s.record(job)[
        "callback"]["state"] == "delivered")
    cb = s.record(job)["callback"]
    assert cb["attempts"] == 3 and cb["last_error"] == "HTTP 503"
    assert s.metric('imgnode_webhooks_total{outcome="retry"}') >= 2


def test_survives_a_restart(hooked):
    """No receiver: attempts fail and are recorded; the node is stopped
    and started again, then the receiver comes up and gets the webhook,
    exactly once (no node died between a POST and its record)."""
    s, _, later = hooked
    job = submit(s, f"http://127.0.0.1:{later}/late", "thumbnail(34)|png")
    wait_for("a failed attempt", lambda: s.record(job)["callback"][
        "attempts"] >= 1)
    cb = s.record(job)["callback"]
    assert cb["state"] == "pending" and cb["next_attempt"]
    assert "onnect" in cb["last_error"], cb  # Couldn't connect to server
    s.stop()
    again = Imgnode(s.node, s.port)
    rx = Receiver(later)
    try:
        wait_for("the webhook after the restart", lambda: rx.posts("/late"))
        wait_for("the record to say delivered", lambda: again.record(job)[
            "callback"]["state"] == "delivered")
        posts = rx.posts("/late")
        assert len(posts) == 1 and verified(*posts[0])
        assert json.loads(posts[0][1])["id"] == job
    finally:
        rx.close()
        # the module's later tests use the new process
        s.proc, s.lines = again.proc, again.lines


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.2:{port}/x", "not in [ingress] callback_hosts"),
    ("http://localhost:{port}/x", "not in [ingress] callback_hosts"),
    ("http://127.0.0.1/x", "not in [ingress] callback_hosts"),
    ("ftp://127.0.0.1:{port}/x", "http or https"),
    ("http://u:p@127.0.0.1:{port}/x", "user or password"),
    ("/relative", "absolute"),
])
def test_refused_at_submit(hooked, url, why):
    s, rx, _ = hooked
    r = s.submit(small_jpeg(), "thumbnail(32)|png",
                 callback=url.format(port=rx.port))
    error_of(r, 400, "bad callback")
    assert why in r.json()["detail"], r.json()


def test_off_without_callback_hosts(own):
    s = own()
    r = s.submit(small_jpeg(), "thumbnail(32)|png",
                 callback="http://127.0.0.1:9/x")
    error_of(r, 400, "bad callback")
    assert "[ingress] callback_hosts" in r.json()["detail"]


def test_callback_hosts_need_a_secret(node):
    node.write(node.base() + "[ingress]\ncallback_hosts = 127.0.0.1:9\n")
    node.ini.chmod(0o600)
    r = node.run("-t")
    assert r.returncode == 100
    assert "[webhooks] secret" in r.stderr, r.stderr


def test_two_nodes_on_one_store_send_each_once(own, tmp_path):
    """Two nodes share a queue and a store, and both list the pending
    callbacks every second: each job's webhook still arrives once, even a
    retry both nodes know of and find due together while the receiver
    takes its time (the claim); one its receiver always refuses is given
    up after max_attempts, its index removed."""
    rx = Receiver()
    rx.script["/never"] = [500] * 10
    rx.script["/slow"] = [500]
    rx.delay["/slow"] = 0.5
    shared = (f"[transport]\nplugin = spool\ndir = {tmp_path}/spool\n"
              f"[storage]\nplugin = fs\ndir = {tmp_path}/store\n"
              f"[webhooks]\nsecret = {SECRET}\nbackoff_min = 1500ms\n"
              "backoff_max = 1500ms\npoll = 100ms\nrescan = 1s\n"
              "max_attempts = 2\n")
    try:
        a, b = (own(name, callback_hosts=f"127.0.0.1:{rx.port}",
                    extra=shared) for name in ("a", "b"))
        jobs = [submit(s, f"http://127.0.0.1:{rx.port}/twice",
                       f"thumbnail({40 + i})|png")
                for i, s in enumerate((a, b, a, b))]
        never = submit(a, f"http://127.0.0.1:{rx.port}/never")
        slow = submit(a, f"http://127.0.0.1:{rx.port}/slow",
                      "thumbnail(39)|png")
        for job in jobs:
            wait_for("delivered", lambda: a.record(job)["callback"][
                "state"] == "delivered")
        rec = wait_for("given up", lambda: (lambda r: r if r["callback"][
            "state"] == "failed" else None)(b.record(never)))
        assert rec["callback"]["attempts"] == 2
        assert rec["callback"]["last_error"] == "HTTP 500"
        # a rescan of each node after the last delivery sends nothing more
        wait_for("the indexes removed",
                 lambda: not list((tmp_path / "store").glob("callbacks/*")))
        got = [h["X-Imgnode-Delivery"] for h, _ in rx.posts("/twice")]
        assert sorted(got) == sorted(jobs)
        assert len(rx.posts("/never")) == 2
        # the retry, due on both nodes after their rescans, went once
        wait_for("the slow one delivered", lambda: b.record(slow)[
            "callback"]["state"] == "delivered")
        assert [h["X-Imgnode-Attempt"] for h, _ in rx.posts("/slow")] == \
            ["1", "2"]
    finally:
        rx.close()
