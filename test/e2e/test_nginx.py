"""Two nodes behind a real nginx (the shipped etc/nginx/imgnode.conf),
sharing one queue and one store: SIGKILL one node under load; uploads
(with an Idempotency-Key, so that nginx may retry them) keep succeeding
through the other and no accepted job is lost."""
import concurrent.futures
import http.client
import json
import signal
import subprocess
import threading
import time
import uuid

import pytest

from nodelib import (PLUGINS, ROOT, Imgnode, Node, free_port, small_jpeg,
                     wait_all)


def start_node(base, shared, name):
    d = base / name
    d.mkdir()
    node = Node(d)
    port = free_port()
    node.write(f"[node]\nstate_dir = {shared}\nruntime_dir = {d}/run\n"
               f"plugin_dir = {PLUGINS}\n"
               f"[ingress]\nport = {port}\n"
               # a key the killed node claimed is stale after 3 x this + 5 s
               "dependency_wait = 1s\n[workers]\ncount = 1\n")
    r = Imgnode(node)
    r.wait_line(r"node: ready")
    return r, port


@pytest.fixture
def cluster(tmp_path):
    tmp_path.chmod(0o755)
    shared = tmp_path / "shared"
    a, pa = start_node(tmp_path, shared, "a")
    b, pb = start_node(tmp_path, shared, "b")
    front = free_port()
    ngx = tmp_path / "nginx"
    subprocess.run(["test/lib/nginx", "start", str(ngx), str(front),
                    str(pa), str(pb)], cwd=ROOT, check=True)
    yield a, b, front
    subprocess.run(["test/lib/nginx", "stop", str(ngx)], cwd=ROOT)
    a.close()
    b.close()


def post(port, pipeline, body):
    """An upload with an Idempotency-Key: nginx retries it on the other
    node even when the killed one had it (a POST without the key that
    was sent to a node that died is not retried: the client gets 502).
    If the killed node had claimed the key, the other answers 409 until
    that claim is stale (3 x dependency_wait + 5 s): the client asks
    again after Retry-After, as a client of the API does."""
    key = str(uuid.uuid4())
    for _ in range(30):  # a bound: 30 x 1 s covers the 8 s of a claim
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", f"/v1/jobs?pipeline={pipeline}&wait=30",
                  body=body, headers={"Idempotency-Key": key})
        r = c.getresponse()
        data = r.read()
        job = r.getheader("X-Imgnode-Job")
        c.close()
        if r.status != 409:
            break
        time.sleep(float(r.getheader("Retry-After", "1")))
    return r.status, data, job


# uploads each client makes before the kill, and again after it
BEFORE, AFTER = 5, 5


def test_one_node_killed_behind_nginx(cluster):
    """Four clients upload through nginx; once BEFORE uploads each are
    answered, node a is SIGKILLed while they go on, and each then makes
    AFTER more. Counted over a fixed number of uploads, never over a time
    window: all are accepted, the AFTER ones through node b."""
    a, b, front = cluster
    body = small_jpeg()
    accepted, refused = [], []
    phases = []
    counter = iter(range(10, 10000))
    lock = threading.Condition()
    killed = threading.Event()
    clients = 4

    def one(phase):
        with lock:
            w = next(counter)
        status, data, job = post(front, f"thumbnail({w % 590 + 10})|jpeg",
                                 body)
        with lock:
            if status == 200:
                accepted.append(job)
            elif status == 202:
                accepted.append(json.loads(data)["id"])
            else:
                refused.append((status, data[:200]))
            phases.append(phase)
            lock.notify_all()

    def load():
        for _ in range(BEFORE):
            one("before")
        while not killed.is_set():
            one("during")
        for _ in range(AFTER):
            one("after")

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(load) for _ in range(clients)]
        try:
            with lock:
                assert lock.wait_for(
                    lambda: phases.count("before") == clients * BEFORE,
                    timeout=300), "the clients' first uploads never ended"
            a.proc.send_signal(signal.SIGKILL)  # the whole node, no goodbye
            a.proc.wait()
        finally:
            killed.set()
        for f in futures:
            f.result()
    assert not refused, refused[:10]
    # uploads went on via node b
    assert phases.count("after") == clients * AFTER
    assert len(accepted) == len(phases)
    # every job accepted by either node ends done, node a's included
    recs = wait_all(front, accepted)
    bad = [j for j in accepted if recs[j]["status"] != "done"]
    assert not bad, [recs[j] for j in bad[:3]]
