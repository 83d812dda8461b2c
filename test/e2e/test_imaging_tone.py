"""Colour and tone filters, colour profiles and the encoders' controls end
to end (issue 17): each tone step through a node on corpus images, its
argument errors, outputs converted to sRGB by default (icc(keep) and
icc(embed) otherwise), a CMYK JPEG and 16-bit inputs coming out right,
max_bytes, and the jxl encoder inside the workers' sandbox. One node for
the module."""
import io
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageCms

from nodelib import (IMGNODE, PLUGINS, Imgnode, Node, config, corpus,
                     error_of, image_size, start, vips_bundled)


@pytest.fixture(scope="module")
def n(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("tone"))
    yield s
    s.stop()


def read(name):
    with open(corpus("formats")[name], "rb") as f:
        return f.read()


def run(n, data, pipeline):
    r = n.submit(data, pipeline, wait=30)
    assert r.status_code == 200, (pipeline, r.status_code, r.text)
    return r


def pixels(data, mode="RGB"):
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode), float)


def profile_name(data):
    icc = Image.open(io.BytesIO(data)).info.get("icc_profile")
    if not icc:
        return None
    return ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()


def test_tone_steps(n):
    photo = read("jpeg-progressive.jpg")
    base = pixels(run(n, photo, "thumbnail(64)|png").content)
    h, w = base.shape[:2]
    out = {}
    for step in ("modulate(saturation=0)", "modulate(0.5)", "gamma",
                 "normalise", 'tint("#ff0000")', "median(5)", "threshold",
                 "negate", "modulate(hue=90)"):
        r = run(n, photo, f"thumbnail(64)|{step}|png")
        assert image_size(r.content) == ("png", w, h), step
        out[step] = pixels(r.content)
    grey = out["modulate(saturation=0)"]
    assert np.abs(grey[..., 0] - grey[..., 1]).mean() < 1
    assert out["modulate(0.5)"].mean() < base.mean() * 0.7
    assert out["gamma"].mean() > base.mean() + 10
    assert np.abs(out["negate"] - (255 - base)).max() == 0
    assert set(np.unique(out["threshold"])) <= {0.0, 255.0}
    red = out['tint("#ff0000")']
    assert red[..., 0].mean() > red[..., 2].mean() + 20


@pytest.mark.parametrize("pipeline,status,error,says", [
    ("median(4)|png", 422, "image rejected", "size=4: must be odd"),
    ("median(size=21)|png", 400, "bad pipeline", "median size"),
    ('tint("#12345")|png', 422, "image rejected",
     'colour "#12345" is not a colour: rrggbb'),
    ("tint|png", 400, "bad pipeline", "colour"),
    ("normalise(70,30)|png", 422, "image rejected",
     "lower (70) must be below upper (30)"),
    ("modulate(hue=400)|png", 400, "bad pipeline", "hue"),
    ("icc(wide)|png", 400, "bad pipeline", "srgb, embed, keep"),
    ("png(palette=true,colours=64)", 400, "bad pipeline", "2, 4, 16, 256"),
    ("webp(lossless=true,max_bytes=900)", 422, "image rejected",
     "max_bytes works on lossy WebP only"),
])
def test_argument_errors(n, pipeline, status, error, says):
    r = n.submit(read("tiny.png"), pipeline, wait=10)
    body = error_of(r, status, error)
    assert says in body["detail"], body


def test_profiles(n):
    """tiny-icc.png is tagged Linear sRGB: by default its pixels are
    converted to sRGB and no profile is written; icc(keep) keeps both,
    icc(embed) converts and tags it sRGB."""
    data = read("tiny-icc.png")
    src = Image.open(io.BytesIO(data))
    linear = ImageCms.ImageCmsProfile(io.BytesIO(src.info["icc_profile"]))
    want = np.asarray(ImageCms.profileToProfile(
        src.convert("RGB"), linear, ImageCms.createProfile("sRGB")), float)
    as_is = np.asarray(src.convert("RGB"), float)
    assert np.abs(as_is - want).mean() > 20  # a profile that matters

    default = run(n, data, "png").content
    assert profile_name(default) is None
    assert np.abs(pixels(default) - want).mean() < 1
    kept = run(n, data, "icc(keep)|png").content
    assert profile_name(kept) == "Linear sRGB"
    assert np.abs(pixels(kept) - as_is).mean() < 1
    embedded = run(n, data, "icc(embed)|webp(lossless=true)").content
    assert "sRGB" in profile_name(embedded)
    assert np.abs(pixels(embedded) - want).mean() < 1
    # the same for JPEG
    assert profile_name(run(n, data, "jpeg").content) is None
    assert profile_name(run(n, data, "icc(keep)|jpeg").content) == \
        "Linear sRGB"


