"""Hot-swapping filter plugins under load with zero failed or lost jobs:
replacing watermark.so, adding a filter with its config section, refusing
broken plugins while the old generation keeps serving, and rapid reloads."""
import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from nodelib import BUILD, FIXTURES, PLUGINS, Imgnode, config, corpus_paths

V2 = BUILD / "test" / "plugins-v2" / "watermark.so"


def install(src, plugins, name):
    """As dpkg does: write beside, then rename into place."""
    tmp = plugins / f".{name}.new"
    shutil.copy(src, tmp)
    os.chmod(tmp, 0o644)
    os.rename(tmp, plugins / name)


def post(port, pipeline, body, wait=30, tries=20):
    """POST a job; retries only when no response came (connection refused
    or reset while an ingress is replaced), as nginx would."""
    path = f"/v1/jobs?pipeline={pipeline}&wait={wait}"
    for attempt in range(tries):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("POST", path, body=body)
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        except (ConnectionError, http.client.RemoteDisconnected):
            time.sleep(0.05)
    raise AssertionError(f"no response after {tries} tries")


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")


@pytest.fixture
def swap_node(node, tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugins)
    os.unlink(plugins / "sepia.so")
    port = config(node, plugins=plugins)
    r = Imgnode(node)
    r.wait_line(r"node: ready")
    yield r, port, plugins
    r.close()


# jobs each client uploads before the swap, and again after the roll
BEFORE, AFTER = 5, 5


def test_swap_watermark_under_load(swap_node):
    """Four clients upload without pause while watermark.so is replaced
    and the workers roll. Counted over a fixed number of jobs, never over
    a time window: each client uploads BEFORE jobs, then goes on until the
    roll is over (however many that is), then uploads AFTER more. Every
    one is answered 200; those after the roll are made by the new
    plugin."""
    r, port, plugins = swap_node
    body = open(corpus_paths("photos")[0], "rb").read()
    mark = "watermark(text=imgnode,opacity=1)|jpeg"
    results = []          # (phase, status, job id)
    counter = iter(range(100000))
    lock = threading.Lock()
    clients = 4
    ready = threading.Barrier(clients + 1)
    rolled = threading.Event()

    def one(phase):
        with lock:
            n = next(counter)
        # every job distinct, so none is served from the result cache
        status, headers, _ = post(port, f"thumbnail({200 + n})|{mark}", body)
        job = headers.get("X-Imgnode-Job")
        if status == 202:
            job = None
        results.append((phase, status, job))
        time.sleep(0.05)

    def load():
        try:
            for _ in range(BEFORE):
                one("before")
            ready.wait(timeout=300)
            while not rolled.is_set():
                one("during")
            for _ in range(AFTER):
                one("after")
        except BaseException:
            ready.abort()
            raise

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(load) for _ in range(clients)]
        try:
            # every client has had BEFORE jobs answered by generation 1
            ready.wait(timeout=300)
            install(V2, plugins, "watermark.so")
            r.ctl("reload")
            r.wait(lambda: r.tree()["node"]["generation"] == 2,
                   "generation 2")
            # during the roll, status shows both generations side by side
            gens = set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kids = r.children()
                gens |= {k.get("generation") for c, k in kids.items()
                         if c.startswith("worker.") and k.get("pid")}
                if {c for c in kids if c.startswith("worker.")} <= \
                        {"worker.3", "worker.4"}:
                    break
                time.sleep(0.05)
            assert {1, 2} <= gens, gens
            assert "GEN" in r.ctl("status").stdout
            r.wait(lambda: not any(c.startswith("worker.")
                                   and c in ("worker.1", "worker.2")
                                   for c in r.children()), "the roll")
        finally:
            rolled.set()
        for f in futures:
            f.result()

    count = {p: sum(1 for q, _, _ in results if q == p)
             for p in ("before", "during", "after")}
    print("jobs:", count)
    assert count["before"] == clients * BEFORE
    assert count["after"] == clients * AFTER
    statuses = [s for _, s, _ in results]
    assert all(s == 200 for s in statuses), \
        {s: statuses.count(s) for s in set(statuses)}
    # jobs submitted after the roll were made by the new watermark.so
    late = [j for p, _, j in results if p == "after"]
    for job in late:
        _, rec = get_json(port, f"/v1/jobs/{job}")
        assert rec["status"] == "done"
        assert rec["processed"]["plugins"]["watermark"] == "2.0-test", rec
        assert rec["processed"]["generation"] == 2
    early = [j for p, _, j in results if p == "before"]
    for job in early:
        _, rec = get_json(port, f"/v1/jobs/{job}")
        assert rec["processed"]["plugins"]["watermark"] == "1.0", rec
    _, rec = get_json(port, f"/v1/jobs/{early[0]}")
    # the same request again is made anew by v2 (the result key names the
    # filter versions), and the picture differs: v2 writes other text
    status, headers, again = post(port, rec["pipeline"], body)
    assert status == 200
    _, rec2 = get_json(port, f"/v1/jobs/{headers['X-Imgnode-Job']}")
    assert rec2["processed"]["plugins"]["watermark"] == "2.0-test"
    assert again != get_result(port, early[0])


