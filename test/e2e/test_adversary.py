"""The adversary suite (issue "Hostile traffic", point 12): one node per
setup (spool + fs, and amqp + rados on a real RabbitMQ and a real Ceph
started by the project's scripts) takes one campaign with every class of
attack of the other test_attack_* files, each once and bounded in count
(framing, UTF-8, multipart, fair shares of jobs in flight; slow and paused
connections, slow readers; pixel and output bombs, a deadline overrun;
metadata; the workers' sandbox; signatures, key ownership, the admin
listener, secrets), while a thread asks /healthz every ~100 ms and another
samples the peak resident memory (VmHWM) of every process of the tree.
Then: each attack got its specific answer, /healthz never failed nor took
a second, no process was restarted but the workers killed at job_timeout
for the one CPU-heavy job, every legit job accepted was done and new ones
still are, and each process stayed under a stated memory bound. The
figures (attack, answer, time to answer; /healthz percentiles; peak RSS per
process) are printed (pytest -s) and written to
build/adversary-figures.md."""
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import secrets
import select
import socket
import subprocess
import threading
import time

import pytest
import requests

from nodelib import (BOMBS, BUILD, FILE, IMGNODECTL, MB, SAN, SAN_SLACK,
                     SECRETS, AdminServer, Node, address_space_limit,
                     bomb_input, connect, control_socket_inode, exchange,
                     field, free_port, hostile_jpeg, json_error, memory_holds,
                     multipart, noise_png, pieces, read_response, read_rest,
                     setup_extra, signed, socket_inodes, trickle, vm_hwm)

FIGURES = BUILD / "adversary-figures.md"

# Random secrets: a worker's memory is searched for them afterwards.
ALICE = f"alice-{secrets.token_hex(16)}"
BOB = f"bob-{secrets.token_hex(16)}"
CAROL = f"carol-{secrets.token_hex(16)}"
K1, S1 = "k1", f"hmac-{secrets.token_hex(16)}"
AS_ALICE = {"X-Api-Key": ALICE}
AS_BOB = {"X-Api-Key": BOB}

# The node's limits that the attacks and the bounds below refer to.
UPLOAD_MEMORY = 64 * MB
MAX_MEMORY = 1024 * MB  # [workers] max_memory
JOB_TIMEOUT = 6  # s (legit jobs here take under 1.5 s)
DEADLINE = 5  # s, [ingress] request_deadline
PER_CLIENT = 4  # [ingress] max_inflight_per_client
BOUNDS = {  # process kind -> (peak RSS bound, why)
    "supervisor": (64 * MB, "64 MB"),
    "ingress": (UPLOAD_MEMORY + 200 * MB, "upload_memory + 200 MB"),
    "worker": (MAX_MEMORY, "[workers] max_memory"),
    "reaper": (256 * MB, "256 MB"),
    "notifier": (256 * MB, "256 MB"),
}
# Slow but within every size limit (test_attack_cost): far past JOB_TIMEOUT.
SLOW = "thumbnail(5000,size=up)|blur(50)|blur(50)|thumbnail(100)|png"
TRICKLERS = [(f"127.0.0.{10 + a}", 100) for a in range(5)]  # 500 in all
PAUSED = 10
READERS = 5

_figures = {}


class Adversary(AdminServer):
    """The node under attack: its /readyz and /metrics are on the admin
    port, its API on the public one."""

    def metric(self, name):
        text = requests.get(self.admin_url + "/metrics", timeout=30).text
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert m, f"no {name} in /metrics"
        return float(m.group(1))