@pytest.mark.parametrize("enc", ["jpeg", "webp", "png", "avif"])
def test_cmyk_jpeg_comes_out_srgb(n, enc):
    """Go's video-001 as an Adobe CMYK JPEG: every encoder gets sRGB (a
    JPEG used to stay CMYK, which browsers show wrongly), close to the
    same picture's YCbCr JPEG."""
    r = run(n, read("jpeg-cmyk.jpg"), enc)
    if enc == "avif":
        assert r.headers["Content-Type"] == "image/avif"
        return
    im = Image.open(io.BytesIO(r.content))
    assert im.mode in ("RGB", "RGBA") and im.size == (150, 103), im.mode
    ref = pixels(read("jpeg-cmyk.ref.jpg"))
    assert np.abs(pixels(r.content) - ref).mean() < 30
    # icc(keep) keeps CMYK only where the format can carry it
    kept = Image.open(io.BytesIO(run(n, read("jpeg-cmyk.jpg"),
                                     f"icc(keep)|{enc}").content))
    assert kept.mode == ("CMYK" if enc == "jpeg" else "RGB"), kept.mode


@pytest.mark.parametrize("name", ["tiff-rgb16.tiff", "tiff-gray16.tiff"])
def test_16_bit_inputs(n, name):
    """16 bits a sample, to 8-bit encoders: the same picture as the
    8-bit original (video-001), up to the lossy encoding."""
    mode = "L" if "gray" in name else "RGB"
    ref = pixels(read("tiff-deflate.tiff"), mode)
    for enc in ("jpeg", "webp(q=90)"):
        out = run(n, read(name), enc).content
        assert np.abs(pixels(out, mode) - ref).mean() < 5, (name, enc)
    wide = run(n, read(name), "png").content
    assert Image.open(io.BytesIO(wide)).mode in ("I;16", "I", "RGB")


def test_max_bytes(n):
    photo = read("jpeg-progressive.jpg")
    full = run(n, photo, "thumbnail(300)|webp(q=95)").content
    for enc in ("jpeg", "webp", "avif"):
        limit = len(full) // 3
        r = run(n, photo, f"thumbnail(300)|{enc}(q=95,max_bytes={limit})")
        assert len(r.content) <= limit, (enc, len(r.content), limit)
        r = n.submit(photo, f"thumbnail(300)|{enc}(max_bytes=50)", wait=30)
        body = error_of(r, 422, "job failed")
        assert "max_bytes=50: even the lowest quality is too big" in \
            body["detail"], body


def test_jxl_in_the_workers(n):
    photo = read("jpeg-progressive.jpg")
    # make VIPS=bundled is sharp's libvips, built without libjxl
    if vips_bundled():
        body = error_of(n.submit(photo, "thumbnail(80)|jxl(q=60)", wait=30),
                        422, "job failed")
        assert "cannot save JPEG XL" in body["detail"], body
        return
    r = run(n, photo, "thumbnail(80)|jxl(q=60)")
    assert r.headers["Content-Type"] == "image/jxl"
    assert r.content[:2] == b"\xff\x0a"


def test_jxl_missing_from_libvips(tmp_path):
    """A libvips without jxlsave (sharp's prebuilt one; here Debian's with
    its modules hidden by VIPSHOME): the node starts, imgnode -t says why,
    a job ending in jxl fails with that reason and others still run."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for so in PLUGINS.glob("*.so"):
        if so.name != "avif.so":  # AVIF is a module too: refused at start
            shutil.copy(so, plugins)  # the node opens no symlink
    (tmp_path / "node").mkdir()
    node = Node(tmp_path / "node")
    port = config(node, plugins=plugins)
    env = {**os.environ, "VIPSHOME": str(tmp_path / "none")}
    t = subprocess.run([str(IMGNODE), "-c", str(node.ini), "-t"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert t.returncode == 0, t.stderr
    assert "cannot save JPEG XL: it has no jxlsave_buffer" in t.stderr
    s = Imgnode(node, port, env=env)
    try:
        photo = read("jpeg-progressive.jpg")
        body = error_of(s.submit(photo, "thumbnail(40)|jxl", wait=30), 422,
                        "job failed")
        assert "cannot save JPEG XL" in body["detail"], body
        assert run(s, photo, "thumbnail(40)|png").content[:4] == b"\x89PNG"
    finally:
        s.stop()
