"""Images as a resource and their variants by URL (POST /v1/images, GET
and DELETE /v1/images/ID, GET /v1/images/ID/PIPELINE_OR_PRESET), on
spool + fs: content-derived ids and idempotent uploads, the metadata,
variants made once and then served from the result store, identical
concurrent requests making one job, ownership between API keys, bad ids
and pipelines, presets_only, and a DELETE that leaves nothing behind."""
import concurrent.futures
import hashlib
import os
import urllib.parse

import pytest
import requests

from nodelib import error_of, image_size, signed, small_jpeg, start

ALICE = {"X-Api-Key": "alice-key-1234"}
BOB = {"X-Api-Key": "bob-key-5678"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("images"),
              api_keys="alice:alice-key-1234, bob:bob-key-5678",
              variant_wait="20s")
    yield s
    s.stop()


def upload(srv, data, headers=ALICE, **kw):
    return requests.post(srv.url + "/v1/images", data=data, headers=headers,
                         timeout=30, **kw)


def variant(srv, image, what, headers=ALICE, method="GET"):
    return requests.request(
        method, f"{srv.url}/v1/images/{image}/"
        + urllib.parse.quote(what, safe=""), headers=headers, timeout=60)


def stored_names(srv):
    """Every file and directory name under the node's state dir."""
    names = []
    for _, dirs, files in os.walk(srv.node.state):
        names += dirs + files
    return names


def test_upload_is_idempotent_and_content_addressed(srv):
    data = small_jpeg()
    first = upload(srv, data)
    assert first.status_code in (200, 201), first.text
    meta = first.json()
    image = hashlib.sha256(data).hexdigest()[:32]
    assert meta["id"] == image
    assert first.headers["Location"] == f"/v1/images/{image}"
    assert (meta["format"], meta["width"], meta["height"]) == \
        ("jpeg", 600, 450)
    assert meta["bytes"] == len(data)
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["created"]
    assert "owners" not in meta
    again = upload(srv, data)
    assert again.status_code == 200, again.text
    assert again.json() == meta
    form = upload(srv, None, files={"file": ("a.jpg", data, "image/jpeg")})
    assert form.status_code == 200 and form.json()["id"] == image
    # stored once
    assert stored_names(srv).count(image) == 2  # img/ID, imgs/ID
    got = srv.get(f"/v1/images/{image}", headers=ALICE)
    assert got.status_code == 200 and got.json() == meta
    head = requests.head(f"{srv.url}/v1/images/{image}", headers=ALICE)
    assert head.status_code == 200 and not head.content
    assert int(head.headers["Content-Length"]) == len(got.content)


def test_bad_uploads_and_ids(srv, images):
    error_of(upload(srv, b""), 400, "bad request")
    error_of(upload(srv, small_jpeg(), params={"pipeline": "png"}), 400,
             "bad request")
    error_of(upload(srv, b"not an image at all" * 10), 415,
             "unsupported format")
    error_of(upload(srv, small_jpeg(), headers={}), 401, "unauthorized")
    error_of(srv.get("/v1/images/nothex", headers=ALICE), 404,
             "unknown image")
    error_of(srv.get("/v1/images/" + "0" * 32, headers=ALICE), 404,
             "unknown image")
    error_of(variant(srv, "0" * 32, "thumbnail(8)|png"), 404,
             "unknown image")
    r = requests.put(srv.url + "/v1/images/" + "0" * 32, headers=ALICE)
    error_of(r, 405, "method not allowed")
    assert r.headers["Allow"] == "GET, HEAD, DELETE"


def test_variants_made_once_then_served(srv):
    image = upload(srv, small_jpeg()).json()["id"]
    accepted = srv.metric("imgnode_jobs_accepted_total")
    made = variant(srv, image, "thumbnail(32) | png")
    assert made.status_code == 200, made.text
    assert made.headers["Content-Type"] == "image/png"
    assert image_size(made.content) == ("png", 32, 24)
    assert "Vary" not in made.headers
    job = made.headers["X-Imgnode-Job"]
    rec = srv.record(job, headers=ALICE)
    assert rec["image"] == image and rec["status"] == "done"
    assert srv.metric("imgnode_jobs_accepted_total") == accepted + 1
    # the canonical pipeline names the same variant: served, not made
    again = variant(srv, image, "thumbnail(32)|png")
    assert again.status_code == 200 and again.content == made.content
    assert again.headers["X-Imgnode-Job"] == job
    assert srv.metric("imgnode_jobs_accepted_total") == accepted + 1
    preset = variant(srv, image, "thumb")
    assert preset.status_code == 200 and \
        preset.headers["Content-Type"] == "image/webp"
    head = variant(srv, image, "thumb", method="HEAD")
    assert head.status_code == 200 and not head.content
    assert int(head.headers["Content-Length"]) == len(preset.content)


def test_bad_variants(srv):
    image = upload(srv, small_jpeg()).json()["id"]
    body = error_of(variant(srv, image, "thumbnail(32"), 400,
                    "bad pipeline")
    assert "column 13" in body["detail"]
    error_of(variant(srv, image, "nosuchpreset"), 400, "bad pipeline")
    # predicted over [limits] from the kept header, nothing queued
    body = error_of(variant(srv, image, "thumbnail(29000, size=up)|png"), 422,
                    "image rejected")
    assert "max_" in body["detail"]