@pytest.fixture(scope="module", params=["spool+fs", "amqp+rados"])
def adv(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("adv")
    extra = setup_extra(request, path)
    path.chmod(0o755)
    node = Node(path)
    port, admin = free_port(), free_port()
    ingress = {"port": port, "admin_port": admin, "max_body": "45M",
               "wait_max": "60s", "upload_memory": f"{UPLOAD_MEMORY // MB}M",
               "request_deadline": f"{DEADLINE}s",
               "max_inflight_per_client": PER_CLIENT,
               "api_keys": f"alice:{ALICE}, bob:{BOB}, carol:{CAROL}",
               "hmac_keys": f"{K1}:{S1}", "hmac_max_ttl": "1h"}
    node.write(node.base() +
               f"[supervisor]\ncontrol_socket = {node.runtime}/control.sock\n"
               "shutdown_timeout = 4s\n[ingress]\n" +
               "".join(f"{k} = {v}\n" for k, v in ingress.items()) +
               f"[workers]\ncount = 1\njob_timeout = {JOB_TIMEOUT}s\n"
               f"max_memory = {MAX_MEMORY // MB}M\nmax_rss = 512M\n" + extra)
    s = Adversary(node, port, admin)
    s.setup = request.param
    yield s
    s.stop()


# ---- watching the node ----

class Watch:
    """Two threads: one GETs /healthz every ~100 ms on a new connection
    and keeps every latency and failure; one reads VmHWM of every process
    of the tree (the supervisor, and every child the log names as started,
    replacements included) every ~200 ms and keeps each one's peak."""

    def __init__(self, server):
        self.s = server
        self.latencies = []
        self.failures = []
        self.peaks = {}  # (id, pid) -> bytes
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._probe, daemon=True),
                        threading.Thread(target=self._sample, daemon=True)]
        for t in self.threads:
            t.start()

    def _probe(self):
        while not self.stopping.is_set():
            t = time.monotonic()
            try:
                r = requests.get(self.s.url + "/healthz", timeout=5)
                if r.status_code != 200 or r.text != "ok\n":
                    self.failures.append(f"{r.status_code} {r.text[:80]}")
            except requests.RequestException as e:
                self.failures.append(repr(e))
            took = time.monotonic() - t
            self.latencies.append(took)
            self.stopping.wait(max(0.0, 0.1 - took))

    def pids(self):
        found = {("supervisor", self.s.proc.pid)}
        for line in list(self.s.lines):
            m = re.search(r"child (?:started|ready) id=(\S+) pid=(\d+)",
                          line)
            if m:
                found.add((m.group(1), int(m.group(2))))
        return found

    def _sample(self):
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(0.2)

    def sample(self):
        root = str(self.s.proc.pid)
        for key in self.pids():
            try:
                # a child of the tree still (not a pid used again)
                if key[1] != self.s.proc.pid and \
                        field(key[1], "PPid") != root:
                    continue
                peak = vm_hwm(key[1])
            except (OSError, AttributeError):
                continue  # gone (killed, replaced)
            self.peaks[key] = max(self.peaks.get(key, 0), peak)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)
        self.sample()


def tree_pids(server):
    """(id, pid) of every live process of the tree, from imgnodectl."""
    out = subprocess.run(
        [str(IMGNODECTL), "-s", str(server.node.runtime / "control.sock"),
         "--json", "status"], capture_output=True, text=True, timeout=30,
        check=True).stdout
    found = {("supervisor", server.proc.pid)}

    def walk(n):
        for c in n.get("children", []):
            if c.get("pid"):
                found.add((c["id"], c["pid"]))
            walk(c)
    walk(json.loads(out)["tree"])
    return found


def kind(pid_id):
    return pid_id.split(".")[0]


# ---- signed requests ----

def query(pipeline, method="POST", path="/v1/jobs", **kw):
    return signed(K1, S1, method, path, "pipeline=" + pipeline, **kw)


def submit(s, data, pipeline, who=AS_ALICE, wait=None, **kw):
    return s.submit(data, pipeline=pipeline, headers=who, wait=wait,
                    **query(pipeline, **kw))


def raw_query(pipeline):
    q = query(pipeline)
    return ("pipeline=" + pipeline.replace("|", "%7C") + "".join(
        f"&{k}={v}" for k, v in q.items())).encode()


