"""Cost bombs (issue "Hostile traffic"): tiny images whose pipelines would
make huge images on the way (an enlargement then a shrink, an attention
crop, an EXIF turn, a long watermark, an uncompressed PNG), refused from
the header with a 422 naming the step, at the ingress and again by the
worker (jobs queued under looser limits), in bounded memory; a result
over max_output refused instead of
stored; and a job that overruns job_timeout failed after at most one retry
with the reason in its record, on spool and on amqp."""
import json
import os
import re
import subprocess
import time

import pytest
from PIL import Image

from nodelib import (BOMBS, IMGNODECTL, MB, PLUGINS, bomb_input, error_of,
                     noise_png, start, turned_jpeg, vm_hwm)


def worker_pids(server):
    r = subprocess.run([str(IMGNODECTL), "-s",
                        str(server.node.runtime / "control.sock"), "--json",
                        "status"], capture_output=True, text=True,
                       timeout=30, check=True)
    pids = {}

    def walk(n):
        for c in n.get("children", []):
            if c["id"].startswith("worker.") and c.get("pid"):
                pids[c["id"]] = c["pid"]
            walk(c)
    walk(json.loads(r.stdout)["tree"])
    assert pids, r.stdout
    return pids


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("cost"), workers=1)
    yield s
    s.stop()


def test_bombs_are_refused_at_submit_naming_the_step(node):
    # a real job first: the worker has decoded and encoded something
    r = node.submit(noise_png(64), pipeline="thumbnail(32)|png", wait=20)
    assert r.status_code == 200, r.text
    accepted = node.metric("imgnode_jobs_accepted_total")
    for kind, pipeline, step, why in BOMBS:
        data = bomb_input(kind)
        assert len(data) < 1000
        r = node.submit(data, pipeline=pipeline, wait=20, timeout=20)
        detail = error_of(r, 422, "image rejected")["detail"]
        assert detail.startswith(step), (pipeline, detail)
        assert why in detail, (pipeline, detail)
    # nothing was queued, so no worker spent anything on them
    assert node.metric("imgnode_jobs_accepted_total") == accepted
    for wid, pid in worker_pids(node).items():
        assert vm_hwm(pid) < 250 * MB, (wid, vm_hwm(pid))


