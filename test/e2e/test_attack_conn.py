"""Hostile traffic against the ingress: slow and greedy clients. Many
connections trickling their headers, one address holding many connections,
paused uploads and slow readers of a large result must leave the node
answering /healthz at once, in memory bounded by its config, and its log
short. Every client is on loopback; the attackers use other loopback
addresses (127.0.0.N) than the health checks, as the per-address limit is
meant to tell them apart. Each test counts over a fixed amount of work;
the only time bounds are generous latencies of loopback requests."""
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import time

import pytest
import requests

from nodelib import (IMGNODECTL, MB, SAN_SLACK, AdminServer, Node, connect,
                     error_of, free_port, new_lines, read_response, read_rest,
                     trickle)


def ingress_pid(server):
    """The pid of the node's ingress process, from imgnodectl."""
    out = subprocess.run(
        [str(IMGNODECTL), "-s", str(server.node.runtime / "control.sock"),
         "--json", "status"], capture_output=True, text=True, timeout=30,
        check=True).stdout
    found = []

    def walk(n):
        for c in n.get("children", []):
            if c["id"].startswith("ingress") and c.get("pid"):
                found.append(c["pid"])
            walk(c)
    walk(json.loads(out)["tree"])
    assert len(found) == 1, out
    return found[0]


def rss(pid):
    """Resident memory of pid in bytes, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) * 1024


def healthz_fast(server, times=5):
    """/healthz from 127.0.0.1 answers 200 within a second, times times."""
    for _ in range(times):
        t = time.monotonic()
        r = requests.get(server.url + "/healthz", timeout=5)
        took = time.monotonic() - t
        assert r.status_code == 200 and r.text == "ok\n"
        assert took < 1, f"/healthz took {took:.2f}s"


def closed_by_server(s, timeout):
    """True if the server closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            got = s.recv(65536)
            if not got:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# ---- many slow connections ----


def test_trickling_connections_are_cut_at_the_deadline(own):
    """1,100 connections sending a header line a second (the default
    libmicrohttpd took at most 1,020): the node takes them all, answers
    /healthz at once meanwhile, closes every one at request_deadline
    although none is ever idle, and logs a line or two about it."""
    s = own(max_connections=1500, request_deadline="3s")
    mark = len(s.lines)
    per_address, addresses = 50, 22
    conns = []
    try:
        for a in range(addresses):
            for _ in range(per_address):
                c = connect(s.port, f"127.0.0.{10 + a}")
                c.sendall(b"POST /v1/jobs?pipeline=png HTTP/1.1\r\n"
                          b"Host: x\r\n")
                conns.append(c)
        # at most 30 s of trickling
        lines = trickle(conns, 30, lambda: healthz_fast(s, times=1))
        assert lines >= 2, "closed before request_deadline"
        assert s.metric("imgnode_http_deadline_closed_total") == \
            per_address * addresses
    finally:
        for c in conns:
            c.close()
    healthz_fast(s)
    # the count comes in a summary line at most every 10 s
    for _ in range(300):
        lines = new_lines(s, mark)
        cut = [x for x in lines if "request_deadline" in x]
        if sum(int(m) for x in cut for m in
               re.findall(r"closed connections=(\d+)", x)) >= \
                per_address * addresses:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the closed connections were not all counted:\n" +
                    "".join(cut))
    assert len(cut) <= 4, "".join(cut)
    assert len(lines) < 30, "".join(lines[-40:])


def test_the_admin_listener_has_the_deadline_too(tmp_path):
    """A connection trickling its headers to [ingress] admin_port is
    closed at request_deadline like one to the API port, although it is
    never idle for its 10 s idle timeout."""
    tmp_path.chmod(0o755)
    n = Node(tmp_path)
    port, admin = free_port(), free_port()
    n.write(n.base() + f"[ingress]\nport = {port}\nadmin_port = {admin}\n"
            "request_deadline = 2s\n[workers]\ncount = 1\n")
    s = AdminServer(n, port, admin)
    try:
        trickle_to_admin(admin)
    finally:
        s.stop()


def trickle_to_admin(admin):
    with connect(admin) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        for i in range(40):  # 20 s at most
            try:
                c.sendall(b"X-Slow-%d: yes\r\n" % i)
            except OSError:
                break
            if closed_by_server(c, 0.5):
                break
        else:
            pytest.fail("the trickling admin connection is still open")
    assert i >= 3, "closed before request_deadline"
    with connect(admin) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(c)
    assert status == 200
    assert re.search(rb"^imgnode_http_deadline_closed_total 1$", body, re.M)