def raw_post(port, pipeline, body, content_type=b"image/png"):
    """A signed upload on a connection of its own (closed after the
    answer, so that the answer's time is not the keep-alive's)."""
    return exchange(port, b"POST /v1/jobs?" + raw_query(pipeline) +
                    b" HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + ALICE.encode() +
                    b"\r\nContent-Type: " + content_type +
                    b"\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body)


def stamp(text):
    """Seconds since the epoch of a record's time stamp."""
    return datetime.datetime.strptime(
        text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def wait_done(s, job, statuses, who=AS_ALICE, timeout=60):
    """The job's record once its status is one of statuses."""
    deadline = time.monotonic() + timeout
    while True:
        rec = s.record(job, headers=who)
        if rec["status"] in statuses or time.monotonic() > deadline:
            return rec
        time.sleep(0.05)


# ---- the attacks: each returns its answer, asserting it ----

class Campaign:
    def __init__(self, s, images):
        self.s = s
        self.images = images
        self.legit = []  # job ids accepted for legit clients
        self.rows = []  # (attack, answer, seconds)
        self.failed = []
        self.kept = {}

    def run(self, name, fn):
        t = time.monotonic()
        try:
            answer = fn()
        except Exception as e:  # noqa: BLE001 (reported, then failed)
            answer = f"FAILED: {e!r}"[:300]
            self.failed.append(f"{name}: {answer}")
        self.rows.append((name, answer, time.monotonic() - t))

    def legit_job(self, r, code=202, who=AS_ALICE):
        assert r.status_code == code, (r.status_code, r.text)
        job = r.json()["id"] if code == 202 else r.headers["X-Imgnode-Job"]
        self.legit.append((job, who))
        return job, who

    # a legit warm-up, and the first use of a short-lived signed URL
    def warm_up(self):
        r = submit(self.s, self.images("fossa.jpg"), "thumbnail(64)|webp",
                   wait=60)
        self.kept["alice_job"] = self.legit_job(r, 200)[0]
        data = self.images("tiny.png")
        q = query("thumbnail(12)|png", ttl=3)
        r = self.s.submit(data, pipeline="thumbnail(12)|png",
                          headers=AS_ALICE, **q)
        self.legit_job(r)
        self.kept["replay"] = (data, q, int(q["expires"]))
        return "200 image; signed URL (ttl 3 s) 202"

    def large_result(self):
        # 3000x3000 RGB, uncompressed: 27 MB stored by the worker
        r = submit(self.s, noise_png(), "thumbnail(3000,size=up)|"
                   "png(compression=0)", wait=60)
        job = self.legit_job(r, 200)[0]
        assert len(r.content) > 25 * MB, len(r.content)
        self.kept["big"] = (job, len(r.content),
                            hashlib.sha256(r.content).hexdigest())
        return f"200, {len(r.content) / MB:.1f} MiB result"

    def framing(self):
        answers = []
        for req, why in (
                (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n",
                 "both Content-Length and Transfer-Encoding"),
                (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                 "Content-Length given more than once"),
                (b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n", "must be chunked")):
            # signed and keyed: only the framing is wrong
            got = exchange(self.s.port, b"POST /v1/jobs?" + raw_query("png") +
                           b" HTTP/1.1\r\nHost: x\r\nX-Api-Key: " +
                           ALICE.encode() + b"\r\n" + req)
            body = json_error(got, 400, "bad request")
            assert why in body["detail"], body
            assert got[3], "the connection stayed open"
            answers.append("400+close")
        return " / ".join(answers)

    def bad_utf8(self):
        got = raw_post(self.s.port, "watermark(text=%22%ff%22)|png",
                       self.images("tiny.png"))
        body = json_error(got, 400, "bad pipeline")
        assert "byte 0xff at column 17 is not UTF-8" in body["detail"], body
        return "400 bad pipeline (byte 0xff at column 17)"

    def bad_multipart(self):
        data = self.images("tiny.png")
        ct = b"multipart/form-data; boundary=xyz"
        answers = []
        for body, why in (
                (multipart([(FILE, data), (FILE, data)]),
                 "a second file part"),
                (multipart([(FILE, data)], end=False)[:-40],
                 "ends before its closing boundary"),
                (multipart([(FILE + b"X-Padding: " + b"a" * 70000 + b"\r\n",
                             data)]), "part headers over 64 KiB")):
            got = raw_post(self.s.port, "png", body, ct)
            j = json_error(got, 400, "bad request")
            assert why in j["detail"], j
            answers.append("400")
        return " / ".join(answers) + " bad request (two files, truncated, " \
            "64 KiB headers)"

    def bombs(self):
        accepted = self.s.metric("imgnode_jobs_accepted_total")
        for k, pipeline, step, why in BOMBS:
            r = submit(self.s, bomb_input(k), pipeline, wait=20)
            detail = r.json().get("detail", "")
            assert r.status_code == 422 and \
                r.json()["error"] == "image rejected", (pipeline, r.text)
            assert detail.startswith(step) and why in detail, detail
        assert self.s.metric("imgnode_jobs_accepted_total") == accepted
        return f"422 image rejected x{len(BOMBS)}, naming the step; " \
            "none queued"

    def metadata(self):
        data, _ = hostile_jpeg(self.images)
        r = submit(self.s, data, "thumbnail(200)|jpeg", wait=60)
        self.legit_job(r, 200)
        leaked = [x for x in SECRETS if x in r.content]
        assert not leaked, leaked
        return "200, no EXIF/GPS/XMP/IPTC/comment in the output"

    def cpu_heavy(self):
        r = submit(self.s, noise_png(), SLOW, who=AS_BOB)
        assert r.status_code == 202, r.text
        self.kept["slow"] = r.json()["id"]
        return "202 (its end is checked below)"

    def flood(self):
        data = self.images("tiny.png")

        def one(width):
            return submit(self.s, data, f"thumbnail({width})|png")
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(one, range(20, 30)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [202] * PER_CLIENT + [429] * (10 - PER_CLIENT), codes
        for r in answers:
            if r.status_code == 202:
                self.legit_job(r)
            else:
                body = r.json()
                assert body["error"] == "too many jobs" and \
                    body["limit"] == "max_inflight_per_client", body
        r = submit(self.s, data, "thumbnail(13)|png", who=AS_BOB)
        self.legit_job(r, who=AS_BOB)
        return f"alice: {PER_CLIENT}x202 {10 - PER_CLIENT}x429 " \
            "(max_inflight_per_client); bob meanwhile: 202"

    def trickle(self):
        before = self.s.metric("imgnode_http_deadline_closed_total")
        conns = []
        try:
            for source, n in TRICKLERS:
                for _ in range(n):
                    c = connect(self.s.port, source)
                    c.sendall(b"POST /v1/jobs?pipeline=png HTTP/1.1\r\n"
                              b"Host: x\r\n")
                    conns.append(c)
            lines = trickle(conns, DEADLINE + 20)
            assert lines >= DEADLINE - 2, "closed before request_deadline"
        finally:
            for c in conns:
                c.close()
        closed = self.s.metric("imgnode_http_deadline_closed_total") - before
        assert closed == len(conns), closed
        return f"{len(conns)} closed at request_deadline ({DEADLINE} s)"

    def paused_uploads(self):
        head = (b"POST /v1/jobs?" + raw_query("thumbnail(64)|jpeg") +
                b" HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + CAROL.encode() +
                b"\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: %d\r\n\r\n" % (40 * MB))
        held, refused = [], []
        try:
            for _ in range(PAUSED):
                c = connect(self.s.port)
                c.sendall(head)
                if select.select([c], [], [], 0.5)[0]:
                    refused.append(read_response(c))
                    c.close()
                    continue
                for _ in range(20):
                    c.sendall(b"\xff" * MB)
                held.append(c)
            time.sleep(0.5)  # the ingress has read what was sent
            assert self.s.metric("imgnode_uploads") == len(held)
            assert 0 < self.s.metric("imgnode_upload_memory_bytes") <= \
                UPLOAD_MEMORY
        finally:
            for c in held:
                c.close()
        assert 1 <= len(held) <= 2, len(held)
        for status, headers, body in refused:
            assert status == 503 and headers["retry-after"] == "5", body
            assert b'"error":"busy"' in body and b"upload_memory" in body
        for _ in range(100):  # the closed uploads give their memory back
            if self.s.metric("imgnode_upload_memory_bytes") == 0:
                break
            time.sleep(0.05)
        assert self.s.metric("imgnode_upload_memory_bytes") == 0
        return f"{len(held)} held (20 MB each), {len(refused)}x503 busy " \
            "(upload_memory)"

    def slow_readers(self):
        job, size, want = self.kept["big"]
        readers = []
        try:
            for i in range(READERS):
                c = connect(self.s.port, f"127.0.0.{20 + i}")
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                c.sendall(f"GET /v1/jobs/{job}/result HTTP/1.1\r\nHost: x\r\n"
                          f"X-Api-Key: {ALICE}\r\n\r\n".encode())
                got = b""
                while len(got) < 64 * 1024:
                    chunk = c.recv(65536)
                    assert chunk, got[:200]
                    got += chunk
                assert got.startswith(b"HTTP/1.1 200 "), got[:200]
                readers.append((c, got))
            time.sleep(DEADLINE + 1)  # paused past request_deadline
            for c, got in readers:
                read_rest(c, got, size, want)
        finally:
            for c, _ in readers:
                c.close()
        return f"{READERS} readers paused {DEADLINE + 1} s, each then got " \
            f"all {size / MB:.1f} MiB"

    def storm(self):
        """The slow attacks again, all at once."""
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            runs = [pool.submit(f) for f in (self.trickle, self.paused_uploads,
                                             self.slow_readers)]
            return "at once: " + "; ".join(r.result() for r in runs)

    def replay(self):
        data, q, expires = self.kept["replay"]
        while time.time() <= expires + 1:
            time.sleep(0.2)
        r = self.s.submit(data, pipeline="thumbnail(12)|png",
                          headers=AS_ALICE, **q)
        assert r.status_code == 403 and r.json()["error"] == \
            "bad signature", r.text
        assert "expired" in r.json()["detail"], r.text
        r = submit(self.s, data, "png", expires=int(time.time()) - 5)
        assert r.status_code == 403 and "expired" in r.json()["detail"]
        return "403 bad signature (expired) x2"

    def admin_paths(self):
        admin = self.s.admin_url
        for path in ("/readyz", "/metrics"):
            r = self.s.get(path)
            assert r.status_code == 404 and \
                r.json()["error"] == "not found", (path, r.text)
            assert requests.get(admin + path, timeout=10).status_code == 200
        r = requests.post(admin + "/v1/jobs?" + raw_query("png").decode(),
                          data=self.images("tiny.png"), headers=AS_ALICE,
                          timeout=10)
        assert r.status_code == 404 and r.json()["error"] == "not found", \
            r.text
        return "public port: 404 for /readyz and /metrics; admin port: " \
            "200, and 404 for the API"

    def print_config(self):
        r = self.s.node.run("-T")
        assert r.returncode == 0, r.stderr
        shown = [x for x in (ALICE, BOB, CAROL, S1) if x in r.stdout]
        assert not shown and "<redacted>" in r.stdout, shown
        return "imgnode -T: api_keys and hmac_keys <redacted>"

    def other_key(self):
        job = self.kept["alice_job"]
        for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/result"):
            r = self.s.get(path, headers=AS_BOB)
            assert r.status_code == 404 and \
                r.json()["error"] == "unknown job", r.text
        assert self.s.get(f"/v1/jobs/{job}",
                          headers=AS_ALICE).status_code == 200
        return "404 unknown job (record and result)"

    def slow_job_end(self):
        job = self.kept["slow"]
        rec = wait_done(self.s, job, ["failed", "done"], who=AS_BOB,
                        timeout=120)
        took = stamp(rec["finished"]) - stamp(rec["created"])
        assert rec["status"] == "failed", rec
        assert rec["error"].startswith(
            f"killed after job_timeout ({JOB_TIMEOUT} s) on 2 attempts"), rec
        assert rec["overruns"] == 2, rec
        return f"failed {took:.1f} s after its submit (its record): " \
            f"{rec['error'].split(':')[0]}"

    def sandbox(self, workers):
        """Each worker: RLIMIT_AS at max_memory, no_new_privs and seccomp
        on every thread, the OOM killer's first choice, without the
        control socket, and no API or signing key in its memory."""
        sock = control_socket_inode(self.s.node.runtime / "control.sock")
        want = "unlimited" if SAN else str(MAX_MEMORY)
        for pid in workers:
            assert address_space_limit(pid) == (want, want), pid
            for tid in os.listdir(f"/proc/{pid}/task"):
                path = f"task/{tid}/status"
                assert field(pid, "NoNewPrivs", path) == "1", (pid, tid)
                assert field(pid, "Seccomp", path) == "2", (pid, tid)
            with open(f"/proc/{pid}/oom_score_adj") as f:
                assert int(f.read()) == 500, pid
            assert sock not in socket_inodes(pid), pid
            found = memory_holds(pid, pieces([ALICE, BOB, CAROL, S1]))
            assert not found, found
        return f"{len(workers)} worker(s): RLIMIT_AS {want}, seccomp + " \
            "no_new_privs on every thread, oom_score_adj 500, no control " \
            "socket, no key in memory"


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def write_figures(setup, rows, lat, failures, peaks):
    out = [f"### {setup}", "",
           "| attack | answer | time to answer |", "| --- | --- | --- |"]
    out += [f"| {a} | {b} | {t:.2f} s |".replace("\n", " ")
            for a, b, t in ((a, b.replace("|", "\\|"), t)
                            for a, b, t in rows)]
    out += ["", f"/healthz: {len(lat)} probes, {len(failures)} failed, "
            f"p50 {percentile(lat, 50) * 1000:.1f} ms, "
            f"p99 {percentile(lat, 99) * 1000:.1f} ms, "
            f"max {max(lat) * 1000:.1f} ms", "",
            "| process | pid | peak RSS (VmHWM) | bound |",
            "| --- | --- | --- | --- |"]
    for (pid_id, pid), peak in sorted(peaks.items()):
        bound = BOUNDS.get(kind(pid_id))
        out.append(f"| {pid_id} | {pid} | {peak / MB:.1f} MB | "
                   f"{bound[1] if bound else '-'} |")
    _figures[setup] = "\n".join(out) + "\n"
    text = "## Adversary campaign figures (test/e2e/test_adversary.py)\n\n" \
        + "\n".join(_figures[k] for k in sorted(_figures))
    FIGURES.write_text(text)
    print("\n" + _figures[setup])


def test_adversary_campaign(adv, images):
    s = adv
    mark = len(s.lines)
    watch = Watch(s)
    c = Campaign(s, images)
    try:
        c.run("legit warm-up (and a signed URL, ttl 3 s)", c.warm_up)
        c.run("large result (legit, 3000x3000 uncompressed PNG)",
              c.large_result)
        c.run("smuggling framing (CL+TE, two CL, gzip,chunked)", c.framing)
        c.run("invalid UTF-8 in the pipeline", c.bad_utf8)
        c.run("crash-attempt multipart", c.bad_multipart)
        c.run(f"pixel/output bombs x{len(BOMBS)}", c.bombs)
        c.run("EXIF/GPS/XMP/IPTC in an upload", c.metadata)
        c.run(f"CPU-heavy job past job_timeout ({JOB_TIMEOUT} s)",
              c.cpu_heavy)
        c.run("one client floods in-flight jobs (10 at once)", c.flood)
        c.run("trickling, paused uploads and slow readers (as below) "
              "together, beside the CPU-heavy job", c.storm)
        c.run(f"{sum(n for _, n in TRICKLERS)} header-trickling "
              f"connections from {len(TRICKLERS)} addresses", c.trickle)
        c.run(f"{PAUSED} paused 40 MB uploads", c.paused_uploads)
        c.run(f"{READERS} slow readers of the large result", c.slow_readers)
        c.run("replayed signed URL after expiry", c.replay)
        c.run("another API key reads a job", c.other_key)
        c.run("/readyz, /metrics from the public port; the API from the "
              "admin port", c.admin_paths)
        c.run("the config printed (secrets in it)", c.print_config)
        c.run("  ... the CPU-heavy job's end", c.slow_job_end)

        def after():
            r = submit(s, images("xfce-blue.jpg"), "thumbnail(100)|png",
                       wait=60)
            c.legit_job(r, 200)
            for job, who in c.legit:
                rec = wait_done(s, job, ["done", "failed"], who)
                assert rec["status"] == "done", rec
            return f"200; all {len(c.legit)} legit jobs done"
        c.run("after the campaign: a normal job", after)
        live = tree_pids(s)
        workers = [p for i, p in live if kind(i) == "worker"]
        c.run("the workers after it all (sandbox, secrets)",
              lambda: c.sandbox(workers))
    finally:
        watch.stop()
    lat, failures = watch.latencies, watch.failures
    write_figures(s.setup, c.rows, lat, failures, watch.peaks)

    assert not c.failed, "\n".join(c.failed)
    assert not failures, failures[:10]
    assert max(lat) < 1, f"/healthz took {max(lat):.2f} s"
    # the tree imgnodectl shows was all sampled
    assert live <= set(watch.peaks), (live, watch.peaks)
    assert {kind(i) for i, _ in live} == set(BOUNDS), live
    for (pid_id, pid), peak in watch.peaks.items():
        bound = BOUNDS[kind(pid_id)][0] + SAN_SLACK
        assert peak < bound, f"{pid_id} pid {pid}: {peak >> 20} MB"
    # nothing restarted but the workers killed at job_timeout
    lines = s.lines[mark:]
    kills = [x for x in lines if "killing child id=" in x]
    exits = [x for x in lines if "child exited id=" in x]
    # (the watchdog's deadline reaches the supervisor as a missed heartbeat:
    # the job's record, checked above, says job_timeout and 2 overruns)
    assert len(kills) == 2 and all("id=worker." in x for x in kills), kills
    assert len(exits) == 2 and all("id=worker." in x for x in exits), exits
    assert all("KILL" in x and "restart=yes" in x for x in exits), exits
    assert not [x for x in lines if "child failed permanently" in x]
