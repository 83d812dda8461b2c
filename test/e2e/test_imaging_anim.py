"""Animations and overlays end to end, on one node (spool + fs): animated
GIF and WebP keep every frame, their delays and loop count through the
common steps and the GIF/WebP encoders; frame(N) picks one; [limits]
max_frames refuses longer ones at upload; overlay(image=ID) composites an
image stored with POST /v1/images, and an unknown id fails the job with a
reason."""
import hashlib
import io

import pytest
import requests
from PIL import Image

from nodelib import corpus, error_of, start

GIF = "gif-anim-circular-table.gif"  # 640x360, 9 frames of 50 ms, loops
PARTY = "gif-anim-party.gif"  # 660x666, 45 frames of 30 to 670 ms
LONG = "gif-anim-aero.gif"  # 56 frames, over max_frames


def webp_frames(data):
    """(size, frame count, delays in ms, loop) of a WebP, from its chunks
    (Pillow 9.4 does not tell a WebP frame's duration)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    delays, loop, size, pos = [], None, None, 12
    while pos + 8 <= len(data):
        tag, n = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8],
                                                   "little")
        body = data[pos + 8:pos + 8 + n]
        if tag == b"VP8X":
            size = (int.from_bytes(body[4:7], "little") + 1,
                    int.from_bytes(body[7:10], "little") + 1)
        elif tag == b"ANIM":
            loop = int.from_bytes(body[4:6], "little")
        elif tag == b"ANMF":
            delays.append(int.from_bytes(body[12:15], "little"))
        pos += 8 + n + (n & 1)
    return size, len(delays), delays, loop


def frames_of(data):
    """(size, frame count, delays in ms, loop) of an animated image."""
    if data[:4] == b"RIFF":
        return webp_frames(data)
    im = Image.open(io.BytesIO(data))
    delays = []
    for i in range(getattr(im, "n_frames", 1)):
        im.seek(i)
        delays.append(im.info.get("duration", 0))
    return im.size, len(delays), delays, im.info.get("loop")


@pytest.fixture(scope="module")
def anim(tmp_path_factory):
    path = tmp_path_factory.mktemp("anim")
    node = start(path, workers=1, max_body="8M",
                 extra="[limits]\nmax_frames = 50\n")
    yield node
    node.stop()


@pytest.fixture(scope="module")
def gif():
    with open(corpus("formats")[GIF], "rb") as f:
        return f.read()


def done(node, data, pipeline):
    r = node.submit(data, pipeline, wait=60)
    assert r.status_code == 200, (pipeline, r.status_code, r.text[:300])
    return r


def test_gif_thumbnail_keeps_frames(anim, images):
    party = images(PARTY)
    size, n, delays, loop = frames_of(party)
    assert n == 45 and len(set(delays)) > 3
    for enc, mime in (("gif", "image/gif"), ("webp", "image/webp")):
        r = done(anim, party, f"thumbnail(100)|{enc}")
        assert r.headers["Content-Type"] == mime
        if enc == "gif":  # the record: a frame's size, and how many
            job = anim.submit(party, f"thumbnail(100)|{enc}").json()["id"]
            anim.wait_status(job, ("done",))
            out = anim.record(job)["output"]
            assert (out["width"], out["height"], out["frames"]) == \
                (100, 101, 45)
        osize, on, odelays, oloop = frames_of(r.content)
        assert osize == (100, 101), enc
        assert oloop == loop, enc
        if enc == "gif":
            assert (on, odelays) == (n, delays)
        else:  # libwebp merges frames that come out the same
            assert n // 2 < on <= n and sum(odelays) == sum(delays)


def test_steps_keep_frames(anim, gif):
    _, n, delays, _ = frames_of(gif)
    assert n == 9
    for pipeline, size in (("crop(10,20,100,50)|gif", (100, 50)),
                           ("rotate(90)|gif", (360, 640)),
                           ("flip(vertical)|strip|gif", (640, 360)),
                           ("autorotate|grayscale|sharpen|gif", (640, 360)),
                           ("thumbnail(64)|watermark(text=hi)|gif", (64, 36))):
        osize, on, odelays, _ = frames_of(done(anim, gif, pipeline).content)
        assert (osize, on, odelays) == (size, n, delays), pipeline


def test_webp_round_trip(anim, gif):
    """An animated WebP (made from the GIF) through thumbnail and rotate,
    to WebP and to GIF."""
    webp = done(anim, gif, "webp(lossless=true)").content
    size, n, delays, loop = frames_of(webp)
    assert (size, n, delays, loop) == ((640, 360), 9, [50] * 9, 0)
    r = done(anim, webp, "thumbnail(320)|rotate(270)")
    assert r.headers["Content-Type"] == "image/webp"
    assert frames_of(r.content) == ((180, 320), n, delays, loop)
    osize, on, odelays, _ = frames_of(done(anim, webp, "gif").content)
    assert (osize, on, odelays) == (size, n, delays)


def test_frame(anim, gif):
    still = Image.open(io.BytesIO(gif))
    still.seek(5)
    want = still.convert("RGB")
    r = done(anim, gif, "frame(5)|png")
    got = Image.open(io.BytesIO(r.content))
    assert got.size == (640, 360) and getattr(got, "n_frames", 1) == 1
    diff = sum(abs(a - b) for a, b in zip(got.convert("RGB").tobytes(),
                                          want.tobytes()))
    assert diff / (640 * 360 * 3) < 1
    # a format without animation gets the first frame
    r = done(anim, gif, "png")
    assert getattr(Image.open(io.BytesIO(r.content)), "n_frames", 1) == 1


def test_refusals(anim, gif, images):
    r = anim.submit(gif, "frame(9)|png", wait=30)
    error_of(r, 422, "image rejected")
    assert "no frame 9: the image has 9 (0 to 8)" in r.json()["detail"]
    r = anim.submit(gif, "smartcrop(50,50)|gif", wait=30)
    error_of(r, 422, "image rejected")
    assert "smartcrop" in r.json()["detail"]
    assert "cannot work on animations (9 frames); use frame(N) first" \
        in r.json()["detail"]
    assert anim.submit(gif, "frame(0)|smartcrop(50,50)|png",
                       wait=30).status_code == 200
    many = images(LONG)
    assert frames_of(many)[1] == 56
    r = anim.submit(many, "thumbnail(50)|gif", wait=30)
    error_of(r, 422, "image rejected")
    assert "image has 56 frames, over [limits] max_frames (50)" \
        in r.json()["detail"]


def store_image(node, data):
    """Stores data with POST /v1/images; returns its id."""
    r = requests.post(node.url + "/v1/images", data=data, timeout=30)
    assert r.status_code in (200, 201), r.text
    assert r.json()["id"] == hashlib.sha256(data).hexdigest()[:32]
    return r.json()["id"]


def logo_png(size=40):
    """A red square with a transparent hole in its middle."""
    im = Image.new("RGBA", (size, size), (255, 0, 0, 255))
    im.paste((0, 0, 0, 0), (size // 4, size // 4, size * 3 // 4,
                             size * 3 // 4))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def test_overlay(anim, images):
    logo = store_image(anim, logo_png())
    photo = images("bridge.jpg")
    base = Image.open(io.BytesIO(done(anim, photo, "thumbnail(200)|png")
                                 .content)).convert("RGB")
    w, h = base.size
    r = done(anim, photo,
             f"thumbnail(200)|overlay({logo},gravity=northwest,x=10,y=5)|png")
    out = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert out.size == (w, h)
    assert out.getpixel((12, 7)) == (255, 0, 0)         # the logo's edge
    assert out.getpixel((30, 25)) == base.getpixel((30, 25))  # its hole
    assert out.getpixel((60, 60)) == base.getpixel((60, 60))  # beside it
    # half opaque, a quarter of the width, in the south-east corner
    r = done(anim, photo, f"thumbnail(200)|overlay(image={logo},"
                          "opacity=0.5,scale=0.25)|png")
    out = Image.open(io.BytesIO(r.content)).convert("RGB")
    red, _, _ = out.getpixel((w - 2, h - 2))
    was, _, _ = base.getpixel((w - 2, h - 2))
    assert abs(red - (255 + was) / 2) <= 3
    assert out.getpixel((w - 52, h - 52)) == base.getpixel((w - 52, h - 52))
    # on every frame of an animation
    r = done(anim, images(GIF), f"overlay({logo},gravity=centre)|gif")
    size, n, _, _ = frames_of(r.content)
    assert n == 9
    im = Image.open(io.BytesIO(r.content))
    for i in (0, 4, 8):
        im.seek(i)
        assert im.convert("RGB").getpixel((320 - 19, 180 - 19)) == \
            (255, 0, 0)


def test_overlay_unknown_and_malformed(anim, images):
    jpeg = images("jpeg-gray.jpg")
    missing = "0123456789abcdef0123456789abcdef"
    r = anim.submit(jpeg, f"overlay({missing})|png", wait=30)
    error_of(r, 422, "job failed")
    assert f"overlay: no image {missing}" in r.json()["detail"]
    r = anim.submit(jpeg, "overlay(image=logo.png)|png", wait=30)
    error_of(r, 400, "bad pipeline")
    assert "is not an image id" in r.json()["detail"]