def test_one_address_gets_its_limit_and_others_still_get_in(own):
    """max_connections_per_ip = 4: a fifth connection from the same
    address is closed unanswered, 40 of them log a few lines at most, and
    another address is served meanwhile; once the four close, the first
    address is served again."""
    s = own(max_connections_per_ip=4)
    mark = len(s.lines)
    held = [connect(s.port, "127.0.0.7") for _ in range(4)]
    try:
        for c in held:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        refused = 0
        for _ in range(40):
            with connect(s.port, "127.0.0.7", timeout=5) as c:
                try:
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                except OSError:
                    pass
                got = b""
                try:
                    while True:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except (ConnectionResetError, socket.timeout):
                    pass
                assert b"200 OK" not in got, got
                refused += 1
        assert refused == 40
        with connect(s.port, "127.0.0.8") as c:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(c)[0] == 200
        healthz_fast(s, times=1)
    finally:
        for c in held:
            c.close()
    for _ in range(100):  # the node sees the four closed
        with connect(s.port, "127.0.0.7") as c:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                if read_response(c, timeout=2)[0] == 200:
                    break
            except (AssertionError, OSError):
                pass
        time.sleep(0.05)
    else:
        pytest.fail("127.0.0.7 refused after its connections closed")
    lines = new_lines(s, mark)
    assert len(lines) <= 8, "".join(lines)


# ---- uploads held open ----

def upload_head(length=None):
    head = (b"POST /v1/jobs?pipeline=thumbnail(64)|jpeg HTTP/1.1\r\n"
            b"Host: x\r\nContent-Type: image/jpeg\r\n")
    if length is None:
        return head + b"Transfer-Encoding: chunked\r\n\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % length


def test_paused_uploads_hold_at_most_upload_memory(own, images):
    """20 uploads of 40 MB that stop half way: with upload_memory = 64M
    the ingress grows by less than that and the uploads it cannot hold
    get 503 with Retry-After at once; after them a real upload goes
    through."""
    s = own(max_body="45M", upload_memory="64M")
    pid = ingress_pid(s)
    before = rss(pid)
    piece = b"\xff" * MB
    conns, refused = [], []
    try:
        for _ in range(20):
            c = connect(s.port)
            c.sendall(upload_head(40 * MB))
            ready, _, _ = select.select([c], [], [], 0.5)
            if ready:
                status, headers, body = read_response(c)
                refused.append((status, headers, json.loads(body)))
                c.close()
                continue
            for _ in range(20):
                c.sendall(piece)
            conns.append(c)
        time.sleep(0.5)  # the ingress has read what was sent
        grown = rss(pid) - before
        healthz_fast(s)
        assert s.metric("imgnode_uploads") == len(conns)
        assert 0 < s.metric("imgnode_upload_memory_bytes") <= 64 * MB
    finally:
        for c in conns:
            c.close()
    assert 1 <= len(conns) <= 2, len(conns)
    assert len(refused) == 20 - len(conns)
    for status, headers, body in refused:
        assert status == 503 and headers["retry-after"] == "5"
        assert body["error"] == "busy" and "upload_memory" in body["detail"]
    assert grown < 64 * MB + 16 * MB + SAN_SLACK, \
        f"the ingress grew {grown >> 20} MB"
    for _ in range(100):  # the closed uploads give their memory back
        r = s.submit(images("fossa.jpg"), pipeline="thumbnail(64)|jpeg")
        if r.status_code != 503:
            break
        time.sleep(0.05)
    assert r.status_code == 202, r.text
    assert s.metric("imgnode_upload_memory_bytes") == 0


