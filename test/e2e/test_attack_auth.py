"""Hostile traffic against authentication (issue "Hostile traffic"): signed
requests v2 (replay after expiry, tampering with the method, the path, the
pipeline or the image, unknown key ids, two keys valid at once, a NUL
appended), jobs readable only by the API key that submitted them, the
admin listener for /readyz and /metrics (and the shipped nginx site that no
longer proxies them), and secrets in the config (-T redaction, writable
config files refused)."""
import hashlib
import hmac
import os
import subprocess
import time

import pytest
import requests

from nodelib import (ROOT, AdminServer, Imgnode, Node, error_of, free_port,
                     raw_http, signed, start)

K1, S1 = "k1", "first-secret-0123456789"
K2, S2 = "k2", "second-secret-0123456789"
KEYS = {"X-Api-Key": "alice-key"}
OTHER = {"X-Api-Key": "bob-key"}


def post_signed(s, data, pipeline, keyid=K1, secret=S1, headers=KEYS,
                wait=None, **kw):
    q = signed(keyid, secret, "POST", "/v1/jobs", "pipeline=" + pipeline,
               **kw)
    return s.submit(data, pipeline=pipeline, headers=headers, wait=wait,
                    **q)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("auth"),
              api_keys="alice:alice-key, bob:bob-key",
              hmac_keys=f"{K1}:{S1}, {K2}:{S2}", hmac_max_ttl="1h")
    yield s
    s.stop()


# ---- signed requests v2 ----

def test_worked_example_of_the_docs():
    """docs/signing.md's example is what this file's signer (the one the
    node accepts below) computes."""
    doc = (ROOT / "docs" / "signing.md").read_text()
    q = signed("2026-12", "7f3c9a1e5b2d48c6a0e1f4b3d2c5a697", "POST",
               "/v1/jobs", "pipeline=thumbnail(800)|webp(q=75)",
               expires=1798761600)
    assert f"&sig={q['sig']}'" in doc
    job = "0123456789abcdef0123456789abcdef"
    q = signed("2026-12", "7f3c9a1e5b2d48c6a0e1f4b3d2c5a697", "GET",
               f"/v1/jobs/{job}/result", expires=1798761600)
    assert f"/result?keyid=2026-12&expires=1798761600&sig={q['sig']}" in doc


def test_signed_submit_is_accepted_with_either_key(node, images):
    data = images("tiny.png")
    for keyid, secret in ((K1, S1), (K2, S2)):  # rotation: both valid
        r = post_signed(node, data, "thumbnail(8)|png", keyid, secret,
                        wait=20)
        assert r.status_code == 200, r.text
    r = node.submit(data, preset="tiny", headers=KEYS,
                    **signed(K1, S1, "POST", "/v1/jobs", "preset=tiny"))
    assert r.status_code == 202, r.text


def test_unsigned_and_v1_submits_are_refused(node, images):
    data = images("tiny.png")
    pipeline = "thumbnail(8)|png"
    body = error_of(node.submit(data, pipeline=pipeline, headers=KEYS),
                    403, "bad signature")
    assert "keyid" in body["detail"]
    v1 = hmac.new(S1.encode(), pipeline.encode(), hashlib.sha256)
    error_of(node.submit(data, pipeline=pipeline, headers=KEYS,
                         sig=v1.hexdigest()), 403, "bad signature")


def test_replay_after_expiry_is_refused(node, images):
    data = images("tiny.png")
    past = int(time.time()) - 5
    body = error_of(post_signed(node, data, "png", expires=past), 403,
                    "bad signature")
    assert "expired" in body["detail"]
    # a URL good for longer than hmac_max_ttl is refused too
    body = error_of(post_signed(node, data, "png", ttl=7200), 403,
                    "bad signature")
    assert "hmac_max_ttl" in body["detail"]


@pytest.mark.parametrize("field", ["method", "path", "pipeline", "expires",
                                   "keyid"])
