"""HTTP caching of results (core/node/ingress_cache.c): a variant's and a
done job's result carry a strong ETag (the result key's hex), Last-Modified
(the stored object's mtime) and a Cache-Control by who may read them
(public and immutable on an open node, private with an API key, a signed
URL's seconds left); If-None-Match (one tag, a list, W/, *) and, without
it, If-Modified-Since answer 304 without a body; HEAD answers the same
headers without one; errors carry no-store; and a request that may not
read a result gets its 401 or 404, never a 304. Two nodes on spool + fs
for the module: one open, one with API keys and signing keys."""
import email.utils
import hashlib
import re
import time
import urllib.parse

import pytest
import requests

from nodelib import error_of, raw_http, signed, small_jpeg, start

YEAR = "max-age=31536000"
KEY = "alice:caching-key-0123456789"
OTHER = "bob:caching-other-key-987654"
SECRET = "s" * 32
ALICE = {"X-Api-Key": KEY.split(":", 1)[1]}
BOB = {"X-Api-Key": OTHER.split(":", 1)[1]}
PIPELINE = "thumbnail(12)|png"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("caching")
    (root / "open").mkdir()
    (root / "keyed").mkdir()
    opened = start(root / "open")
    keyed = start(root / "keyed", api_keys=f"{KEY},{OTHER}",
                  hmac_keys="k1:" + SECRET)
    yield opened, keyed
    opened.stop()
    keyed.stop()


@pytest.fixture(scope="module")
def variant(nodes):
    """(node, the path of a variant made on the open node)."""
    s = nodes[0]
    r = requests.post(s.url + "/v1/images", data=small_jpeg(), timeout=30)
    assert r.status_code in (200, 201), r.text
    path = f"/v1/images/{r.json()['id']}/" + urllib.parse.quote(PIPELINE)
    assert s.get(path).status_code == 200
    return s, path


