"""HEIC uploads (HEIF with HEVC: what phones save photos as), decoded
through Debian's libheif and libde265. No Debian package ships such a
photo, so build/test/mkheic makes one from a corpus photo with this
libvips; on one that cannot write HEVC (make VIPS=bundled: sharp's, AV1
only, which cannot read HEIC either; README) there is no sample to send."""
import io
import subprocess

import pytest

from nodelib import BUILD, corpus, image_size, start


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("heic"), workers=1)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def heic(tmp_path_factory):
    """(the HEIC's bytes, the JPEG photo's it was made from)."""
    photo = corpus("photos")["fossa.jpg"]
    out = tmp_path_factory.mktemp("heic-sample") / "fossa.heic"
    p = subprocess.run([str(BUILD / "test" / "mkheic"), photo, str(out)],
                       capture_output=True, text=True, timeout=120)
    if p.returncode == 3:
        pytest.skip(f"this libvips writes no HEVC: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr
    data = out.read_bytes()
    assert data[4:12] == b"ftypheic", data[:16]
    with open(photo, "rb") as f:
        return data, f.read()


def test_a_heic_photo_is_decoded(node, heic):
    from PIL import Image  # only the pixel comparison needs Pillow
    data, jpeg = heic
    r = node.submit(data, pipeline="thumbnail(320)|jpeg(q=90)", wait=60)
    assert r.status_code == 200, r.text
    got = image_size(r.content)
    ref = node.submit(jpeg, pipeline="thumbnail(320)|jpeg(q=90)", wait=60)
    assert ref.status_code == 200, ref.text
    assert got == image_size(ref.content), (got, image_size(ref.content))
    # the same picture: HEVC at Q70 and two JPEG encodes apart
    a = Image.open(io.BytesIO(r.content)).convert("RGB").tobytes()
    b = Image.open(io.BytesIO(ref.content)).convert("RGB").tobytes()
    diff = sum(abs(x - y) for x, y in zip(a, b)) / len(a)
    assert diff < 4, diff


def test_a_heic_photo_to_webp_and_its_record(node, heic):
    data, _ = heic
    r = node.submit(data, pipeline="thumbnail(200)|webp", wait=60)
    assert r.status_code == 200, r.text
    assert image_size(r.content)[0] == "webp"
    # the upload is known for what it is: HEIF, at the photo's size
    rec = node.get(f"/v1/jobs/{r.headers['X-Imgnode-Job']}").json()
    assert rec["status"] == "done", rec
    assert rec["input"]["format"] == "heif", rec
    assert (rec["input"]["width"], rec["input"]["height"]) == (4096, 2304), \
        rec