def test_identical_concurrent_requests_make_one_job(srv, images):
    image = upload(srv, images("jpeg-icc.jpg")).json()["id"]
    accepted = srv.metric("imgnode_jobs_accepted_total")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(
            lambda _: variant(srv, image, "thumbnail(200)|sharpen|webp"),
            range(8)))
    assert [r.status_code for r in got] == [200] * 8, [r.text for r in got]
    assert len({r.content for r in got}) == 1
    assert len({r.headers["X-Imgnode-Job"] for r in got}) == 1
    assert srv.metric("imgnode_jobs_accepted_total") == accepted + 1


def test_images_belong_to_their_keys(srv, images):
    data = images("pngsuite-basn6a08.png")
    image = upload(srv, data).json()["id"]
    error_of(srv.get(f"/v1/images/{image}", headers=BOB), 404,
             "unknown image")
    error_of(variant(srv, image, "thumbnail(8)|png", headers=BOB), 404,
             "unknown image")
    error_of(requests.delete(f"{srv.url}/v1/images/{image}", headers=BOB),
             404, "unknown image")
    error_of(srv.get(f"/v1/images/{image}"), 401, "unauthorized")
    # bob uploads the same bytes: one image, two owners; a 201, as for a
    # new image (a 200 would tell bob someone had uploaded it)
    r = upload(srv, data, headers=BOB)
    assert r.status_code == 201 and r.json()["id"] == image
    assert upload(srv, data, headers=BOB).status_code == 200
    assert srv.get(f"/v1/images/{image}", headers=BOB).status_code == 200
    assert requests.delete(f"{srv.url}/v1/images/{image}",
                           headers=BOB).status_code == 204
    # bob let go of it; alice still has it
    error_of(srv.get(f"/v1/images/{image}", headers=BOB), 404,
             "unknown image")
    assert srv.get(f"/v1/images/{image}", headers=ALICE).status_code == 200


def test_delete_leaves_nothing(srv):
    data = small_jpeg()[:-2] + b"\x00\xff\xd9"  # an image of its own
    image = upload(srv, data).json()["id"]
    jobs = []
    for what in ("thumbnail(40)|png", "thumb", "tiny"):
        r = variant(srv, image, what)
        assert r.status_code == 200, r.text
        jobs.append(r.headers["X-Imgnode-Job"])
    names = stored_names(srv)
    assert image in names and all(j in names for j in jobs)
    r = requests.delete(f"{srv.url}/v1/images/{image}", headers=ALICE)
    assert r.status_code == 204, r.text
    left = [n for n in stored_names(srv)
            if image in n or any(n.startswith(j) for j in jobs)]
    assert not left
    error_of(srv.get(f"/v1/images/{image}", headers=ALICE), 404,
             "unknown image")
    error_of(requests.delete(f"{srv.url}/v1/images/{image}",
                             headers=ALICE), 404, "unknown image")


def test_presets_only(own):
    s = own(presets_only="yes")
    image = requests.post(s.url + "/v1/images", data=small_jpeg(),
                          timeout=30).json()["id"]
    assert s.get(f"/v1/images/{image}/tiny").status_code == 200
    body = error_of(s.get(f"/v1/images/{image}/thumbnail(8)|png"), 403,
                    "presets only")
    assert "presets_only" in body["detail"]


def test_not_made_within_variant_wait(own):
    s = own(variant_wait="0s")
    image = requests.post(s.url + "/v1/images", data=small_jpeg(),
                          timeout=30).json()["id"]
    r = s.get(f"/v1/images/{image}/thumbnail(20)|png")
    body = error_of(r, 503, "not ready")
    assert r.headers["Retry-After"]
    # the job goes on; once done, the variant is served
    s.wait_status(body["id"], ("done",))
    r = s.get(f"/v1/images/{image}/thumbnail(20)|png")
    assert r.status_code == 200 and image_size(r.content)[1] == 20


def test_variant_wait_is_checked_against_proxy_timeout(node):
    node.write(node.base() + "[ingress]\nvariant_wait = 70s\n")
    r = node.run("-t")
    assert r.returncode == 100, r.stderr
    assert "variant_wait + 2 x dependency_wait" in r.stderr, r.stderr
    node.write(node.base() + "[ingress]\nvariant_wait = 60s\n")
    assert node.run("-t").returncode == 0


def test_signed_upload_and_variant_url(own):
    s = own(hmac_keys="k1:" + "s" * 32)
    data = small_jpeg()
    error_of(requests.post(s.url + "/v1/images", data=data, timeout=30),
             403, "bad signature")
    q = signed("k1", "s" * 32, "POST", "/v1/images",
               sha=hashlib.sha256(data).hexdigest())
    r = requests.post(s.url + "/v1/images", params=q, data=data, timeout=30)
    assert r.status_code == 201, r.text
    path = f"/v1/images/{r.json()['id']}/thumbnail(10)|png"
    q = signed("k1", "s" * 32, "GET", path)
    r = s.get(urllib.parse.quote(path), params=q)
    assert r.status_code == 200 and image_size(r.content)[1] == 10
    q["sig"] = "0" * 64
    error_of(s.get(urllib.parse.quote(path), params=q), 403,
             "bad signature")


def test_a_variant_that_fails_is_a_422_made_once(srv, images):
    r = upload(srv, images("premature-end.jpg"))
    assert r.status_code in (200, 201), r.text
    image = r.json()["id"]
    accepted = srv.metric("imgnode_jobs_accepted_total")
    for _ in range(2):
        body = error_of(variant(srv, image, "thumbnail(30)|png"), 422,
                        "job failed")
        assert body["detail"] != "unknown"
    assert srv.metric("imgnode_jobs_accepted_total") == accepted + 1