def run_measured(ini, path, pipeline, out):
    """imgnodectl process (the workers' code): (exit code, stderr, peak RSS
    in bytes)."""
    p = subprocess.Popen([str(IMGNODECTL), "-c", str(ini), "process",
                          str(path), pipeline, str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    err = p.stderr.read()
    p.stderr.close()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, usage.ru_maxrss * 1024


def test_workers_code_refuses_bombs_before_decoding(tmp_path):
    ini = tmp_path / "imgnode.ini"
    ini.write_text(f"[node]\nplugin_dir = {PLUGINS}\n")
    for i, (kind, pipeline, step, why) in enumerate(BOMBS):
        path = tmp_path / f"bomb{i}.{kind}"
        path.write_bytes(bomb_input(kind))
        code, err, rss = run_measured(ini, path, pipeline, tmp_path / "out")
        assert code == 1, (pipeline, code, err)
        assert f"{path}: {step}" in err and why in err, err
        # libvips initialised, plugins loaded, nothing decoded: 45 MB on
        # a quiet machine, up to 180 MB seen on a busy one; a decode of
        # these bombs takes 800 MB to 1.8 GB
        assert rss < 400 * MB, (pipeline, rss)
        assert not (tmp_path / "out").exists()


def test_a_step_within_the_limits_still_runs(tmp_path):
    """The same shapes under the limits are not refused: the prediction
    is a bound, not a ban on enlarging."""
    ini = tmp_path / "imgnode.ini"
    ini.write_text(f"[node]\nplugin_dir = {PLUGINS}\n")
    path = tmp_path / "in.jpeg"
    path.write_bytes(turned_jpeg())
    code, err, _ = run_measured(ini, path,
                                "thumbnail(300,crop=attention,size=up)|"
                                "watermark(text=hi)|png(compression=0)",
                                tmp_path / "out.png")
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").size == (300, 300)


def test_output_over_max_output_is_refused_not_stored(own):
    s = own(extra="[limits]\nmax_output = 64K\n")
    data = noise_png(256)  # incompressible: about 197 KB as a PNG
    assert 150_000 < len(data) < 1024 * 1024
    # uncompressed: known before decoding
    r = s.submit(data, pipeline="png(compression=0)", wait=20)
    detail = error_of(r, 422, "image rejected")["detail"]
    assert detail.startswith("step 1 png(colours=256,compression=0,"
                             "palette=false): output of at "
                             "least 0.1877 MiB is over max_output "
                             "(0.0625 MiB)"), detail
    # compressed: known once encoded, and then not stored
    r = s.submit(data, pipeline="png(compression=9)", wait=20)
    body = error_of(r, 422, "job failed")
    assert re.match(r"png: the encoded result is 0\.1\d+ MiB, over "
                    r"max_output \(0\.0625 MiB\)", body["detail"]), body
    rec = s.record(r.headers["X-Imgnode-Job"])
    assert rec["status"] == "failed" and rec["output"] is None
    out = s.node.state / "store" / "out"
    stored = list(out.rglob("*")) if out.exists() else []
    assert not [p for p in stored if p.is_file()], stored
    # a small result still passes, and is stored where the other was not
    r = s.submit(data, pipeline="thumbnail(64)|png", wait=20)
    assert r.status_code == 200, r.text
    assert [p for p in out.rglob("*") if p.is_file()]


# Slow but within every size limit: 25 Mpx blurred with sigma 50.
SLOW = "thumbnail(5000,size=up)|blur(50)|blur(50)|thumbnail(100)|png"


@pytest.mark.parametrize("transport", ["spool", "amqp"])
def test_a_deadline_overrun_fails_after_at_most_one_retry(own, request,
                                                           transport):
    extra = ""
    if transport == "amqp":
        url = request.getfixturevalue("shared_broker")[1]
        q = f"cost{os.getpid()}{int(time.monotonic() * 1000)}"
        extra = (f"[transport]\nplugin = amqp\nurl = {url}\n"
                 f"queue = {q}.jobs\ndead_queue = {q}.dead\n"
                 "heartbeat = 2s\nconnect_timeout = 2s\n")
    s = own(workers=1, extra=extra + "[workers]\njob_timeout = 1s\n")
    r = s.submit(noise_png(), pipeline=SLOW)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    rec = s.wait_status(job, ["failed", "done"], timeout=120)
    assert rec["status"] == "failed", rec
    assert rec["error"].startswith("killed after job_timeout (1 s) on 2 "
                                   "attempts"), rec
    assert rec["attempts"] <= 2 and rec["overruns"] == 2, rec
    # the delivery after that finds it failed and settles it: a job
    # behind it (one worker) is done, with no third kill on the way
    r = s.submit(noise_png(32), pipeline="thumbnail(16)|png", wait=60)
    assert r.status_code == 200, r.text
    kills = [line for line in s.lines
             if "killing child id=worker" in line]
    assert len(kills) == 2, "".join(kills)
    assert s.record(job)["status"] == "failed"


def test_a_dead_lettered_overrun_says_so(own):
    """With a delivery limit of 1 the transport gives up first; the reaper's
    reason then names the deadline kill the watchdog recorded."""
    s = own(workers=1, extra="[transport]\ndelivery_limit = 1\n"
            "[workers]\njob_timeout = 1s\n")
    r = s.submit(noise_png(), pipeline=SLOW)
    assert r.status_code == 202, r.text
    rec = s.wait_status(r.json()["id"], ["failed", "done"], timeout=120)
    assert rec["status"] == "failed", rec
    assert rec["error"] == ("gave up after 1 deliveries: delivery limit (1) "
                            "exceeded (killed after job_timeout 1 time)"), rec


def test_a_queued_bomb_is_refused_by_the_worker_before_decoding(tmp_path):
    """Defence in depth: bombs a node with loose limits (and no workers)
    accepted are then run by a worker under the shipped limits, which
    refuses each before decoding, naming the step."""
    loose = ("[limits]\nmax_pixels = 1000000000000\n"
             "max_dimension = 10000000\nmax_output = 1024G\n")
    s = start(tmp_path, workers=0, extra=loose)
    try:
        jobs = {}
        for kind, pipeline, step, why in BOMBS:
            r = s.submit(bomb_input(kind), pipeline=pipeline)
            assert r.status_code == 202, r.text
            jobs[r.json()["id"]] = (step, why)
    finally:
        s.stop()
    text = s.node.ini.read_text()
    s.node.write(text.replace("count = 0", "count = 1").replace(loose, ""))
    s = type(s)(s.node, s.port)
    try:
        for job, (step, why) in jobs.items():
            rec = s.wait_status(job, ["failed", "done"], timeout=60)
            assert rec["status"] == "failed", rec
            assert rec["error"].startswith(step) and why in rec["error"], rec
        for wid, pid in worker_pids(s).items():
            assert vm_hwm(pid) < 250 * MB, (wid, vm_hwm(pid))
    finally:
        s.stop()
