"""The auto encoder step (core/node/negotiate.c): the node picks AVIF,
WebP, JPEG, PNG or GIF per request from the Accept header and the image,
at [formats]' qualities, before the job is recorded and keyed; answers
say Vary: Accept. One node for the module."""
import subprocess
import urllib.parse

import pytest
import requests

from nodelib import IMGNODECTL, corpus, image_size, start

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI = ("image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,"
          "*/*;q=0.5")


@pytest.fixture(scope="module")
def n(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("auto"),
              extra="[formats]\nwebp_quality = 61\njpeg_quality = 77\n")
    yield s
    s.stop()


def read(name):
    with open(corpus("formats")[name], "rb") as f:
        return f.read()


def run(n, data, accept, pipeline="thumbnail(48)|auto"):
    """Submits and waits; returns (answer, the job's record)."""
    headers = {"Accept": accept}  # None: no Accept header at all
    r = n.submit(data, pipeline, wait=20, headers=headers)
    assert r.status_code == 200, (r.status_code, r.text)
    rec = n.get(f"/v1/jobs/{r.headers['X-Imgnode-Job']}").json()
    return r, rec


def test_browsers_get_their_best(n):
    photo = read("jpeg-icc.jpg")
    r, rec = run(n, photo, CHROME)
    assert r.headers["Content-Type"] == "image/avif"
    assert r.content[4:12] == b"ftypavif"
    assert r.headers["Vary"] == "Accept"
    assert "|avif(" in rec["pipeline"] and "q=50)" in rec["pipeline"], rec
    assert rec["output"]["mime"] == "image/avif"

    r, rec = run(n, photo, SAFARI)
    assert image_size(r.content)[0] == "webp"
    assert "|webp(" in rec["pipeline"] and ",q=61," in rec["pipeline"], rec
    assert r.headers["Vary"] == "Accept"


def test_wildcards_and_no_accept_get_jpeg(n):
    photo = read("jpeg-icc.jpg")
    for accept in ("*/*", "image/*", None, "text/html"):
        r, rec = run(n, photo, accept)
        assert image_size(r.content)[0] == "jpeg", accept
        assert "|jpeg(" in rec["pipeline"] and "q=77" in rec["pipeline"]
    # q=0 excludes: WebP named, AVIF refused
    r, rec = run(n, photo, "image/avif;q=0,image/webp,*/*;q=0.5")
    assert image_size(r.content)[0] == "webp"


def test_alpha_and_animation(n):
    rgba = read("pngsuite-basn6a08.png")
    r, rec = run(n, rgba, "image/jpeg,*/*")
    assert image_size(r.content)[0] == "png"
    assert r.headers["Content-Type"] == "image/png"
    r, _ = run(n, rgba, SAFARI)
    assert image_size(r.content)[0] == "webp"
    gif = read("gif-anim-17x17.gif")
    r, rec = run(n, gif, CHROME, pipeline="auto")
    assert image_size(r.content)[0] == "webp"  # never AVIF for animations
    r, rec = run(n, gif, "*/*", pipeline="auto")
    assert image_size(r.content)[0] == "gif"


def test_result_cache_keys_the_choice(n):
    """The key names the chosen format: the same client hits the cache,
    another one gets its own result."""
    photo = read("jpeg-progressive.jpg")
    a, rec_a = run(n, photo, SAFARI, "thumbnail(40)|auto")
    b, rec_b = run(n, photo, SAFARI, "thumbnail(40)|auto")
    c, rec_c = run(n, photo, "*/*", "thumbnail(40)|auto")
    assert rec_b["cached"] is True and rec_b["result"] == rec_a["result"]
    assert rec_c["result"] != rec_a["result"]
    assert image_size(c.content)[0] == "jpeg"


def test_no_vary_without_auto(n):
    r = n.submit(read("jpeg-icc.jpg"), "thumbnail(32)|webp", wait=20,
                 headers={"Accept": CHROME})
    assert r.status_code == 200
    assert "Vary" not in r.headers
    assert image_size(r.content)[0] == "webp"


def test_imgnodectl_process_picks_by_image(n, tmp_path):
    """No client: JPEG for a photo, PNG for alpha."""
    for name, want in (("jpeg-icc.jpg", "jpeg"),
                       ("pngsuite-basn6a08.png", "png")):
        out = tmp_path / f"out-{name}"
        p = subprocess.run([str(IMGNODECTL), "-c", str(n.node.ini), "process",
                            corpus("formats")[name], "thumbnail(20)|auto",
                            str(out)], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        assert image_size(out.read_bytes())[0] == want


def test_variants_by_url_negotiate_too(n):
    """GET /v1/images/ID/PIPELINE goes through the same negotiation: each
    client gets its format, each format its own variant."""
    r = requests.post(n.url + "/v1/images", data=read("jpeg-icc.jpg"),
                      timeout=30)
    assert r.status_code in (200, 201), r.text
    url = f"{n.url}/v1/images/{r.json()['id']}/" + \
        urllib.parse.quote("thumbnail(24)|auto", safe="")
    got = {}
    for accept in (CHROME, SAFARI, "*/*", CHROME):
        v = requests.get(url, headers={"Accept": accept}, timeout=60)
        assert v.status_code == 200, v.text
        assert v.headers["Vary"] == "Accept"
        got.setdefault(accept, []).append(v.headers["X-Imgnode-Job"])
        assert v.headers["Content-Type"] == {
            CHROME: "image/avif", SAFARI: "image/webp",
            "*/*": "image/jpeg"}[accept]
    assert len({got[CHROME][0], got[SAFARI][0], got["*/*"][0]}) == 3
    assert got[CHROME][0] == got[CHROME][1]  # made once, then served
    # an argument that says auto (jpeg's subsample) is no format auto
    v = requests.get(url.rsplit("/", 1)[0] + "/" + urllib.parse.quote(
        "thumbnail(24)|jpeg(subsample=auto)", safe=""),
        headers={"Accept": CHROME}, timeout=60)
    assert v.status_code == 200 and "Vary" not in v.headers
