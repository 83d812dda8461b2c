"""Variants behind the shipped nginx site (etc/nginx/imgnode.conf, run by
test/lib/nginx): nginx's proxy_cache answers a variant's second request
itself (X-Cache-Status: HIT), and the node never sees it (its access log
has one line for the variant's URL); requests with an API key are never
cached."""
import re
import subprocess
import urllib.parse

import pytest
import requests

from nodelib import ROOT, free_port, small_jpeg, start


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    path = tmp_path_factory.mktemp("images_nginx")
    (path / "node").mkdir()
    s = start(path / "node")
    port = free_port()
    ngx = path / "nginx"
    subprocess.run(["test/lib/nginx", "start", str(ngx), str(port),
                    str(s.port)], cwd=ROOT, check=True)
    yield s, f"http://127.0.0.1:{port}"
    subprocess.run(["test/lib/nginx", "stop", str(ngx)], cwd=ROOT)
    s.stop()


def seen(node, path):
    """The node's access-log lines for path."""
    return [line for line in node.lines
            if " access: " in line and f" {path} status=" in line]


def test_second_request_is_served_by_nginx(front):
    node, url = front
    image = requests.post(url + "/v1/images", data=small_jpeg(),
                          timeout=30).json()["id"]
    path = f"/v1/images/{image}/" + urllib.parse.quote("thumbnail(48)|png")
    first = requests.get(url + path, timeout=60)
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache-Status"] == "MISS"
    second = requests.get(url + path, timeout=60)
    assert second.status_code == 200
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    node.wait(lambda: seen(node, urllib.parse.unquote(path)),
              "the node's access line")
    assert len(seen(node, urllib.parse.unquote(path))) == 1, \
        seen(node, urllib.parse.unquote(path))
    # a preset's URL is cached the same way
    for want in ("MISS", "HIT"):
        r = requests.get(f"{url}/v1/images/{image}/tiny", timeout=60)
        assert r.status_code == 200 and r.headers["X-Cache-Status"] == want


def test_requests_with_a_key_bypass_the_cache(front):
    _, url = front
    image = requests.post(url + "/v1/images", data=small_jpeg(),
                          timeout=30).json()["id"]
    for _ in range(2):
        r = requests.get(f"{url}/v1/images/{image}/thumb", timeout=60,
                         headers={"X-Api-Key": "anything"})
        assert r.status_code == 200
        assert r.headers["X-Cache-Status"] == "BYPASS"
    assert re.fullmatch(r"[0-9a-f]{32}", image)
