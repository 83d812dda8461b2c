"""Hostile traffic, privacy and leases: what an upload says about the person
who took it (EXIF with GPS, camera, XMP, IPTC, comments) never reaches an
output unless the operator opts in ([limits] keep_metadata = yes), outputs
are turned upright from the EXIF orientation and converted to sRGB without
a profile (icc(keep) keeps it: test_imaging_tone.py); and a job held by a
worker longer than the spool lease is not run a second time."""
import io
import shutil
import struct
import time

import pytest
from PIL import Image, ImageChops, ImageStat

from nodelib import (BUILD, GPS, GPS_IFD, IPTC, MAKE, PLUGINS, SECRETS, XMP,
                     Imgnode, Node, free_port, hostile_jpeg, start)

ENCODERS = ("jpeg", "png", "webp", "avif", "gif", "tiff")
# What libvips 8.14 writes of them when the operator keeps metadata (a GIF
# carries none, a TIFF only XMP; PNG compresses its XMP).
KEPT = {"jpeg": {MAKE, GPS, XMP, IPTC}, "png": {MAKE, GPS},
        "webp": {MAKE, GPS, XMP}, "avif": {MAKE, GPS, XMP},
        "tiff": {XMP}, "gif": set()}


def jpeg_segments(data):
    """(marker, payload head) of each segment before the first scan."""
    out, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((data[i + 1], data[i + 4:i + 4 + 14]))
        i += 2 + n
    return out


def chunks(data, start, fmt, pad):
    """Chunk types of a PNG (">I4s", no pad) or WebP RIFF ("<4sI", pad)."""
    out, i = [], start
    while i + 8 <= len(data):
        if fmt == ">I4s":
            n, kind = struct.unpack(fmt, data[i:i + 8])
            i += 12 + n
        else:
            kind, n = struct.unpack(fmt, data[i:i + 8])
            i += 8 + n + (n & 1 if pad else 0)
        out.append(kind)
    return out


def metadata_of(fmt, data):
    """The metadata containers an output carries, by format, and whether it
    has an ICC profile: ({names}, icc)."""
    if fmt == "jpeg":
        segs = jpeg_segments(data)
        names = {{0xE1: "app1", 0xED: "iptc", 0xFE: "comment"}[m]
                 for m, _ in segs if m in (0xE1, 0xED, 0xFE)}
        return names, any(m == 0xE2 and p.startswith(b"ICC_PROFILE")
                          for m, p in segs)
    if fmt == "png":
        kinds = chunks(data, 8, ">I4s", False)
        names = {k.decode() for k in kinds
                 if k in (b"eXIf", b"tEXt", b"zTXt", b"iTXt")}
        return names, b"iCCP" in kinds
    if fmt == "webp":
        kinds = chunks(data, 12, "<4sI", True)
        names = {k.decode() for k in kinds if k in (b"EXIF", b"XMP ")}
        return names, b"ICCP" in kinds
    if fmt == "tiff":
        tags = Image.open(io.BytesIO(data)).getexif()
        names = {str(t) for t in (271, 272, 700, 33723, 34377, 34665, 34853)
                 if t in tags}
        return names, 34675 in tags
    if fmt == "avif":
        # HEIF items: "Exif", and XMP as a "mime" item; a profile is a
        # "colr" box of type "prof" or "rICC"
        names = {n for n in ("Exif", "mime") if n.encode() in data}
        return names, b"colrprof" in data or b"colrrICC" in data
    assert fmt == "gif"
    # extensions: comment (0xFE); application blocks other than the loop
    names = {"comment"} if b"\x21\xfe" in data[:800] else set()
    names |= {"xmp"} if b"XMP DataXMP" in data else set()
    return names, b"ICCRGBG1012" in data


@pytest.fixture(scope="module")
def upload(images):  # noqa: F811 (fixture)
    return hostile_jpeg(images)


