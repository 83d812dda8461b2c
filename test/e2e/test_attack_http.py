"""Hostile traffic against the HTTP ingress (spool + fs): every request
path is total (smuggling framing, text that is not UTF-8, broken multipart,
a chunked body past max_body each get a specific 4xx with the JSON error,
never a crash or a dropped connection, and the node serves on), and jobs in
flight are shared fairly ([ingress] max_inflight_per_client: one client,
an API key or an address, cannot push every other into 429s)."""
import concurrent.futures
import subprocess

import pytest
import requests

from nodelib import (FILE, MAX_BODY, ROOT, error_of, exchange, free_port,
                     json_error, multipart, raw_http, start)

PNG = "tiny.png"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("attack"), workers=1)
    yield s
    s.stop()


def serves_on(s):
    r = s.get("/healthz", timeout=5)
    assert r.status_code == 200 and r.text == "ok\n"
    assert not any("child exited id=ingress" in line or
                   "child stopped id=ingress" in line
                   for line in s.lines), s.log()


# ---- framing ----

POST = b"POST /v1/jobs?pipeline=png HTTP/1.1\r\n"


@pytest.mark.parametrize("request_bytes,why", [
    (POST + b"Host: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "both Content-Length and Transfer-Encoding"),
    (POST + b"Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5"
     b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "both Content-Length and Transfer-Encoding"),
    (POST + b"Host: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!", "Content-Length given more than once"),
    (POST + b"Host: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
     b"hello", "Content-Length given more than once"),
    (POST + b"Host: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
     "must be chunked"),
    (POST + b"Host: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", "must be chunked"),
    (POST + b"Host: x\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "Transfer-Encoding given more than once"),
    (POST + b"Content-Length: 5\r\n\r\nhello", "needs a Host header"),
    (b"GET /healthz HTTP/1.1\r\n\r\n", "needs a Host header"),
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
     "Host given more than once"),
], ids=["cl-te", "te-cl", "two-cl", "two-equal-cl", "gzip", "gzip-chunked",
        "two-te", "no-host", "no-host-get", "two-hosts"])
def test_ambiguous_framing_is_a_400_and_closes(node, request_bytes, why):
    answer = exchange(node.port, request_bytes)
    body = json_error(answer, 400, "bad request")
    assert why in body["detail"], body
    assert answer[1]["connection"].lower() == "close"
    assert answer[3], "the connection stayed open after refused framing"
    serves_on(node)


def test_http10_without_host_is_fine(node):
    status, _, body, _ = exchange(node.port,
                                  b"GET /healthz HTTP/1.0\r\n\r\n")
    assert (status, body) == (200, b"ok\n")


@pytest.mark.parametrize("value", [b"abc", b"-5", b"5x", b"+5"])
def test_content_length_not_a_number_is_a_400(node, value):
    # libmicrohttpd refuses it itself, before the ingress sees the
    # request (its own short HTML page): a 400 and a closed connection
    got = raw_http(node.port, POST + b"Host: x\r\nContent-Length: " + value
                   + b"\r\n\r\nhello")
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    serves_on(node)


# ---- text parameters ----

def post_raw(port, query, body=b"hello"):
    return exchange(port, b"POST /v1/jobs?" + query + b" HTTP/1.1\r\n"
                    b"Host: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body)


@pytest.mark.parametrize("query,error,why", [
    # a quoted value passes the parser; jansson then refused the record:
    # this was a 500 "out of memory"
    (b"pipeline=watermark(text=%22%ff%22)|png", "bad pipeline",
     "query parameter pipeline: byte 0xff at column 17 is not UTF-8"),
    (b"pipeline=watermark(text=%22a%c3%22)|png", "bad pipeline",
     "byte 0xc3 at column 18 is not UTF-8"),
    (b"pipeline=watermark(text=%22a%01b%22)|png", "bad pipeline",
     "control character U+0001 at column 18"),
    (b"pipeline=png%00|jpeg", "bad pipeline",
     "control character U+0000 at column 4"),
    (b"preset=th%ffumb", "bad pipeline",
     "query parameter preset: byte 0xff at column 3 is not UTF-8"),
    (b"pipeline=png&wait=1%0a", "bad request",
     "query parameter wait: control character U+000A at column 2"),
    (b"pipeline=png&sig=%c0%af", "bad request",
     "query parameter sig: byte 0xc0 at column 1 is not UTF-8"),
    (b"pipeline=png&%fe=1", "bad request",
     "the name of a query parameter: byte 0xfe at column 1"),
], ids=["quoted-ff", "quoted-cut", "quoted-ctl", "nul", "preset", "wait",
        "sig", "name"])
def test_text_that_is_not_utf8_is_a_400(node, images, query, error, why):
    answer = post_raw(node.port, query, images(PNG))
    body = json_error(answer, 400, error)
    assert why in body["detail"], body
    serves_on(node)


def test_utf8_text_is_taken(node, images):
    r = node.submit(images(PNG), pipeline='watermark(text="café €")|png',
                    wait=20)
    assert r.status_code == 200, r.text
    rec = node.record(r.headers["X-Imgnode-Job"])
    assert "café €" in rec["pipeline"]


def post_form(s, body, content_type=b"multipart/form-data; boundary=xyz",
              query=b""):
    return exchange(s.port, b"POST /v1/jobs" + query + b" HTTP/1.1\r\n"
                    b"Host: x\r\nContent-Type: " + content_type +
                    b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
                    close_wait=0)


PIPE = b'Content-Disposition: form-data; name="pipeline"\r\n'


def test_multipart_pipeline_part_not_utf8_is_a_400(node, images):
    body = multipart([(FILE, images(PNG)),
                      (PIPE, b'watermark(text="\xff")|png')])
    j = json_error(post_form(node, body), 400, "bad pipeline")
    assert "the pipeline part: byte 0xff at column 17 is not UTF-8" in \
        j["detail"], j
    serves_on(node)


@pytest.mark.parametrize("case,why", [
    ("two file parts", "a second file part"),
    ("two pipeline parts", "a second pipeline part"),
    ("truncated", "ends before its closing boundary"),
    ("huge part headers", "part headers over 64 KiB"),
    ("no boundary", "unreadable multipart/form-data header"),
    ("empty boundary", "unreadable multipart/form-data header"),
])
def test_malformed_multipart_is_a_400(node, images, case, why):
    data = images(PNG)
    content_type = b"multipart/form-data; boundary=xyz"
    if case == "two file parts":
        body = multipart([(FILE, data), (FILE, data), (PIPE, b"png")])
    elif case == "two pipeline parts":
        # these were glued together: "thumbnail(8)" + "|png"
        body = multipart([(FILE, data), (PIPE, b"thumbnail(8)"),
                          (PIPE, b"|png")])
    elif case == "truncated":
        body = multipart([(PIPE, b"png"), (FILE, data)], end=False)
        body = body[:-40]
    elif case == "huge part headers":
        body = multipart([(PIPE, b"png"),
                          (FILE + b"X-Padding: " + b"a" * 70000 + b"\r\n",
                           data)])
    elif case == "no boundary":
        body = multipart([(FILE, data), (PIPE, b"png")])
        content_type = b"multipart/form-data"
    else:
        body = multipart([(FILE, data), (PIPE, b"png")])
        content_type = b"multipart/form-data; boundary="
    j = json_error(post_form(node, body, content_type), 400, "bad request")
    assert why in j["detail"], j
    serves_on(node)


# ---- bodies past max_body ----

def test_chunked_body_far_past_max_body_is_a_413(node):
    """A chunked upload has no length to refuse up front; one a little
    over the limit was a 413, one 16 MiB over it was cut off (a reset)."""
    total = 30 * MAX_BODY

    def chunks():
        for _ in range(0, total, 256 * 1024):
            yield b"\0" * (256 * 1024)
    r = requests.post(node.url + "/v1/jobs", params={"pipeline": "png"},
                      data=chunks(), timeout=120)
    body = error_of(r, 413, "body too large")
    assert str(MAX_BODY) in body["detail"]
    # multipart too
    r = requests.post(node.url + "/v1/jobs", params={"pipeline": "png"},
                      data=chunks(), timeout=120, headers={
                          "Content-Type": "multipart/form-data; boundary=bnd-1"})
    error_of(r, 413, "body too large")
    serves_on(node)


# ---- jobs in flight, shared fairly ----

def submit_as(s, data, client=None, key=None, pipeline="png"):
    headers = {}
    if client:
        headers["X-Forwarded-For"] = f"10.9.9.9, {client}"
    if key:
        headers["X-Api-Key"] = key
    return s.submit(data, pipeline=pipeline, headers=headers)


def too_many(r, limit):
    body = error_of(r, 429, "too many jobs")
    assert r.headers["Retry-After"] == "5"
    assert body["limit"] == limit, body
    assert f"[ingress] {limit}" in body["detail"], body
    return body


def test_one_client_cannot_take_every_place(own, images):
    s = own(workers=0, max_inflight=6, max_inflight_per_client=2)
    data = images(PNG)
    hog = "198.51.100.7"
    for _ in range(2):
        assert submit_as(s, data, hog).status_code == 202
    body = too_many(submit_as(s, data, hog), "max_inflight_per_client")
    assert f"client {hog} has 2 jobs in flight" in body["detail"], body
    # everyone else still gets in: other addresses, and the proxy's own
    for client in ("203.0.113.9", "2001:db8:1:2::5", None):
        r = submit_as(s, data, client)
        assert r.status_code == 202, (client, r.text)
    # an IPv6 client is counted by its /64
    r = submit_as(s, data, "2001:db8:1:2::6")
    assert r.status_code == 202, r.text
    body = too_many(submit_as(s, data, "2001:db8:1:2:ffff::1"),
                    "max_inflight_per_client")
    assert "client 2001:db8:1:2::/64 has 2" in body["detail"], body
    # the node's own limit is still the node's: 6 in flight
    assert s.metric("imgnode_jobs_inflight") == 6
    too_many(submit_as(s, data, "192.0.2.50"), "max_inflight")
    serves_on(s)


def test_parallel_uploads_of_one_client_get_exactly_its_share(own, images):
    s = own(workers=0, max_inflight=100, max_inflight_per_client=3)
    data = images(PNG)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: submit_as(s, data, "192.0.2.7"),
                                range(12)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 3 + [429] * 9, codes
    for r in answers:
        if r.status_code == 429:
            too_many(r, "max_inflight_per_client")
    assert s.metric("imgnode_jobs_inflight") == 3
    assert submit_as(s, data, "192.0.2.8").status_code == 202


def test_api_keys_are_counted_per_key(own, images):
    s = own(workers=0, api_keys="alice:key-one, key-two",
            max_inflight_per_client=1)
    data = images(PNG)
    assert submit_as(s, data, key="key-one").status_code == 202
    # another address does not make it another client: the key does
    body = too_many(submit_as(s, data, "203.0.113.1", key="key-one"),
                    "max_inflight_per_client")
    assert "API key alice has 1 jobs in flight" in body["detail"], body
    assert submit_as(s, data, key="key-two").status_code == 202
    # a key without an ID is named by its hash, never by itself
    body = too_many(submit_as(s, data, key="key-two"),
                    "max_inflight_per_client")
    assert "API key sha256-" in body["detail"], body
    assert "key-two" not in body["detail"], body


def test_forwarded_for_counts_only_from_trusted_proxies(own, images):
    s = own(workers=0, max_inflight_per_client=1,
            trusted_proxies="192.0.2.1")
    data = images(PNG)
    assert submit_as(s, data, "203.0.113.1").status_code == 202
    # 127.0.0.1 is not trusted here: both are the same client
    body = too_many(submit_as(s, data, "203.0.113.2"),
                    "max_inflight_per_client")
    assert "client 127.0.0.1 has 1" in body["detail"], body


def test_the_last_forwarded_for_header_counts(own, images):
    s = own(workers=0, max_inflight_per_client=1)
    data = images(PNG)
    status, _, body, _ = exchange(
        s.port, b"POST /v1/jobs?pipeline=png HTTP/1.1\r\nHost: x\r\n"
        b"X-Forwarded-For: 203.0.113.1\r\n"
        b"X-Forwarded-For: 10.0.0.1, 198.51.100.1\r\n"
        b"Content-Length: %d\r\n\r\n" % len(data) + data, close_wait=0)
    assert status == 202, body
    body = too_many(submit_as(s, data, "198.51.100.1"),
                    "max_inflight_per_client")
    assert "client 198.51.100.1 has 1" in body["detail"], body
    assert submit_as(s, data, "203.0.113.1").status_code == 202


def test_bad_trusted_proxy_stops_the_ingress_with_a_reason(own):
    with pytest.raises(pytest.fail.Exception) as failed:
        own(trusted_proxies="nginx.local")
    assert '[ingress] trusted_proxies: "nginx.local" is not an IPv4 or ' \
        'IPv6 address' in str(failed.value)


def test_a_finished_job_gives_its_place_back(own, images):
    s = own(workers=1, max_inflight_per_client=1)
    data = images(PNG)
    for width in (8, 9, 10):
        r = s.submit(data, pipeline=f"thumbnail({width})|png", wait=20)
        assert r.status_code == 200, r.text
    assert s.metric("imgnode_jobs_inflight") == 0


def test_per_client_limit_can_be_turned_off(own, images):
    s = own(workers=0, max_inflight=5, max_inflight_per_client=0)
    data = images(PNG)
    for _ in range(5):
        assert submit_as(s, data).status_code == 202
    too_many(submit_as(s, data), "max_inflight")


def test_behind_nginx_a_forged_forwarded_for_changes_nothing(own, images,
                                                             tmp_path):
    """Through the shipped nginx site, X-Forwarded-For ends with the
    address nginx saw: what a client writes there itself does not make it
    another client."""
    s = own(workers=0, max_inflight_per_client=1)
    front = free_port()
    ngx = tmp_path / "nginx"
    subprocess.run(["test/lib/nginx", "start", str(ngx), str(front),
                    str(s.port)], cwd=ROOT, check=True, timeout=60)
    try:
        url = f"http://127.0.0.1:{front}/v1/jobs"
        data = images(PNG)
        r = requests.post(url, params={"pipeline": "png"}, data=data,
                          headers={"X-Forwarded-For": "203.0.113.1"},
                          timeout=30)
        assert r.status_code == 202, r.text
        r = requests.post(url, params={"pipeline": "png"}, data=data,
                          headers={"X-Forwarded-For": "203.0.113.2"},
                          timeout=30)
        body = too_many(r, "max_inflight_per_client")
        assert "client 127.0.0.1 has 1" in body["detail"], body
    finally:
        subprocess.run(["test/lib/nginx", "stop", str(ngx)], cwd=ROOT,
                       timeout=60)
