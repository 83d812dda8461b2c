"""The HTTP API of a running node (issue 7): every endpoint and every error
code, with real images from the corpus. The shared node's tests run twice:
on the embedded spool + fs plugins, and on amqp + rados against a real
RabbitMQ and a real Ceph started by the project's scripts. Nodes that
several tests share are started once per module; tests that break or stop
a node get their own (on spool + fs, where a test can break storage or the
queue at will; test_cluster_node and test_amqp_node break the real ones)."""
import hashlib
import hmac
import re
import shutil
import signal
import socket
import threading
import time

import pytest
import requests

from nodelib import MAX_BODY, error_of, image_size, raw_http, start

JOB_ID = re.compile(r"[0-9a-f]{32}")


# ---- health, readiness, metrics ----

def test_healthz_readyz_and_metrics(api):
    r = api.get("/healthz")
    assert r.status_code == 200 and r.text == "ok\n"
    r = api.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"transport": "ok", "storage": "ok"}
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(
        "text/plain; version=0.0.4")
    for name in ("imgnode_jobs_accepted_total", "imgnode_jobs_inflight",
                 'imgnode_http_responses_total{code="2xx"}',
                 'imgnode_jobs_total{outcome="cached"}',
                 "imgnode_bytes_in_total"):
        assert re.search(rf"^{re.escape(name)} \d+", r.text, re.M), name
    assert r.headers.get("Connection", "").lower() != "close"


def test_get_keeps_the_connection_alive(api):
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
        for _ in range(3):
            s.sendall(req)
            got = b""
            while not got.endswith(b"ok\n"):
                chunk = s.recv(4096)
                assert chunk, "the server closed a keep-alive connection"
                got += chunk
            assert got.startswith(b"HTTP/1.1 200 ")


# ---- submitting ----

