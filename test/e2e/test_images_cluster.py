"""Images and their variants on amqp + rados (a real RabbitMQ and Ceph),
with two nodes sharing the queue and the pool: a variant asked of one node
is made by any node's worker from the original in Ceph; identical requests
at once, half to each node, make one job; a DELETE leaves no object of the
image in the pool (checked with the rados CLI)."""
import concurrent.futures
import subprocess
import urllib.parse

import pytest
import requests

from nodelib import image_size, small_jpeg, start


@pytest.fixture(scope="module")
def pair(tmp_path_factory, broker, ceph):
    path = tmp_path_factory.mktemp("images_cluster")
    extra = (f"[transport]\nplugin = amqp\nurl = {broker[1]}\n"
             f"queue = {path.name}.jobs\ndead_queue = {path.name}.dead\n"
             "heartbeat = 2s\nconnect_timeout = 2s\n"
             f"[storage]\nplugin = rados\nconf = {ceph[1]}\n"
             "osd_op_timeout = 5s\nmon_op_timeout = 5s\n")
    nodes = []
    for name in ("a", "b"):
        (path / name).mkdir()
        nodes.append(start(path / name, workers=1, extra=extra))
    yield nodes, ceph[1]
    for s in nodes:
        s.stop()


def objects(conf):
    """The names of every object in the pool."""
    out = subprocess.run(["timeout", "60", "rados", "-c", conf, "-p",
                          "imgnode", "ls"], check=True, capture_output=True,
                         text=True).stdout
    return out.split()


def upload(s, data):
    r = requests.post(s.url + "/v1/images", data=data, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def variant(s, image, what):
    return requests.get(f"{s.url}/v1/images/{image}/"
                        + urllib.parse.quote(what, safe=""), timeout=60)


def test_variant_asked_of_another_node(pair):
    (a, b), conf = pair
    image = upload(a, small_jpeg())
    r = variant(b, image, "thumbnail(24)|png")
    assert r.status_code == 200, r.text
    assert image_size(r.content) == ("png", 24, 18)
    job = r.headers["X-Imgnode-Job"]
    assert a.record(job)["image"] == image
    names = objects(conf)
    for want in (f"img/{image}", f"imgs/{image}", f"imgv/{image}/{job}",
                 f"jobs/{job}"):
        assert want in names
    assert any(n.startswith(f"out/{job}") for n in names)


def test_two_nodes_make_one_job(pair):
    (a, b), _ = pair
    image = upload(b, small_jpeg()[:-2] + b"\x01\xff\xd9")
    before = sum(s.metric("imgnode_jobs_accepted_total") for s in (a, b))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(
            lambda s: variant(s, image, "thumbnail(60)|sharpen|webp"),
            [a, b] * 4))
    assert [r.status_code for r in got] == [200] * 8, [r.text for r in got]
    assert len({r.content for r in got}) == 1
    assert len({r.headers["X-Imgnode-Job"] for r in got}) == 1
    after = sum(s.metric("imgnode_jobs_accepted_total") for s in (a, b))
    assert after == before + 1


def test_delete_leaves_nothing_in_ceph(pair):
    (a, b), conf = pair
    image = upload(a, small_jpeg()[:-2] + b"\x02\xff\xd9")
    jobs = []
    for what in ("thumbnail(30)|png", "thumb", "tiny"):
        r = variant(a, image, what)
        assert r.status_code == 200, r.text
        jobs.append(r.headers["X-Imgnode-Job"])
    assert len([n for n in objects(conf) if image in n]) == 5
    r = requests.delete(f"{b.url}/v1/images/{image}", timeout=30)
    assert r.status_code == 204, r.text
    left = [n for n in objects(conf) if image in n
            or any(j in n for j in jobs)]
    assert not left
    assert a.get(f"/v1/images/{image}").status_code == 404