@pytest.fixture(scope="module")
def strips(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("strips"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keeps(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("keeps"),
              extra="[limits]\nkeep_metadata = yes\n")
    yield s
    s.stop()


def run(node, data, pipeline):
    r = node.submit(data, pipeline=pipeline, wait=20)
    assert r.status_code == 200, r.text
    return r.content, node.record(r.headers["X-Imgnode-Job"])["output"]


@pytest.mark.parametrize("enc", ENCODERS)
def test_metadata_is_stripped_by_default(strips, upload, images, enc):
    data, _ = upload
    out, rec = run(strips, data, f"sharpen|{enc}")
    for secret in SECRETS:
        assert secret not in out, (enc, secret)
    names, has_icc = metadata_of(enc, out)
    assert names == set(), (enc, names)
    # colours are made sRGB, and no profile is written
    assert not has_icc, enc
    # upright: the photo is 640x428 with orientation 6
    assert (rec["width"], rec["height"]) == (428, 640), rec
    if enc == "avif":
        return
    im = Image.open(io.BytesIO(out))
    assert im.size == (428, 640)
    exif = im.getexif()
    assert exif.get(0x0112, 1) == 1 and not exif.get_ifd(GPS_IFD)
    ref = Image.open(io.BytesIO(images("jpeg-exif-orient6.ref.png")))
    ref = ref.convert("RGB")
    diff = ImageStat.Stat(ImageChops.difference(im.convert("RGB"), ref))
    turned = ImageStat.Stat(ImageChops.difference(
        im.convert("RGB").transpose(Image.ROTATE_180), ref))
    assert max(diff.mean) < 10 < min(turned.mean), (diff.mean, turned.mean)


def test_default_encoder_and_thumbnail_strip_too(strips, upload):
    data, _ = upload
    # no encoder in the pipeline: the input's format (JPEG)
    out, rec = run(strips, data, "grayscale")
    assert rec["format"] == "jpeg"
    assert not any(s in out for s in SECRETS)
    assert metadata_of("jpeg", out)[0] == set()
    # thumbnail decodes (and turns) the upload itself
    out, rec = run(strips, data, "thumbnail(100)|webp")
    assert rec["width"] == 100 and rec["height"] in (149, 150), rec
    assert not any(s in out for s in SECRETS)
    assert metadata_of("webp", out) == (set(), False)


@pytest.mark.parametrize("enc", ENCODERS)
def test_keep_metadata_opts_in(keeps, upload, enc):
    data, _ = upload
    out, rec = run(keeps, data, f"sharpen|{enc}")
    assert {s for s in SECRETS if s in out} == KEPT[enc], enc
    if enc == "jpeg":
        # as before: the tag is kept and the pixels are not turned
        assert (rec["width"], rec["height"]) == (640, 428)
        im = Image.open(io.BytesIO(out))
        assert im.getexif()[0x0112] == 6
        assert im.getexif().get_ifd(GPS_IFD)[1] == "N"


def test_strip_filter_still_drops_everything(keeps, upload):
    data, _ = upload
    out, rec = run(keeps, data, "strip|jpeg")
    assert not any(s in out for s in SECRETS)
    assert metadata_of("jpeg", out) == (set(), False)
    assert (rec["width"], rec["height"]) == (428, 640)


# ---- spool leases ----

def shared_node(base, name, plugins, shared, seconds):
    """A node on the state dir shared (its queue and store), one worker,
    its lease and job deadline both seconds long."""
    d = base / name
    d.mkdir()
    node = Node(d)
    port = free_port()
    node.write(f"[node]\nstate_dir = {shared}\nruntime_dir = {d}/run\n"
               f"plugin_dir = {plugins}\n"
               f"[supervisor]\ncontrol_socket = {d}/run/control.sock\n"
               f"[ingress]\nport = {port}\n"
               f"[workers]\ncount = 1\njob_timeout = {seconds}s\n"
               f"[transport]\nlease = {seconds}s\n")
    return Imgnode(node, port)


def test_a_job_longer_than_a_lease_runs_once(tmp_path, images):  # noqa: F811
    """Node a's worker holds a job for 20 s. Node b shares the queue with a
    2 s lease (and deadline, as the check requires): its worker judges a's
    claim by its own lease. a's worker renews the lease while the job runs,
    so b never takes the job over, and it runs once."""
    tmp_path.chmod(0o755)
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugins)
    shutil.copy(BUILD / "test" / "fixtures" / "slow.so", plugins / "slow.so")
    shared = tmp_path / "shared"
    a = shared_node(tmp_path, "a", plugins, shared, 30)
    b = None
    try:
        r = a.submit(images("jpeg-icc.jpg"), pipeline="slow(10)|slow(10)|png")
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        a.wait_status(job, ("running",))
        b = shared_node(tmp_path, "b", plugins, shared, 2)
        b_ready = time.monotonic()
        rec = a.wait_status(job, ("done", "failed"), timeout=60)
        # the premise: b's worker watched a's claim for longer than its
        # lease and one scan (a second) before the job ended (20 s leave
        # b room to start on a busy machine)
        assert time.monotonic() - b_ready > 3, "b started too late"
        assert rec["status"] == "done", rec
        assert rec["attempts"] == 1, rec
        assert rec["worker"] == "worker.1"
        logs = a.log() + b.log()
        assert "lease expired" not in logs and "lease lost" not in logs, \
            logs
        assert a.metric("imgnode_redeliveries_total") == 0
        assert b.metric("imgnode_redeliveries_total") == 0
    finally:
        if b:
            b.stop()
        a.stop()


def test_a_lease_shorter_than_the_job_deadline_is_refused(node):
    node.write(node.base() + "[workers]\njob_timeout = 90s\n"
               "[transport]\nlease = 30s\n")
    for args in (["-t"], []):
        r = node.run(*args)
        assert r.returncode == 100, (args, r.stderr)
        assert (f"imgnode: {node.ini}:8: [transport] lease: 30s is shorter "
                f"than [workers] job_timeout (90s, {node.ini}:6): ") \
            in r.stderr, r.stderr
    # a drop-in raising the deadline past the default lease (2m)
    node.write(node.base())
    node.write("[workers]\njob_timeout = 5m\n", "slow.ini")
    r = node.run("-t")
    assert r.returncode == 100, r.stderr
    assert (f"{node.confd}/slow.ini:2: [workers] job_timeout: 5m is longer "
            f"than [transport] lease (2m, the spool plugin's default)") \
        in r.stderr, r.stderr
    node.write("[workers]\njob_timeout = 5m\n[transport]\nlease = 5m\n",
               "slow.ini")
    assert node.run("-t").returncode == 0