def test_tampered_requests_are_refused(node, images, field):
    data = images("tiny.png")
    pipeline = "thumbnail(8)|png"
    what = "pipeline=" + pipeline
    method, path = "POST", "/v1/jobs"
    if field == "method":
        method = "GET"
    elif field == "path":
        path = "/v1/jobs/" + "0" * 32
    elif field == "pipeline":
        what = "pipeline=thumbnail(9)|png"
    q = signed(K1, S1, method, path, what)
    if field == "expires":
        q["expires"] = str(int(q["expires"]) + 60)
    elif field == "keyid":
        q["keyid"] = K2  # signed with k1's secret, claimed to be k2's
    body = error_of(node.submit(data, pipeline=pipeline, headers=KEYS, **q),
                    403, "bad signature")
    assert "docs/signing.md" in body["detail"]


def test_unknown_keyid_is_refused(node, images):
    body = error_of(post_signed(node, images("tiny.png"), "png",
                                keyid="k3", secret=S1), 403, "bad signature")
    assert "unknown keyid" in body["detail"]


def test_nul_or_control_character_appended_is_refused(node):
    """%00 used to end the C string the signature covered: the rest was
    ignored, so a signed pipeline could carry anything after it."""
    q = signed(K1, S1, "POST", "/v1/jobs", "pipeline=png")
    query = "&".join(f"{k}={v}" for k, v in q.items())
    for tail in ("%00anything", "%0Asha256", "%7F"):
        got = raw_http(node.port, (
            f"POST /v1/jobs?pipeline=png{tail}&{query} HTTP/1.1\r\n"
            "Host: x\r\nX-Api-Key: alice-key\r\nContent-Length: 3\r\n"
            "Connection: close\r\n\r\nabc").encode())
        assert got.startswith(b"HTTP/1.1 400 "), got[:200]
        assert b"control character" in got


def test_bad_signature_is_answered_before_the_body(node):
    """Only the headers are sent: the 403 (or 401) comes without the
    node waiting for 900 kB it will not read."""
    q = signed(K1, S1, "POST", "/v1/jobs", "pipeline=png")
    good = "&".join(f"{k}={v}" for k, v in q.items())
    for query, key, status in (
            (good.replace(q["sig"], "0" * 64), "alice-key", b" 403 "),
            (good.replace(q["expires"], str(int(q["expires"]) - 600)),
             "alice-key", b" 403 "),
            (good, "nobody", b" 401 ")):
        got = raw_http(node.port, (
            f"POST /v1/jobs?pipeline=png&{query} HTTP/1.1\r\nHost: x\r\n"
            f"X-Api-Key: {key}\r\nContent-Length: 900000\r\n\r\n"
            ).encode(), timeout=10)
        assert status in got.split(b"\r\n")[0], got[:200]


def test_pipeline_in_a_form_part_is_refused_before_the_body(node, images):
    r = requests.post(node.url + "/v1/jobs", headers=KEYS,
                      files={"file": ("f.png", images("tiny.png")),
                             "pipeline": (None, "png")},
                      params=signed(K1, S1, "POST", "/v1/jobs", "pipeline="),
                      timeout=30)
    body = error_of(r, 403, "bad signature")
    assert "query" in body["detail"]


def test_signed_sha256_binds_the_image(node, images):
    data, other = images("tiny.png"), images("tiny.jpg")
    sha = hashlib.sha256(data).hexdigest()
    r = post_signed(node, data, "png", sha=sha)
    assert r.status_code == 202, r.text
    r = post_signed(node, other, "png", sha=sha)
    body = error_of(r, 403, "bad signature")
    assert "sha256" in body["detail"]


def test_api_key_is_still_required_with_a_signature(node, images):
    error_of(post_signed(node, images("tiny.png"), "png", headers={}),
             401, "unauthorized")


# ---- whose job ----

