"""The geometry steps end to end (issue 17): resize with sharp's fit modes,
extend, pad, trim and flatten, through a node (the HTTP API, its errors at
submit) and through `imgnodectl process` (the workers' code, for the
planner: resize as the first step decodes the upload itself, shrinking a
JPEG while decoding, and must give what a full decode gives)."""
import io
import subprocess

import pytest

from nodelib import IMGNODECTL, PLUGINS, corpus, error_of, image_size, start


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("geometry"), workers=1)
    yield s
    s.stop()


def process(tmp_path, path, pipeline):
    """Runs pipeline on path with imgnodectl process; the result's bytes."""
    ini = tmp_path / "imgnode.ini"
    ini.write_text(f"[node]\nplugin_dir = {PLUGINS}\n")
    out = tmp_path / "out"
    p = subprocess.run([str(IMGNODECTL), "-c", str(ini), "process",
                        str(path), pipeline, str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (pipeline, p.stderr)
    return out.read_bytes()


def pixels(data):
    from PIL import Image  # only the pixel comparisons need Pillow
    return Image.open(io.BytesIO(data))


def mean_abs_diff(a, b):
    assert a.size == b.size and a.mode == b.mode
    pa, pb = a.tobytes(), b.tobytes()
    return sum(abs(x - y) for x, y in zip(pa, pb)) / len(pa)


@pytest.mark.parametrize("photo,fit", [
    ("photos/kleiber.jpg", "cover"),
    ("photos/kleiber.jpg", "inside"),
    ("photos/kleiber.jpg", "fill"),
    ("formats/jpeg-exif-orient6.jpg", "cover"),
    ("formats/webp-lossy.webp", "cover"),
    ("formats/webp-lossy-alpha.webp", "contain"),
])
def test_first_step_shrink_on_load_matches_a_full_decode(tmp_path, photo,
                                                          fit):
    """resize first: decoded by the step, shrunk while decoding; after
    another step: applied to a full decode. Same size, near-identical
    pixels (the DCT shrink differs from Lanczos in the last bits)."""
    cat, name = photo.split("/")
    path = corpus(cat)[name]
    box = "80,60" if "webp" in name else "200,150"
    first = process(tmp_path, path, f"resize({box},fit={fit})|png")
    later = process(tmp_path, path, f"autorotate|resize({box},fit={fit})|png")
    assert image_size(first) == image_size(later)
    if fit != "inside":
        assert image_size(first)[1:] == tuple(map(int, box.split(",")))
    diff = mean_abs_diff(pixels(first), pixels(later))
    assert diff < 2.5, diff


def test_fit_modes_through_a_node(node, images):
    rgba = images("png-rgba-3840x2160.png")
    for pipeline, size in [
            ("resize(320,240,fit=contain,background=ffffff80)|png",
             (320, 240)),
            ("resize(320,240,fit=inside)|png", (320, 180)),
            ("resize(320,240,fit=outside)|png", (427, 240)),
            ("resize(160,gravity=fp,fx=0.2,fy=0.8,height=160,dpr=2)|png",
             (320, 320)),
            ("resize(scale=0.05)|png", (192, 108)),
    ]:
        r = node.submit(rgba, pipeline=pipeline, wait=30)
        assert r.status_code == 200, (pipeline, r.text)
        assert image_size(r.content)[1:] == size, pipeline
    # contain's background has alpha: the letterbox is half transparent
    r = node.submit(rgba, pipeline="resize(320,320,fit=contain,"
                    "background=ff000080)|png", wait=30)
    im = pixels(r.content)
    assert im.mode == "RGBA" and im.getpixel((2, 2)) == (255, 0, 0, 128)


def test_canvas_steps_through_a_node(node, images):
    jpeg = images("jpeg-exif-orient6.jpg")  # 640x428, turned: 428x640
    r = node.submit(jpeg, pipeline="resize(100)|extend(10,extend=mirror)|"
                    "pad(200,200,gravity=north,background=white)|trim|"
                    "flatten|jpeg", wait=30)
    assert r.status_code == 200, r.text
    # 100x150 + 20 each way = 120x170 on 200x200 white, trimmed back
    assert image_size(r.content)[1:] == (120, 170)
    rgba = images("pngsuite-basn6a08.png")
    r = node.submit(rgba, pipeline='flatten(background="#00ff00")|png',
                    wait=30)
    im = pixels(r.content)
    assert im.mode == "RGB" and im.size == (32, 32)
    assert im.getpixel((0, 0))[1] > 0  # the corner is transparent


# (pipeline, the answer's error, words of its detail): argument errors are
# refused at submit (the parser, or the step's predict); whether an image
# fits pad's canvas is known when the step runs: the job fails with it
@pytest.mark.parametrize("pipeline,error,words", [
    ("resize(0.5)", "image rejected", "width 0.5 is not a whole number of "
     "pixels; to scale by a factor, write resize(scale=0.5)"),
    ("resize(100,100,fit=square)", "bad pipeline",
     '"square" is not one of cover, contain, fill, inside, outside'),
    ("resize(100,100,gravity=up)", "bad pipeline", "northeast"),
    ("resize(100,100,fit=contain,background=orange)", "image rejected",
     'background "orange" is not a colour'),
    ("pad(10,10,background=#fff)", "bad pipeline",
     "expected a value, found '#'"),
    ("extend(10,extend=wrap)", "bad pipeline",
     '"wrap" is not one of background, copy, mirror, repeat'),
    ("trim(threshold=300)", "bad pipeline", "out of range (0 to 255)"),
    ("resize(100,dpr=5)", "bad pipeline", "out of range (1 to 4)"),
    ("pad(10,10)", "job failed",
     "pad: the 32x32 image does not fit on a 10x10 canvas"),
])
def test_argument_errors_name_the_argument(node, images, pipeline, error,
                                           words):
    r = node.submit(images("pngsuite-basn6a08.png"), pipeline=pipeline,
                    wait=30)
    status = 400 if error == "bad pipeline" else 422
    detail = error_of(r, status, error)["detail"]
    assert words in detail, detail