def get_result(port, job):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", f"/v1/jobs/{job}/result")
    resp = c.getresponse()
    assert resp.status == 200
    return resp.read()


def test_new_filter_is_accepted_only_after_reload(swap_node, node):
    r, port, plugins = swap_node
    body = open(corpus_paths("photos")[0], "rb").read()
    status, _, data = post(port, "thumbnail(100)|sepia|jpeg", body)
    assert status == 400
    assert b"unknown filter" in data and b"sepia" in data
    install(PLUGINS / "sepia.so", plugins, "sepia.so")
    node.write("[filter.sepia]\nstrength = 80\n", "50-sepia.ini")
    r.ctl("reload")
    r.wait(lambda: r.tree()["node"]["generation"] == 2, "generation 2")
    # the ingress is replaced too: wait for the new one
    deadline = time.monotonic() + 20
    while True:
        status, headers, data = post(port, "thumbnail(100)|sepia|jpeg", body)
        if status != 400 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, data
    assert headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize("fixture,reason", [
    ("bad_major", "built for plugin ABI 2.0"),
    ("no_symbol", "not an imgnode plugin (no symbol imgnode_plugin)"),
    ("bad_selftest", "filter fixture self-test failed: made a 0x0 image"),
    ("crash_selftest", "plugin check crashed (Segmentation fault)"),
])
def test_broken_plugin_is_refused_and_old_generation_serves(
        swap_node, fixture, reason):
    r, port, plugins = swap_node
    body = open(corpus_paths("photos")[0], "rb").read()
    before = {c: k["pid"] for c, k in r.children().items() if k.get("pid")}
    install(FIXTURES / f"{fixture}.so", plugins, f"{fixture}.so")
    res = r.ctl("reload", check=False)
    assert res.returncode == 1
    assert reason in res.stderr, res.stderr
    assert r.tree()["node"]["generation"] == 1
    after = {c: k["pid"] for c, k in r.children().items() if k.get("pid")}
    assert after == before
    status, _, _ = post(port, "thumbnail(100)|jpeg", body)
    assert status == 200


def test_rapid_reloads_leave_one_consistent_generation(swap_node):
    r, port, plugins = swap_node
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: r.ctl("reload", check=False)
                              .returncode, range(8)))
    for _ in range(5):
        r.proc.send_signal(1)  # SIGHUP
    assert codes == [0] * 8
    # settles: the tree has exactly the configured children, all running
    def settled():
        t = r.tree()
        kids = r.children()
        workers = [c for c in kids if c.startswith("worker.")]
        return (not t["node"]["reloading"] and len(workers) == 2 and
                all(k["state"] == "running" for c, k in kids.items()
                    if "pid" in k and k.get("type") == "worker"))
    r.wait(settled, "a settled tree", timeout=60)
    time.sleep(1)
    r.wait(settled, "a settled tree", timeout=60)
    # no strays: the node's only children are the tree's processes
    tree_pids = {k["pid"] for k in r.children().values() if k.get("pid")}
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(r.proc.pid)],
                         capture_output=True, text=True).stdout.split()
    assert {int(p) for p in out} == tree_pids
    body = open(corpus_paths("photos")[0], "rb").read()
    assert post(port, "thumbnail(100)|jpeg", body)[0] == 200