def test_only_the_submitting_key_reads_a_job(node, images):
    r = post_signed(node, images("tiny.png"), "thumbnail(8)|png", wait=20)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    rec = node.record(job, headers=KEYS)
    assert rec["api_key_id"] == "alice"
    assert "alice-key" not in str(rec)
    assert node.get(f"/v1/jobs/{job}/result", headers=KEYS).content \
        == r.content
    missing = error_of(node.get("/v1/jobs/" + "0" * 32, headers=OTHER),
                       404, "unknown job")
    for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/result"):
        body = error_of(node.get(path, headers=OTHER), 404, "unknown job")
        # the same answer as for a job that does not exist
        assert body["detail"].replace(job, "ID") == \
            missing["detail"].replace("0" * 32, "ID")
    error_of(node.get(f"/v1/jobs/{job}"), 401, "unauthorized")


def test_signed_get_reads_a_job_without_a_key(node, images):
    r = post_signed(node, images("tiny.png"), "thumbnail(8)|png", wait=20)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    path = f"/v1/jobs/{job}/result"
    got = node.get(path, params=signed(K2, S2, "GET", path))
    assert got.status_code == 200 and got.content == r.content
    # a URL signed for the record is not one for the result
    q = signed(K2, S2, "GET", f"/v1/jobs/{job}")
    error_of(node.get(path, params=q), 403, "bad signature")
    assert node.get(f"/v1/jobs/{job}", params=q).status_code == 200
    q = signed(K2, S2, "GET", path, expires=int(time.time()) - 1)
    error_of(node.get(path, params=q), 403, "bad signature")


# ---- the admin listener ----


def test_admin_listener_serves_readyz_and_metrics_alone(tmp_path, images):
    tmp_path.chmod(0o755)
    n = Node(tmp_path)
    port, admin = free_port(), free_port()
    n.write(n.base() + f"[ingress]\nport = {port}\nadmin_port = {admin}\n"
            "[workers]\ncount = 1\n")
    s = AdminServer(n, port, admin)
    try:
        for path in ("/readyz", "/metrics"):
            error_of(s.get(path), 404, "not found")
            assert requests.get(s.admin_url + path,
                                timeout=10).status_code == 200
        assert s.get("/healthz").status_code == 200
        assert requests.get(s.admin_url + "/healthz",
                            timeout=10).status_code == 200
        r = s.submit(images("tiny.png"), pipeline="png", wait=20)
        assert r.status_code == 200, r.text
        job = r.headers["X-Imgnode-Job"]
        # the API is not on the admin port
        error_of(requests.get(f"{s.admin_url}/v1/jobs/{job}", timeout=10),
                 404, "not found")
        error_of(requests.post(s.admin_url + "/v1/jobs?pipeline=png",
                               data=images("tiny.png"), timeout=10),
                 404, "not found")
        m = requests.get(s.admin_url + "/metrics", timeout=10).text
        assert "imgnode_jobs_accepted_total 1" in m
    finally:
        s.stop()


def test_nginx_site_does_not_proxy_readyz_and_metrics(tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "n").mkdir()
    n = Node(tmp_path / "n")
    port = free_port()
    n.write(n.base() + f"[ingress]\nport = {port}\n[workers]\ncount = 1\n")
    s = Imgnode(n, port)
    front = free_port()
    ngx = tmp_path / "nginx"
    subprocess.run(["test/lib/nginx", "start", str(ngx), str(front),
                    str(port)], cwd=ROOT, check=True, timeout=30)
    try:
        url = f"http://127.0.0.1:{front}"
        for path in ("/readyz", "/metrics", "//metrics", "/%6detrics",
                     "/readyz?x=1"):
            r = requests.get(url + path, timeout=10)
            assert r.status_code == 404, (path, r.text)
            assert "imgnode_" not in r.text and "transport" not in r.text
        # on the node itself they are there (no admin port here)
        assert s.get("/metrics").status_code == 200
        assert requests.get(url + "/healthz", timeout=10).text == "ok\n"
    finally:
        subprocess.run(["test/lib/nginx", "stop", str(ngx)], cwd=ROOT,
                       timeout=30)
        s.stop()


# ---- secrets in the config ----

