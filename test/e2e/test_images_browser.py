"""A variant in a web page: <img src="/v1/images/ID/thumb"> in a real
headless Chromium, the page and the API behind the shipped nginx site
(test/lib/nginx; the page a static file nginx serves from a directory of
the test's). The image renders at the preset's width; a reload takes it
from the browser's cache (the node said it is immutable for a year);
with the browser's cache off, nginx answers it from its own (cache=HIT in
its access log, X-Cache-Status: HIT to a fetch from the page); and the
node sees the variant's URL once."""
import subprocess
import time

import pytest
import requests

from nodelib import ROOT, corpus, free_port, image_size, start

PRESET_WIDTH = 64  # [preset.thumb]: thumbnail(64) | webp(q=50)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(node, nginx's directory, front URL, the variant's path)."""
    path = tmp_path_factory.mktemp("images_browser")
    (path / "node").mkdir()
    s = start(path / "node")
    port = free_port()
    ngx = path / "nginx"
    page = path / "page"
    page.mkdir()
    page.chmod(0o755)
    (ngx / "conf" / "server.d").mkdir(parents=True)
    (ngx / "conf" / "server.d" / "page.conf").write_text(
        f"location /t/ {{ alias {page}/; }}\n")
    subprocess.run(["test/lib/nginx", "start", str(ngx), str(port),
                    str(s.port)], cwd=ROOT, check=True, timeout=60)
    front = f"http://127.0.0.1:{port}"
    with open(corpus("photos")["fossa.jpg"], "rb") as f:
        r = requests.post(front + "/v1/images", data=f.read(), timeout=30)
    assert r.status_code == 201, r.text
    variant = f"/v1/images/{r.json()['id']}/thumb"
    (page / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>variant</title>"
        f'<img id=v alt=variant src="{variant}">\n')
    yield s, ngx, front, variant
    subprocess.run(["test/lib/nginx", "stop", str(ngx)], cwd=ROOT,
                   timeout=60)
    s.stop()


def nginx_lines(ngx, path):
    """nginx's access-log lines of GET path."""
    log = ngx / "logs" / "access.log"
    return [line for line in log.read_text().splitlines()
            if f'"GET {path} HTTP/' in line]


def rendered(browser):
    """The image's natural width once it has loaded (0 if it failed)."""
    return browser.execute_async_script(
        "const img = document.getElementById('v'), done = arguments[0];"
        "if (img.complete) done(img.naturalWidth);"
        "else { img.onload = img.onerror = () => done(img.naturalWidth); }")


def test_a_variant_in_a_page_is_cached_by_the_browser_and_nginx(
        browser, site):
    node, ngx, front, variant = site
    browser.set_script_timeout(60)
    browser.get(front + "/t/index.html")
    assert browser.title == "variant"
    assert rendered(browser) == PRESET_WIDTH
    # the log line is written once the answer is sent: wait for it
    deadline = time.monotonic() + 10
    while not nginx_lines(ngx, variant) and time.monotonic() < deadline:
        time.sleep(0.05)
    first = nginx_lines(ngx, variant)
    assert len(first) == 1 and first[0].endswith("cache=MISS"), first

    # a reload: the page again, the image from the browser's cache
    browser.refresh()
    assert rendered(browser) == PRESET_WIDTH
    assert len(nginx_lines(ngx, "/t/index.html")) == 2
    assert nginx_lines(ngx, variant) == first

    # the browser's cache off: nginx answers from its own
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setCacheDisabled",
                            {"cacheDisabled": True})
    browser.refresh()
    assert rendered(browser) == PRESET_WIDTH
    deadline = time.monotonic() + 10
    while len(nginx_lines(ngx, variant)) < 2 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    lines = nginx_lines(ngx, variant)
    assert len(lines) == 2 and lines[1].endswith("cache=HIT"), lines

    # what the page's own fetch sees (asking as an <img> does: nginx's
    # key has what the node's format auto may read of Accept)
    got = browser.execute_async_script(
        "fetch(arguments[0], {cache: 'no-store', headers: {Accept: "
        "'image/avif,image/webp,image/apng,image/*,*/*;q=0.8'}})"
        ".then(async r => "
        "arguments[1]({status: r.status, hit: r.headers.get('X-Cache-Status'),"
        " cc: r.headers.get('Cache-Control'), etag: r.headers.get('ETag'),"
        " bytes: (await r.arrayBuffer()).byteLength}))", variant)
    assert got["status"] == 200 and got["hit"] == "HIT", got
    assert got["cc"] == "public, max-age=31536000, immutable", got
    assert got["etag"].startswith('"') and got["bytes"] > 0, got
    r = requests.get(front + variant, timeout=30,
                     headers={"Accept": "image/avif,image/webp"})
    assert r.headers["X-Cache-Status"] == "HIT"
    assert image_size(r.content)[:2] == ("webp", PRESET_WIDTH)

    # the node made and sent it once
    seen = [line for line in node.lines
            if " access: " in line and f" {variant} status=" in line]
    assert len(seen) == 1, seen