def test_paused_chunked_uploads_hold_at_most_upload_memory(own, images):
    """The same without Content-Length: 12 chunked uploads of 20 MB each
    stop before their last chunk; the ingress keeps at most upload_memory
    of them, and one that outgrew it, when it ends, is a 503."""
    s = own(max_body="45M", upload_memory="32M")
    pid = ingress_pid(s)
    before = rss(pid)
    chunk = b"%x\r\n" % MB + b"\xff" * MB + b"\r\n"
    conns = []
    try:
        for _ in range(12):
            c = connect(s.port)
            c.sendall(upload_head())
            try:
                for _ in range(20):
                    c.sendall(chunk)
            except OSError:
                pass  # cut off: it outgrew upload_memory
            conns.append(c)
        time.sleep(0.5)
        grown = rss(pid) - before
        healthz_fast(s)
        assert 0 < s.metric("imgnode_upload_memory_bytes") <= 32 * MB
        # the last one cannot have fit: ending it gets the 503
        last = conns[-1]
        try:
            last.sendall(b"0\r\n\r\n")
            status, headers, body = read_response(last)
            assert status == 503 and headers["retry-after"] == "5"
            assert json.loads(body)["error"] == "busy"
        except (OSError, AssertionError) as e:
            # or it was closed for reading too far past the budget
            assert isinstance(e, OSError) or "closed before" in str(e), e
    finally:
        for c in conns:
            c.close()
    assert grown < 32 * MB + 16 * MB + SAN_SLACK, \
        f"the ingress grew {grown >> 20} MB"
    for _ in range(100):
        r = s.submit(images("fossa.jpg"), pipeline="thumbnail(64)|jpeg")
        if r.status_code != 503:
            break
        time.sleep(0.05)
    assert r.status_code == 202, r.text


def test_one_upload_larger_than_upload_memory_goes_through(own, images):
    """upload_memory bounds uploads together, not one: alone, an upload
    up to max_body is taken, raw, chunked or multipart, and a ?wait=
    answers with the image."""
    s = own(max_body="45M", upload_memory="1M")
    data = images("infinite-sea.jpg")  # 6.5 MB
    assert len(data) > MB
    r = s.submit(data, pipeline="thumbnail(64)|jpeg", wait=20)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", r.text
    r = s.submit(iter([data[:MB], data[MB:]]), pipeline="thumbnail(32)|png")
    assert r.status_code == 202, r.text
    r = requests.post(s.url + "/v1/jobs", files={
        "file": ("sea.jpg", data, "image/jpeg"),
        "pipeline": (None, "thumbnail(48)|webp")}, timeout=60)
    assert r.status_code == 202, r.text
    # and it holds nothing once answered: a paused one still fits after
    with connect(s.port) as c:
        c.sendall(upload_head(2 * MB) + b"\xff" * MB)
        assert not select.select([c], [], [], 0.5)[0], c.recv(4096)
        r = s.submit(data, pipeline="thumbnail(20)|jpeg")
        error_of(r, 503, "busy")
        assert r.headers["Retry-After"] == "5"
        # a bad request is told what is wrong with it, busy or not
        error_of(s.submit(data, pipeline="thumbnail(20"), 400, "bad pipeline")


# ---- slow readers of a large result ----

def test_slow_readers_of_a_large_result(own, images):
    """Five clients ask for a 120 MB result and read 64 KiB of it: the
    ingress holds a piece per reader, not the result, answers /healthz at
    once, and each reader gets the whole result when it reads on, past
    request_deadline (which bounds receiving a request, not answering it)."""
    s = own(request_deadline="2s")
    r = s.submit(images("fossa.jpg"), pipeline="thumbnail(64)|jpeg", wait=20)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    key = s.record(job)["result"]
    # the store is plain files: make the result a large one
    path = s.node.state / "store" / key
    assert path.is_file(), path
    size = 120 * MB
    block = hashlib.sha256(b"imgnode").digest() * (MB // 32)
    tmp = path.with_name("big.tmp")
    with open(tmp, "wb") as f:
        for i in range(size // MB):
            f.write(block[i % 32:] + block[:i % 32])
    want = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.rename(tmp, path)

    head = requests.head(f"{s.url}/v1/jobs/{job}/result", timeout=10)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == size

    pid = ingress_pid(s)
    before = rss(pid)
    readers = []
    try:
        for i in range(5):
            c = connect(s.port, f"127.0.0.{20 + i}")
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.sendall(f"GET /v1/jobs/{job}/result HTTP/1.1\r\n"
                      "Host: x\r\n\r\n".encode())
            got = b""
            while len(got) < 64 * 1024:
                chunk = c.recv(65536)
                assert chunk
                got += chunk
            assert got.startswith(b"HTTP/1.1 200 ")
            readers.append((c, got))
        time.sleep(3)  # past request_deadline, readers paused
        grown = rss(pid) - before
        healthz_fast(s)
        assert grown < 40 * MB + SAN_SLACK, \
            f"the ingress grew {grown >> 20} MB"
        for c, got in readers:
            read_rest(c, got, size, want)
    finally:
        for c, _ in readers:
            c.close()
    error_of(requests.get(f"{s.url}/v1/jobs/{'0' * 32}/result", timeout=10),
             404, "unknown job")
