"""Renditions: one upload, several outputs, one decode
(POST /v1/jobs?renditions=P1;P2;... or ?presets=A;B;...). The record lists
every output; each is fetched at /v1/jobs/ID/result/K; the worker decodes
the original once (the record's "decodes" and imgnode_decodes_total count
it); each output has its own content key, shared with single jobs."""
import pytest

from nodelib import (corpus, error_of, image_size, setup_extra, small_jpeg,
                     start)

FOUR = ("thumbnail(300)|webp(q=60);thumbnail(120,crop=centre)|jpeg;"
        "thumbnail(64)|png;thumbnail(32)|webp")


@pytest.fixture(scope="module")
def rnode(tmp_path_factory):
    """A spool+fs node with one worker (its decodes are counted alone),
    at most 4 renditions a job, and results up to 300 KB (one output
    of the failure test is bigger)."""
    s = start(tmp_path_factory.mktemp("renditions"), workers=1,
              extra="[limits]\nmax_renditions = 4\nmax_output = 300K\n")
    yield s
    s.stop()


def run(node, data, wait=30, **params):
    """Submits and waits: the 200 record of a done renditions job."""
    r = node.submit(data, wait=wait, **params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    rec = r.json()
    assert rec["status"] == "done", rec
    return rec


def outputs(node, rec):
    """Every output fetched on its own: [(format, width, height)]."""
    got = []
    for k, res in enumerate(rec["results"]):
        r = node.get(f"/v1/jobs/{rec['id']}/result/{k}")
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == res["mime"]
        assert len(r.content) == res["bytes"]
        got.append(image_size(r.content))
        assert got[-1] == (res["format"], res["width"], res["height"])
    return got


def test_four_outputs_from_one_decode(rnode):
    before = rnode.metric("imgnode_decodes_total")
    rec = run(rnode, small_jpeg(), renditions=FOUR)  # 600x450
    assert rec["decodes"] == 1
    assert rnode.metric("imgnode_decodes_total") - before == 1
    assert [r["pipeline"] for r in rec["results"]] == rec["renditions"]
    assert len({r["key"] for r in rec["results"]}) == 4
    assert outputs(rnode, rec) == [("webp", 300, 225), ("jpeg", 120, 120),
                                   ("png", 64, 48), ("webp", 32, 24)]
    # .../result alone is the first; past the last is a 404
    first = rnode.get(f"/v1/jobs/{rec['id']}/result")
    assert first.status_code == 200
    assert image_size(first.content) == ("webp", 300, 225)
    error_of(rnode.get(f"/v1/jobs/{rec['id']}/result/4"), 404,
             "unknown result")


def test_outputs_shared_with_single_jobs(rnode):
    data = corpus("formats")["jpeg-exif-orient6.jpg"]
    with open(data, "rb") as f:
        data = f.read()
    rec = run(rnode, data, renditions="thumbnail(90)|png;grayscale|jpeg")
    # turned upright from EXIF 6, as a single job does
    assert outputs(rnode, rec)[0][0] == "png"
    # the same renditions again decode nothing, and a single job with
    # one of the pipelines is a cache hit on the rendition's output
    before = rnode.metric("imgnode_decodes_total")
    again = run(rnode, data, renditions="thumbnail(90)|png;grayscale|jpeg")
    assert again["decodes"] == 0
    assert rnode.metric("imgnode_decodes_total") == before
    assert [r["key"] for r in again["results"]] == \
        [r["key"] for r in rec["results"]]
    hit = rnode.submit(data, pipeline="thumbnail(90)|png")
    assert hit.status_code == 202
    assert hit.json()["status"] == "done"  # from the cache
    assert rnode.metric("imgnode_decodes_total") == before


def test_whole_decode_when_a_pipeline_does_not_load(rnode):
    before = rnode.metric("imgnode_decodes_total")
    rec = run(rnode, small_jpeg(),
              renditions="sharpen|png;thumbnail(50)|jpeg;grayscale")
    assert rec["decodes"] == 1
    assert rnode.metric("imgnode_decodes_total") - before == 1
    assert outputs(rnode, rec) == [("png", 600, 450), ("jpeg", 50, 38),
                                   ("jpeg", 600, 450)]


def test_presets(rnode):
    rec = run(rnode, small_jpeg(), presets="thumb;tiny")
    assert len(rec["renditions"]) == 2
    assert rec["pipeline"] == ";".join(rec["renditions"])
    assert [s[1] for s in outputs(rnode, rec)] == [64, 16]


def test_one_output_failing_fails_the_job(rnode):
    # the second output (a 2400-wide q=100 JPEG) is over max_output
    r = rnode.submit(small_jpeg(), wait=30,
                     renditions="thumbnail(40)|png;"
                                "thumbnail(2400,size=up)|jpeg(q=100)")
    error_of(r, 422, "job failed")
    assert "rendition 2 thumbnail(" in r.json()["detail"]
    assert "max_output" in r.json()["detail"]


@pytest.mark.parametrize("params, detail", [
    ({"renditions": "thumbnail(40)|png;;png"}, "rendition 2 is empty"),
    ({"renditions": "png;png;png;png;png"}, "max_renditions"),
    ({"renditions": "png;thumbnail(0)|png"}, "rendition 2: column"),
    ({"presets": "thumb;nope"}, "rendition 2: no preset \"nope\""),
    ({"renditions": "png", "pipeline": "png"}, "give one of"),
])
def test_bad_renditions(rnode, params, detail):
    r = rnode.submit(small_jpeg(), **params)
    error_of(r, 400, "bad pipeline")
    assert detail in r.json()["detail"]


def test_amqp_rados(request, tmp_path):
    """The same on RabbitMQ and Ceph: one decode, each output fetched."""
    extra = setup_extra(request, tmp_path, "amqp+rados")
    s = start(tmp_path, workers=1, extra=extra)
    try:
        rec = run(s, small_jpeg(), renditions="thumbnail(200)|webp;"
                                              "thumbnail(100)|jpeg;"
                                              "thumbnail(50)|png")
        assert rec["decodes"] == 1
        assert s.metric("imgnode_decodes_total") == 1
        assert outputs(s, rec) == [("webp", 200, 150), ("jpeg", 100, 75),
                                   ("png", 50, 38)]
    finally:
        s.stop()