def test_wait_returns_the_result(api, images):
    data = images("fossa.jpg")  # 4096x2304
    r = api.submit(data, pipeline="thumbnail(64)|webp(q=50)", wait=20)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/webp"
    job = r.headers["X-Imgnode-Job"]
    assert JOB_ID.fullmatch(job)
    assert image_size(r.content) == ("webp", 64, 36)

    rec = api.record(job)
    assert rec["id"] == job and rec["status"] == "done"
    assert rec["pipeline"].startswith("thumbnail(") and "width=64" in \
        rec["pipeline"] and "|webp(" in rec["pipeline"] and \
        ",q=50," in rec["pipeline"]
    for stamp in ("created", "started", "finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                            rec[stamp]), rec
    assert rec["created"] <= rec["started"] <= rec["finished"]
    assert rec["attempts"] == 1 and rec["error"] is None
    assert rec["input"] == {"bytes": len(data), "format": "jpeg",
                            "width": 4096, "height": 2304, "pages": 1,
                            "sha256": hashlib.sha256(data).hexdigest()}
    out = rec["output"]
    assert (out["format"], out["mime"], out["width"], out["height"],
            out["bytes"]) == ("webp", "image/webp", 64, 36, len(r.content))
    assert set(rec["plugins"]) == {"thumbnail", "webp"}
    assert rec["generation"] == 1

    res = api.get(f"/v1/jobs/{job}/result")
    assert res.status_code == 200
    assert res.headers["Content-Type"] == "image/webp"
    assert res.headers["X-Imgnode-Job"] == job
    assert res.content == r.content


def test_accepted_then_polled(api, images):
    data = images("xfce-blue.jpg")
    before = api.metric("imgnode_jobs_accepted_total")
    bytes_in = api.metric("imgnode_bytes_in_total")
    r = api.submit(data, pipeline="thumbnail(100)|png")
    assert r.status_code == 202, r.text
    body = r.json()
    assert JOB_ID.fullmatch(body["id"]) and body["status"] == "queued"
    assert r.headers["Location"] == f"/v1/jobs/{body['id']}"
    assert r.headers["X-Imgnode-Job"] == body["id"]
    assert api.metric("imgnode_jobs_accepted_total") == before + 1
    assert api.metric("imgnode_bytes_in_total") == bytes_in + len(data)
    rec = api.wait_status(body["id"], ("done",))
    res = api.get(r.headers["Location"] + "/result")
    assert res.status_code == 200 and res.headers["Content-Type"] == \
        "image/png"
    fmt, w, h = image_size(res.content)
    assert (fmt, w) == ("png", 100)
    assert (rec["output"]["width"], rec["output"]["height"]) == (w, h)


def test_identical_request_is_served_from_the_result_cache(api, images):
    data = images("friends.jpg")
    first = api.submit(data, pipeline="thumbnail(48)|jpeg(q=70)", wait=20)
    assert first.status_code == 200, first.text
    cached = api.metric('imgnode_jobs_total{outcome="cached"}')
    r = api.submit(data, pipeline="thumbnail(48) | jpeg(q=70)")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "done"
    job = r.json()["id"]
    assert job != first.headers["X-Imgnode-Job"]
    rec = api.record(job)
    assert rec["status"] == "done" and rec["cached"] is True
    assert rec["output"]["mime"] == "image/jpeg"
    assert api.get(f"/v1/jobs/{job}/result").content == first.content
    assert api.metric('imgnode_jobs_total{outcome="cached"}') == cached + 1
    # with wait, a cache hit answers with the image at once
    again = api.submit(data, pipeline="thumbnail(48)|jpeg(q=70)", wait=20)
    assert again.status_code == 200 and again.content == first.content


def test_multipart_upload(api, images):
    data = images("jpeg-exif-orient6.jpg")
    r = requests.post(api.url + "/v1/jobs", params={"wait": "20"},
                      files={"file": ("a.jpg", data, "image/jpeg")},
                      data={"pipeline": "thumbnail(50)|png"}, timeout=60)
    assert r.status_code == 200, r.text
    # 640x428 with EXIF orientation 6: upright, then 50 wide
    fmt, w, h = image_size(r.content)
    assert (fmt, w) == ("png", 50) and h in (74, 75), (fmt, w, h)
    rec = api.record(r.headers["X-Imgnode-Job"])
    assert rec["input"]["bytes"] == len(data)
    assert rec["input"]["sha256"] == hashlib.sha256(data).hexdigest()
    # the pipeline may also come in the query
    r = requests.post(api.url + "/v1/jobs",
                      params={"pipeline": "thumbnail(20)|webp"},
                      files={"file": ("a.jpg", data)}, timeout=60)
    assert r.status_code == 202, r.text
    # no file part
    r = requests.post(api.url + "/v1/jobs",
                      files={"pipeline": (None, "thumbnail(20)|png")},
                      timeout=60)
    error_of(r, 400, "bad request")


def test_multipart_part_without_a_name_is_a_400(api, images):
    """A part with no name= (or no Content-Disposition at all) once
    crashed the ingress; now it is a 400 and the node serves on."""
    data = images("fossa.jpg")
    for disposition in (b"Content-Disposition: form-data\r\n",
                        b"Content-Disposition: form-data; filename=a\r\n",
                        b""):
        body = (b"--xyz\r\n" + disposition +
                b"Content-Type: image/jpeg\r\n\r\n" + data[:4096] +
                b"\r\n--xyz--\r\n")
        r = requests.post(
            api.url + "/v1/jobs", params={"pipeline": "thumbnail(20)|png"},
            data=body, timeout=30,
            headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        error_of(r, 400, "bad request")
    assert api.get("/healthz").status_code == 200
    assert not any("child exited id=ingress" in line
                   for line in api.lines), api.log()


def test_preset(api, images):
    r = api.submit(images("fossa.jpg"), preset="thumb", wait=20)
    assert r.status_code == 200, r.text
    assert image_size(r.content) == ("webp", 64, 36)
    rec = api.record(r.headers["X-Imgnode-Job"])
    assert rec["pipeline"].startswith("thumbnail(")
    body = error_of(api.submit(b"x", preset="nosuch"), 400, "bad pipeline")
    assert "nosuch" in body["detail"]


def test_concurrent_waiters_each_get_their_result(api, images):
    data = images("xfce-teal.jpg")
    results = {}

    def one(width):
        results[width] = api.submit(data, pipeline=f"thumbnail({width})|png",
                                    wait=20)
    threads = [threading.Thread(target=one, args=(w,))
               for w in range(30, 38)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for width, r in results.items():
        assert r.status_code == 200, r.text
        assert image_size(r.content)[:2] == ("png", width)
    assert len(results) == 8
    # replies uncount them; a lost reply is found from the record
    deadline = time.monotonic() + 20
    while api.metric("imgnode_jobs_inflight") != 0:
        assert time.monotonic() < deadline, "jobs left in flight"
        time.sleep(0.05)


# ---- refusals ----

@pytest.mark.parametrize("pipeline,why", [
    ("nosuch(1)", "unknown filter"),
    ("thumbnail(800", "column"),
    ("thumbnail(0)", "column"),
    ("webp|thumbnail(10)", "column"),
    ("", "column"),
])
def test_bad_pipeline_is_400_with_a_column(api, images, pipeline, why):
    body = error_of(api.submit(images("tiny.jpg"), pipeline=pipeline),
                    400, "bad pipeline")
    assert body["detail"].startswith("column "), body
    assert why in body["detail"]


def test_other_bad_requests_are_400(api, images):
    data = images("tiny.jpg")
    error_of(api.submit(data), 400, "bad pipeline")
    error_of(api.submit(data, pipeline="png", preset="thumb"), 400,
             "bad pipeline")
    error_of(api.submit(data, pipeline="png", wait="soon"), 400,
             "bad request")
    error_of(api.submit(b"", pipeline="png"), 400, "bad request")


@pytest.mark.parametrize("name", ["tiny.bmp", "tiny.jxr", "tiny.jp2",
                                  "jxl-23x42.jxl", "DoS.tga"])
def test_unsupported_format_is_415(api, images, name):
    body = error_of(api.submit(images(name), pipeline="png"), 415,
                    "unsupported format")
    assert "accepted" in body["detail"]


def test_text_is_415(api):
    error_of(api.submit(b"hello, world\n" * 10, pipeline="png"), 415,
             "unsupported format")


@pytest.mark.parametrize("name,why", [
    ("issue205.jpg", "64250x64250"),
    ("bug793470-crasher.png", "935820x854554"),
    ("invalid.1.png", "header"),
])
def test_rejected_image_is_422(api, images, name, why):
    before = api.metric("imgnode_jobs_accepted_total")
    body = error_of(api.submit(images(name), pipeline="png"), 422,
                    "image rejected")
    assert why in body["detail"]
    assert api.metric("imgnode_jobs_accepted_total") == before


def test_a_job_that_fails_is_422_with_the_reason(api, images):
    # a truncated JPEG: its header reads, its pixels do not
    r = api.submit(images("premature-end.jpg"), pipeline="thumbnail(32)|png",
                   wait=20)
    body = error_of(r, 422, "job failed")
    job = r.headers["X-Imgnode-Job"]
    # libvips 8.18 (make VIPS=bundled) writes it in lower case
    assert body["id"] == job and "premature end" in body["detail"].lower()
    rec = api.record(job)
    assert rec["status"] == "failed" and rec["error"] == body["detail"]
    res = api.get(f"/v1/jobs/{job}/result")
    assert error_of(res, 422, "job failed")["detail"] == body["detail"]


def test_body_over_max_body_is_413(api, images):
    # refused from Content-Length, before any of the body is sent
    for expect in (b"", b"Expect: 100-continue\r\n"):
        got = raw_http(api.port,
                       b"POST /v1/jobs?pipeline=png HTTP/1.1\r\nHost: x\r\n"
                       + expect +
                       b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        assert got.startswith(b"HTTP/1.1 413 "), got[:200]
        assert b'"error":"body too large"' in got
    # a chunked upload is refused when it passes the limit
    photo = images("kleiber.jpg")
    assert len(photo) > MAX_BODY

    def chunks():
        for i in range(0, len(photo) // 2, 64 * 1024):
            yield photo[i:i + 64 * 1024]
    r = requests.post(api.url + "/v1/jobs", params={"pipeline": "png"},
                      data=chunks(), timeout=60)
    error_of(r, 413, "body too large")
    # exactly the limit is fine (and then not an image)
    error_of(api.submit(b"\0" * MAX_BODY, pipeline="png"), 415,
             "unsupported format")


def test_unknown_job_or_path_is_404(api):
    for path in ("/v1/jobs/" + "0" * 32, "/v1/jobs/" + "0" * 32 + "/result",
                 "/v1/jobs/not-an-id", "/v1/jobs/ABCDEF" + "0" * 26,
                 "/v1/jobs/../../etc/passwd", "/v2/jobs", "/",
                 "/v1/jobs/" + "0" * 32 + "/other"):
        r = api.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] in ("unknown job", "not found"), path


def test_wrong_method_is_405(api):
    job = "0" * 32
    for method, path, allow in (("DELETE", f"/v1/jobs/{job}", "GET, HEAD"),
                                ("GET", "/v1/jobs", "POST"),
                                ("PUT", "/v1/jobs", "POST"),
                                ("POST", "/healthz", "GET, HEAD"),
                                ("POST", f"/v1/jobs/{job}/result",
                                 "GET, HEAD")):
        r = requests.request(method, api.url + path, timeout=10)
        error_of(r, 405, "method not allowed")
        assert r.headers["Allow"] == allow


def test_error_responses_are_counted(api):
    before = api.metric('imgnode_http_responses_total{code="4xx"}')
    api.get("/nope")
    api.get("/v1/jobs/" + "f" * 32)
    assert api.metric('imgnode_http_responses_total{code="4xx"}') >= \
        before + 2


# ---- a node whose jobs stay queued (no workers) ----

@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("queued"), workers=0,
              max_inflight=3, request_timeout="1s", wait_max="2s")
    yield s
    s.stop()


def test_queued_job_wait_409_and_429(queued, images):
    data = images("tiny.png")
    r = queued.submit(data, pipeline="png")
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    rec = queued.record(job)
    assert rec["status"] == "queued" and rec["attempts"] == 0
    assert rec["started"] is None and rec["finished"] is None
    assert rec["output"] is None and rec["error"] is None
    assert rec["input"]["format"] == "png"
    res = queued.get(f"/v1/jobs/{job}/result")
    body = error_of(res, 409, "not done")
    assert (body["id"], body["status"]) == (job, "queued")

    # a wait that ends before the job: 202 after the wait
    t = time.monotonic()
    r = queued.submit(data, pipeline="png", wait=1)
    took = time.monotonic() - t
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert 0.9 <= took < 4, took
    # a wait longer than wait_max (2s) is cut to it
    t = time.monotonic()
    r = queued.submit(data, pipeline="png", wait=100)
    took = time.monotonic() - t
    assert r.status_code == 202 and 1.9 <= took < 5, took

    assert queued.metric("imgnode_jobs_inflight") == 3
    r = queued.submit(data, pipeline="png")
    error_of(r, 429, "too many jobs")
    assert r.headers["Retry-After"] == "5"
    # reading still works
    assert queued.record(job)["status"] == "queued"


def test_slow_client_is_cut_off(queued):
    t = time.monotonic()
    got = raw_http(queued.port, b"POST /v1/jobs?pipeline=png HTTP/1.1\r\n"
                   b"Host: x\r\n", timeout=10)
    assert got == b"" or b" 408 " in got.split(b"\r\n")[0]
    assert time.monotonic() - t < 6
    t = time.monotonic()
    got = raw_http(queued.port, b"POST /v1/jobs?pipeline=png HTTP/1.1\r\n"
                   b"Host: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10,
                   timeout=10)
    assert not got.startswith(b"HTTP/1.1 202")
    assert time.monotonic() - t < 6


# ---- API keys and signed pipelines ----

@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("secure"),
              api_keys="key-one, key-two", hmac_key="s3cret", hmac_v1="yes")
    yield s
    s.stop()


def sign(text):
    return hmac.new(b"s3cret", text.encode(), hashlib.sha256).hexdigest()


def test_api_key_is_required(secure, images):
    data = images("tiny.png")
    pipeline = "thumbnail(8)|png"
    error_of(secure.submit(data, pipeline=pipeline, sig=sign(pipeline)),
             401, "unauthorized")
    error_of(secure.submit(data, pipeline=pipeline, sig=sign(pipeline),
                           headers={"X-Api-Key": "key-three"}),
             401, "unauthorized")
    error_of(secure.get("/v1/jobs/" + "0" * 32), 401, "unauthorized")
    r = secure.submit(data, pipeline=pipeline, sig=sign(pipeline),
                      headers={"X-Api-Key": "key-two"}, wait=20)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    assert secure.get(f"/v1/jobs/{job}",
                      headers={"X-Api-Key": "key-two"}).status_code == 200
    # another key's job is none of this key's business
    error_of(secure.get(f"/v1/jobs/{job}", headers={"X-Api-Key": "key-one"}),
             404, "unknown job")
    # health, readiness and metrics stay open
    for path in ("/healthz", "/readyz", "/metrics"):
        assert secure.get(path).status_code == 200


def test_pipelines_must_be_signed(secure, images):
    data = images("tiny.png")
    key = {"X-Api-Key": "key-one"}
    pipeline = "thumbnail(8)|png"
    error_of(secure.submit(data, pipeline=pipeline, headers=key), 403,
             "bad signature")
    error_of(secure.submit(data, pipeline=pipeline, headers=key,
                           sig="00" * 32), 403, "bad signature")
    error_of(secure.submit(data, pipeline=pipeline, headers=key,
                           sig=sign("thumbnail(9)|png")), 403,
             "bad signature")
    error_of(secure.submit(data, pipeline=pipeline, headers=key,
                           sig="zz"), 403, "bad signature")
    r = secure.submit(data, pipeline=pipeline, headers=key,
                      sig=sign(pipeline).upper())
    assert r.status_code == 202, r.text
    r = secure.submit(data, preset="tiny", headers=key, sig=sign("tiny"))
    assert r.status_code == 202, r.text
    error_of(secure.submit(data, preset="tiny", headers=key,
                           sig=sign("thumb")), 403, "bad signature")


def test_presets_only(own, images):
    s = own(presets_only="yes")
    data = images("fossa.jpg")
    body = error_of(s.submit(data, pipeline="thumbnail(64)|webp"), 400,
                    "bad pipeline")
    assert "preset" in body["detail"]
    r = requests.post(s.url + "/v1/jobs",
                      files={"file": ("f.jpg", data),
                             "pipeline": (None, "png")}, timeout=60)
    error_of(r, 400, "bad pipeline")
    r = s.submit(data, preset="thumb", wait=20)
    assert r.status_code == 200 and image_size(r.content) == \
        ("webp", 64, 36)


# ---- failures of the services behind the ingress ----

def test_storage_failure_is_503_and_readyz_says_so(own, images):
    s = own(workers=0)
    store = s.node.state / "store"
    data = images("tiny.jpg")
    assert s.submit(data, pipeline="png").status_code == 202
    accepted = s.metric("imgnode_jobs_accepted_total")
    records = sorted((store / "jobs").iterdir())
    # originals cannot be written
    shutil.move(store / "orig", store / "orig.away")
    (store / "orig").write_text("")
    try:
        r = s.submit(data, pipeline="png")
        body = error_of(r, 503, "storage unavailable")
        assert r.headers["Retry-After"] == "5"
        assert "original" in body["detail"]
        # the record, stored beside the original, is taken back
        assert sorted((store / "jobs").iterdir()) == records
    finally:
        (store / "orig").unlink()
        shutil.move(store / "orig.away", store / "orig")
    assert s.metric("imgnode_jobs_accepted_total") == accepted
    assert s.submit(data, pipeline="jpeg").status_code == 202
    # the store is replaced under the running node
    shutil.move(store, s.node.state / "store.away")
    store.mkdir()
    try:
        # /readyz answers from the storage's breaker, which its next ping
        # (within a second) opens
        deadline = time.monotonic() + 5
        while (r := s.get("/readyz")).status_code == 200:
            assert time.monotonic() < deadline, "/readyz never said 503"
            time.sleep(0.1)
        body = error_of(r, 503, "not ready")
        assert body["storage"] != "ok" and body["transport"] == "ok"
        assert body["detail"].startswith("storage: ")
        assert r.headers["Retry-After"] == "5"
    finally:
        store.rmdir()
        shutil.move(s.node.state / "store.away", store)
    deadline = time.monotonic() + 5
    while s.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "/readyz never said 200 again"
        time.sleep(0.1)


def test_transport_failure_is_503_and_stores_nothing(own, images):
    # a broker that refuses every message (spool's size cap, far below a
    # job message)
    s = own(workers=0, extra="[transport]\nmax_message = 16\n")
    r = s.submit(images("tiny.jpg"), pipeline="png")
    body = error_of(r, 503, "transport unavailable")
    assert r.headers["Retry-After"] == "5"
    assert "queue" in body["detail"]
    # what was stored for the job is taken back
    store = s.node.state / "store"
    assert not [p for p in store.rglob("*") if p.is_file()]
    assert s.metric("imgnode_jobs_accepted_total") == 0
    assert s.metric("imgnode_jobs_inflight") == 0


# ---- lifecycle ----

def test_sigterm_answers_a_waiting_request_then_exits_0(own, images):
    s = own(workers=0, wait_max="60s")
    got = {}

    def wait():
        got["r"] = s.submit(images("tiny.png"), pipeline="png", wait=60)
    t = threading.Thread(target=wait)
    t.start()
    deadline = time.monotonic() + 10
    while s.metric("imgnode_jobs_inflight") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    start_stop = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    r = got["r"]
    # the job is accepted: the waiter hears 202 (not a reset) before the
    # ingress stops, within [supervisor] shutdown_timeout (4s)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert time.monotonic() - start_stop < 4.5
    assert s.proc.wait(timeout=30) == 0
    assert "ingress: stopped" in "".join(s.lines)
    with pytest.raises(requests.ConnectionError):
        s.get("/healthz", timeout=2)


def test_a_second_ingress_can_share_the_port(own):
    a = own("a")
    b = own("b", port=a.port)  # SO_REUSEPORT: starts while a listens
    a.stop()
    assert a.proc.returncode == 0
    for _ in range(20):
        assert requests.get(b.url + "/healthz", timeout=5).status_code == 200