def head_of(port, method, path, headers=()):
    """(status, headers (lower-case names), body bytes) of a raw request:
    what was sent on the wire, not what a client library makes of it."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    got = raw_http(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}"
                   "Connection: close\r\n\r\n".encode())
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), fields, body


def test_a_variant_carries_its_validators(variant):
    s, path = variant
    a, b = s.get(path), s.get(path)
    assert a.status_code == b.status_code == 200
    etag = a.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag), etag
    assert b.headers["ETag"] == etag and b.content == a.content
    # the result key's hex: the content's key
    rec = s.record(a.headers["X-Imgnode-Job"])
    assert rec["result"] == "out/" + etag.strip('"')
    assert a.headers["Cache-Control"] == f"public, {YEAR}, immutable"
    modified = email.utils.parsedate_to_datetime(a.headers["Last-Modified"])
    assert abs(modified.timestamp() - time.time()) < 600
    assert b.headers["Last-Modified"] == a.headers["Last-Modified"]


def test_if_none_match_gives_304_without_a_body(variant):
    s, path = variant
    got = s.get(path)
    etag = got.headers["ETag"]
    for value in (etag, f'"0000", {etag}', f'"0000",  W/{etag}', f"W/{etag}",
                  "*"):
        status, h, body = head_of(s.port, "GET", path,
                                  [("If-None-Match", value)])
        assert status == 304, value
        assert body == b"", value
        assert h["etag"] == etag
        assert h["cache-control"] == f"public, {YEAR}, immutable"
        # RFC 9110 8.6: none, or the 200's
        assert h.get("content-length", str(len(got.content))) == \
            str(len(got.content))
    # no body on the wire: the next answer on the connection is whole
    with requests.Session() as c:
        for _ in range(2):
            r = c.get(s.url + path, headers={"If-None-Match": etag},
                      timeout=10)
            assert r.status_code == 304 and r.content == b""
            r = c.get(s.url + path, timeout=10)
            assert r.status_code == 200 and r.content == got.content
    # the list spread over two fields is one list
    status, _, _ = head_of(s.port, "GET", path, [("If-None-Match", '"aa"'),
                                                 ("If-None-Match", etag)])
    assert status == 304
    for value in ('"' + "0" * 64 + '"', etag.strip('"'), f'W/"{etag}"',
                  "W/", ""):
        r = s.get(path, headers={"If-None-Match": value})
        assert r.status_code == 200 and r.content, value
        assert r.headers["ETag"] == etag


def test_format_auto_a_tag_per_format_and_vary_on_304(variant):
    s, path = variant
    auto = path.rsplit("/", 1)[0] + "/" + urllib.parse.quote(
        "thumbnail(12)|auto", safe="")
    webp = s.get(auto, headers={"Accept": "image/webp"})
    png = s.get(auto, headers={"Accept": "image/png"})
    assert webp.status_code == png.status_code == 200
    assert webp.headers["Content-Type"] != png.headers["Content-Type"]
    assert webp.headers["ETag"] != png.headers["ETag"]
    status, h, body = head_of(s.port, "GET", auto,
                              [("Accept", "image/webp"),
                               ("If-None-Match", webp.headers["ETag"])])
    assert status == 304 and body == b""
    assert h["vary"] == "Accept" and h["etag"] == webp.headers["ETag"]
    # the other format's tag is not this one's
    assert s.get(auto, headers={"Accept": "image/webp", "If-None-Match":
                                png.headers["ETag"]}).status_code == 200


def test_head_answers_the_same_headers_without_a_body(variant):
    s, path = variant
    got = s.get(path)
    status, h, body = head_of(s.port, "HEAD", path)
    assert status == 200 and body == b""
    assert int(h["content-length"]) == len(got.content)
    for name in ("ETag", "Cache-Control", "Last-Modified", "Content-Type"):
        assert h[name.lower()] == got.headers[name], name
    status, h, body = head_of(s.port, "HEAD", path,
                              [("If-None-Match", got.headers["ETag"])])
    assert status == 304 and body == b""
    # an image's metadata too
    image = path.split("/")[3]
    meta = s.get(f"/v1/images/{image}")
    status, h, body = head_of(s.port, "HEAD", f"/v1/images/{image}")
    assert status == 200 and body == b""
    assert int(h["content-length"]) == len(meta.content)


def test_if_modified_since(variant):
    s, path = variant
    got = s.get(path)
    modified = got.headers["Last-Modified"]
    stamp = email.utils.parsedate_to_datetime(modified).timestamp()
    later = email.utils.formatdate(stamp + 3600, usegmt=True)
    earlier = email.utils.formatdate(stamp - 3600, usegmt=True)
    for value in (modified, later):
        status, h, body = head_of(s.port, "GET", path,
                                  [("If-Modified-Since", value)])
        assert status == 304 and body == b"", value
        assert h["etag"] == got.headers["ETag"]
    # RFC 850 and asctime forms are HTTP-dates too
    t = time.gmtime(stamp + 60)
    for value in (time.strftime("%A, %d-%b-%y %H:%M:%S GMT", t),
                  time.strftime("%a %b %e %H:%M:%S %Y", t)):
        assert head_of(s.port, "GET", path,
                       [("If-Modified-Since", value)])[0] == 304, value
    for value in (earlier, "yesterday", ""):
        r = s.get(path, headers={"If-Modified-Since": value})
        assert r.status_code == 200 and r.content == got.content, value
    # If-None-Match, when sent, decides alone
    r = s.get(path, headers={"If-None-Match": '"other"',
                             "If-Modified-Since": later})
    assert r.status_code == 200 and r.content == got.content


def test_a_job_result_is_cached_as_a_variant(nodes):
    s = nodes[0]
    r = s.submit(small_jpeg(), pipeline=PIPELINE, wait=20)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    path = f"/v1/jobs/{job}/result"
    got = s.get(path)
    assert got.status_code == 200 and got.content == r.content
    etag = got.headers["ETag"]
    assert etag == '"' + s.record(job)["result"][4:] + '"'
    assert got.headers["Cache-Control"] == f"public, {YEAR}, immutable"
    assert "Last-Modified" in got.headers
    status, h, body = head_of(s.port, "GET", path,
                              [("If-None-Match", f"W/{etag}")])
    assert status == 304 and body == b"" and h["etag"] == etag
    status, h, body = head_of(s.port, "HEAD", path)
    assert status == 200 and body == b""
    assert int(h["content-length"]) == len(got.content)
    assert h["etag"] == etag
    # the POST that waited answered the result, but a POST is no GET
    assert "ETag" not in r.headers and "Cache-Control" not in r.headers
    # the record itself changes: no validators
    assert "ETag" not in s.get(f"/v1/jobs/{job}").headers


def test_errors_are_never_stored(nodes, variant):
    s, path = variant
    image = path.split("/")[3]
    for r, status in ((s.get("/v1/jobs/" + "0" * 32 + "/result"), 404),
                      (s.get(f"/v1/images/{'0' * 32}/{PIPELINE}"), 404),
                      (s.get(f"/v1/images/{image}/nosuch(1)"), 400),
                      (s.get("/nosuch"), 404),
                      (requests.post(s.url + path, timeout=10), 405)):
        assert r.status_code == status, r.text
        assert r.headers["Cache-Control"] == "no-store", r.url
    r = nodes[1].get(path)
    assert r.status_code == 401
    assert r.headers["Cache-Control"] == "no-store"


def keyed_variant(s):
    data = small_jpeg()
    q = signed("k1", SECRET, "POST", "/v1/images",
               sha=hashlib.sha256(data).hexdigest())
    r = requests.post(s.url + "/v1/images", params=q, data=data,
                      headers=ALICE, timeout=30)
    assert r.status_code in (200, 201), r.text
    return f"/v1/images/{r.json()['id']}/{PIPELINE}"


def test_keys_private_and_auth_before_304(nodes):
    s = nodes[1]
    path = keyed_variant(s)
    quoted = urllib.parse.quote(path)
    got = s.get(quoted, headers=ALICE)
    assert got.status_code == 200, got.text
    etag = got.headers["ETag"]
    assert got.headers["Cache-Control"] == f"private, {YEAR}, immutable"
    assert s.get(quoted, headers={**ALICE, "If-None-Match": etag}
                 ).status_code == 304
    # no key, a wrong key: 401; another key: as if there were no image
    for headers, status in (({}, 401), ({"X-Api-Key": "wrong"}, 401),
                            (BOB, 404)):
        for cond in ({"If-None-Match": etag}, {"If-None-Match": "*"},
                     {"If-Modified-Since": got.headers["Last-Modified"]}):
            r = s.get(quoted, headers={**headers, **cond})
            assert r.status_code == status, (headers, cond, r.text)
            assert "ETag" not in r.headers
            assert r.headers["Cache-Control"] == "no-store"
    # a job's result likewise
    q = signed("k1", SECRET, "POST", "/v1/jobs", what="pipeline=" + PIPELINE)
    r = s.submit(small_jpeg(), wait=20, headers=ALICE, **q,
                 pipeline=PIPELINE)
    assert r.status_code == 200, r.text
    result = f"/v1/jobs/{r.headers['X-Imgnode-Job']}/result"
    got = s.get(result, headers=ALICE)
    assert got.headers["Cache-Control"] == f"private, {YEAR}, immutable"
    etag = got.headers["ETag"]
    assert s.get(result, headers={**ALICE, "If-None-Match": etag}
                 ).status_code == 304
    for headers, status in (({}, 401), (BOB, 404)):
        r = s.get(result, headers={**headers, "If-None-Match": etag})
        assert r.status_code == status, r.text
        assert r.headers["Cache-Control"] == "no-store"


def test_a_signed_url_is_kept_no_longer_than_it_lives(nodes):
    s = nodes[1]
    path = keyed_variant(s)
    q = signed("k1", SECRET, "GET", path, ttl=120)
    r = s.get(urllib.parse.quote(path), params=q)
    assert r.status_code == 200, r.text
    cc = r.headers["Cache-Control"]
    m = re.fullmatch(r"public, max-age=(\d+)", cc)
    assert m and 60 <= int(m.group(1)) <= 120, cc
    etag = r.headers["ETag"]
    r = s.get(urllib.parse.quote(path), params=q,
              headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert re.fullmatch(r"public, max-age=\d+", r.headers["Cache-Control"])
    # a bad signature is refused before any 304
    q["sig"] = "0" * 64
    r = s.get(urllib.parse.quote(path), params=q,
              headers={"If-None-Match": etag})
    error_of(r, 403, "bad signature")
    assert r.headers["Cache-Control"] == "no-store"