def secret_config(n):
    n.write(n.base() + "[ingress]\napi_keys = alice:alice-key, bare-key\n"
            f"hmac_keys = {K1}:{S1}\n")


def test_print_config_redacts_secrets(tmp_path):
    tmp_path.chmod(0o755)
    n = Node(tmp_path)
    secret_config(n)
    r = n.run("-T")
    assert r.returncode == 0, r.stderr
    for secret in ("alice-key", "bare-key", S1):
        assert secret not in r.stdout
    lines = [ln for ln in r.stdout.splitlines()
             if ln.startswith(("api_keys", "hmac_keys"))]
    assert len(lines) == 2 and all("<redacted>" in ln for ln in lines)
    # an empty secret has nothing to hide
    assert any(ln.startswith("hmac_key =") and "<redacted>" not in ln
               for ln in r.stdout.splitlines())


def test_print_config_redacts_a_plugins_secret(tmp_path):
    """The amqp plugin's url holds the broker's password."""
    tmp_path.chmod(0o755)
    n = Node(tmp_path)
    n.write(n.base() + "[transport]\nplugin = amqp\n"
            "url = amqp://u:hunter2pass@127.0.0.1:1/%2f\n")
    r = n.run("-T")
    assert r.returncode == 0, r.stderr
    assert "hunter2pass" not in r.stdout
    assert "\nurl = <redacted>  ; " in r.stdout


@pytest.mark.parametrize("where", ["main", "dropin", "confd"])
@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_writable_config_is_refused(tmp_path, where, mode):
    tmp_path.chmod(0o755)
    n = Node(tmp_path)
    secret_config(n)
    target = n.ini
    if where == "dropin":
        target = n.write("[workers]\ncount = 1\n", "10-extra.ini")
    elif where == "confd":
        target = n.confd
        mode |= 0o111
    os.chmod(target, mode)
    for args in (["-t"], ["-T"], []):
        r = n.run(*args)
        assert r.returncode == 100, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(target) in lines[0], r.stderr
        assert "writable" in lines[0]
    os.chmod(target, mode & ~0o022)
    assert n.run("-t").returncode == 0


@pytest.mark.parametrize("ingress, expected", [
    ("hmac_key = old-secret\n", "hmac_v1 = yes"),
    ("hmac_keys = k1\n", "not ID:SECRET"),
    ("hmac_keys = k1:short\n", "shorter than 16"),
    (f"hmac_keys = k1:{S1}, k1:{S2}\n", "ID \"k1\" is given twice"),
    ("hmac_keys = bad id:" + S1 + "\n", "an ID is 1-64"),
    ("api_keys = a:x, a:y\n", "ID \"a\" is given twice"),
    ("hmac_v1 = yes\n", "hmac_key is empty"),
])
def test_bad_auth_config_is_refused(tmp_path, ingress, expected):
    tmp_path.chmod(0o755)
    n = Node(tmp_path)
    n.write(n.base() + "[ingress]\n" + ingress)
    r = n.run("-t")
    assert r.returncode == 100 and expected in r.stderr, r.stderr
    assert f"{n.ini}:" in r.stderr


def test_v1_signatures_only_when_the_config_says_so(own, images):
    s = own(api_keys="alice:alice-key", hmac_key="old-secret-0123",
            hmac_v1="yes", hmac_keys=f"{K1}:{S1}")
    data = images("tiny.png")
    pipeline = "thumbnail(8)|png"
    v1 = hmac.new(b"old-secret-0123", pipeline.encode(), hashlib.sha256)
    r = s.submit(data, pipeline=pipeline, headers=KEYS, sig=v1.hexdigest())
    assert r.status_code == 202, r.text
    assert post_signed(s, data, pipeline).status_code == 202
    got = raw_http(s.port, (
        f"POST /v1/jobs?pipeline=thumbnail(8)|png%00x&sig={v1.hexdigest()}"
        " HTTP/1.1\r\nHost: x\r\nX-Api-Key: alice-key\r\n"
        "Content-Length: 3\r\nConnection: close\r\n\r\nabc").encode())
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
