"""What operators expect of a daemon (issue "A newcomer's first hour and an
operator's day", point 6): /livez and /readyz, imgnodectl drain, metrics
(build info, result cache hits and misses), one access-log line per request
with secrets masked, X-Request-ID from the client to the worker's lines,
JSON log lines, journald priorities, imgnode --version."""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from nodelib import (BUILD, IMGNODE, IMGNODECTL, PLUGINS, Imgnode, Node,
                     error_of, free_port, start)

HEX32 = re.compile(r"[0-9a-f]{32}")


class JsonServer(Imgnode):
    """A node whose log lines are JSON: ready when the node says so."""

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"imgnode exited {self.proc.returncode}:\n"
                            + self.log())
            if any('"msg":"ready"' in line for line in self.lines):
                return
            time.sleep(0.05)
        pytest.fail("the node never got ready:\n" + self.log())


def make(path, workers=1, node="", extra="", plugins=None, cls=Imgnode,
         **ingress):
    """A node in path with [node] keys node (conf.d) and [ingress] keys
    ingress; plugins: a plugin directory instead of the build's."""
    path.mkdir(exist_ok=True)
    if plugins:
        node += f"plugin_dir = {plugins}\n"
    return start(path, workers=workers, extra=extra, cls=cls,
                 drop_in=("ops.ini", "[node]\n" + node) if node else None,
                 **ingress)


def ctl(server, *args, timeout=30):
    return subprocess.run([str(IMGNODECTL), "-c", str(server.node.ini),
                           *args], capture_output=True, text=True,
                          timeout=timeout)


def with_slow(tmp_path):
    """A plugin directory: the build's, plus the slow(SECONDS) filter."""
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugins)
    shutil.copy(BUILD / "test" / "fixtures" / "slow.so", plugins / "slow.so")
    return plugins


@pytest.fixture
def servers():
    made = []
    yield made
    for s in made:
        s.stop()


def wait_for(what, pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"never: {what}")


# ---- /livez, /readyz, drain ----

def test_drain_finishes_the_job_in_flight_and_refuses_new_ones(
        tmp_path, servers, images):
    tmp_path.chmod(0o755)
    s = make(tmp_path / "n", plugins=with_slow(tmp_path))
    servers.append(s)
    data = images("tiny.png")
    assert s.get("/livez").text == "ok\n"
    assert s.get("/readyz").status_code == 200

    r = s.submit(data, pipeline="slow(3)|png")
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    s.wait_status(job, ("running",))

    drain = subprocess.Popen([str(IMGNODECTL), "-c", str(s.node.ini),
                              "-t", "60", "drain"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        r = wait_for("/readyz 503", lambda: (lambda r: [r][:r.status_code
                                                           == 503])(
            s.get("/readyz")))[0]
        assert error_of(r, 503, "not ready")["detail"] == "draining"
        # new work goes elsewhere; the process still answers
        r = s.submit(data, pipeline="png")
        assert "draining" in error_of(r, 503, "draining")["detail"]
        assert r.headers["Retry-After"] == "5"
        assert s.get("/livez").status_code == 200
        assert s.metric("imgnode_draining") == 1
        st = json.loads(ctl(s, "--json", "status").stdout)
        assert st["node"]["draining"] is True
        # the job is still running, so the drain is still waiting
        if drain.poll() is None:
            assert st["node"]["inflight"] == 1, st["node"]
        out, err = drain.communicate(timeout=60)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.wait()
    assert drain.returncode == 0, err
    # progress, then the end
    assert out.splitlines()[0] == "draining: 1 in flight", out
    assert out.splitlines()[-1] == "drained: no job in flight", out
    # what was in flight finished
    assert s.record(job)["status"] == "done"
    st = json.loads(ctl(s, "--json", "status").stdout)
    assert st["node"]["draining"] is True and st["node"]["inflight"] == 0

    r = ctl(s, "undrain")
    assert r.returncode == 0 and "taking work" in r.stdout, r.stderr
    assert s.get("/readyz").status_code == 200
    assert s.metric("imgnode_draining") == 0
    r = s.submit(data, pipeline="png", wait=20)
    assert r.status_code == 200, r.text
    # drained and resumed again, nothing in flight: answered at once; on
    # the control socket itself, a drain is answered once drained
    assert ctl(s, "drain").stdout == "drained: no job in flight\n"
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(30)
        c.connect(str(s.node.runtime / "control.sock"))
        c.sendall(b'{"cmd":"drain"}\n')
        got = json.loads(c.makefile().readline())
    assert got["ok"] is True and got["message"].startswith("drained"), got
    assert ctl(s, "resume").returncode == 0
    assert s.submit(data, pipeline="png").status_code in (200, 202)


# ---- the access log ----

ACCESS = re.compile(
    r"access: (?P<method>[A-Z]+) (?P<path>\S+) status=(?P<status>\d+) "
    r"bytes=(?P<bytes>\d+) in=\d+ ms=\d+ client=(?P<client>\S+) "
    r"request_id=(?P<rid>\S+)(?: query=\"(?P<query>[^\"]*)\")?"
    r"(?: id=(?P<id>[0-9a-f]{32}))?$")


def access_lines(s):
    return [m for m in (ACCESS.search(line.rstrip("\n"))
                        for line in s.lines if " access: " in line) if m]


def test_access_log_one_line_per_request_secrets_masked(
        tmp_path, servers, images):
    tmp_path.chmod(0o755)
    s = make(tmp_path / "n", api_keys="ops:sekrit-api-key-123")
    servers.append(s)
    key = {"X-Api-Key": "sekrit-api-key-123"}
    r = s.submit(images("tiny.png"), pipeline="png", wait=20, headers=key)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    r = s.get(f"/v1/jobs/{job}", params={
        "keyid": "k1", "expires": "1", "sig": "deadbeefsig0123",
        "token": "tok-secret-456", "pretty": "1"})
    bad = r.status_code
    assert bad >= 400
    assert s.get("/livez", headers={"X-Request-ID": "probe-1"}).ok

    # after the readiness probes of Imgnode, one line each
    wait_for("the last access line", lambda: any(
        m["path"] == "/livez" for m in access_lines(s)))
    lines = [m for m in access_lines(s) if m["path"] != "/readyz"]
    assert len(lines) == 3, s.log()
    post, get, live = lines
    assert (post["method"], post["path"], post["status"], post["id"]) == \
        ("POST", "/v1/jobs", "200", job)
    assert int(post["bytes"]) > 0 and post["client"] == "127.0.0.1"
    assert "pipeline=png" in post["query"] and "wait=20" in post["query"]
    assert (get["method"], get["status"]) == ("GET", str(bad))
    assert "sig=***" in get["query"] and "token=***" in get["query"]
    assert "keyid=k1" in get["query"] and "pretty=1" in get["query"]
    assert (live["path"], live["rid"]) == ("/livez", "probe-1")
    log = s.log()
    for secret in ("deadbeefsig0123", "tok-secret-456", "sekrit-api-key"):
        assert secret not in log

    # and off
    q = make(tmp_path / "quiet", access_log="no")
    servers.append(q)
    assert q.get("/livez").ok and q.get("/nope").status_code == 404
    time.sleep(0.2)
    assert not any(" access: " in line for line in q.lines), q.log()


# ---- X-Request-ID ----

def test_request_id_round_trip_into_record_and_worker_log(
        tmp_path, servers, images):
    tmp_path.chmod(0o755)
    s = make(tmp_path / "n", node="log_level = debug\n")
    servers.append(s)
    rid = "ops-req.42:abc"
    r = s.submit(images("tiny.png"), pipeline="thumbnail(8)|png", wait=20,
                 headers={"X-Request-ID": rid})
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-ID"] == rid
    job = r.headers["X-Imgnode-Job"]
    assert s.record(job)["request_id"] == rid
    wait_for("the worker's line", lambda: any(
        "worker" in line and f"job done id={job}" in line
        and f"request_id={rid}" in line for line in s.lines))

    # every answer carries one; a bad one is replaced by a made-up one
    for path, headers in (("/healthz", {}), ("/nope", {}),
                          ("/livez", {"X-Request-ID": "has space"}),
                          ("/livez", {"X-Request-ID": "x" * 129}),
                          ("/livez", {"X-Request-ID": 'q"uote'})):
        r = s.get(path, headers=headers)
        assert HEX32.fullmatch(r.headers["X-Request-ID"]), (path, headers)
    r = s.get("/livez", headers={"X-Request-ID": "y" * 128})
    assert r.headers["X-Request-ID"] == "y" * 128
    # a refused upload too
    r = s.submit(b"not an image", pipeline="png",
                 headers={"X-Request-ID": "refused-1"})
    assert r.status_code == 415 or r.status_code == 400, r.text
    assert r.headers["X-Request-ID"] == "refused-1"


def test_request_id_in_the_reapers_line_for_a_poison_job(
        tmp_path, servers, images):
    tmp_path.chmod(0o755)
    plugins = with_slow(tmp_path)
    shutil.copy(BUILD / "test" / "fixtures" / "segv.so", plugins / "segv.so")
    s = make(tmp_path / "n", plugins=plugins,
             extra="[transport]\ndelivery_limit = 2\n")
    servers.append(s)
    r = s.submit(images("tiny.png"), pipeline="segv|png",
                 headers={"X-Request-ID": "poison-7"})
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    assert s.wait_status(job, ("failed",), timeout=60)["request_id"] == \
        "poison-7"
    wait_for("the reaper's line", lambda: any(
        "reaper" in line and f"job failed id={job}" in line
        and line.rstrip().endswith("request_id=poison-7")
        for line in s.lines))


# ---- log lines: JSON, journald ----

def test_json_log_lines_parse(tmp_path, servers, images):
    tmp_path.chmod(0o755)
    s = make(tmp_path / "n", node="log_format = json\n", cls=JsonServer)
    servers.append(s)
    r = s.submit(images("tiny.png"), pipeline="png", wait=20,
                 headers={"X-Request-ID": "json-1"})
    assert r.status_code == 200, r.text
    wait_for("the access line", lambda: any('"component":"access"' in line
                                            for line in s.lines))
    s.stop()
    objs = [json.loads(line) for line in s.lines]
    assert objs
    for o in objs:
        assert {"ts", "level", "process", "pid", "component", "msg"} <= \
            set(o), o
        assert o["level"] in ("error", "warn", "info", "debug")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                            o["ts"])
    ready = [o for o in objs if o["component"] == "node"
             and o["msg"] == "ready"]
    assert ready and ready[0]["listen"].startswith("127.0.0.1:")
    access = [o for o in objs if o["component"] == "access"]
    assert access[0]["msg"] == "POST /v1/jobs"
    assert (access[0]["status"], access[0]["request_id"]) == \
        ("200", "json-1")
    assert access[0]["query"] == "pipeline=png&wait=20"


def run_to_file(s_dir, port, env, out):
    """imgnode with stderr to the file out until ready; then stopped."""
    n = Node(s_dir)
    n.write(n.base() +
            f"[supervisor]\ncontrol_socket = {n.runtime}/control.sock\n"
            f"[ingress]\nport = {port}\n[workers]\ncount = 1\n")
    with open(out, "wb") as f:
        st = os.fstat(f.fileno())
        env = {**os.environ, **env(st)}
        p = subprocess.Popen([str(IMGNODE), "-c", str(n.ini)], stderr=f,
                             env=env)
        try:
            wait_for("ready", lambda: b"node: ready" in out.read_bytes())
        finally:
            p.terminate()
            p.wait(timeout=30)
    return out.read_text().splitlines()


def test_journald_priority_prefix(tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "j").mkdir()
    lines = run_to_file(tmp_path / "j", free_port(), lambda st: {
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, tmp_path / "j.log")
    assert lines and all(re.match(r"<[3467]>[\w.-]+\[\d+\] "
                                  r"(error|warn|info|debug) ", line)
                         for line in lines), lines
    assert any(line.startswith("<6>") and " info " in line
               for line in lines)
    # a JOURNAL_STREAM of another file (stderr was redirected): no prefix
    (tmp_path / "k").mkdir()
    lines = run_to_file(tmp_path / "k", free_port(), lambda st: {
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"},
        tmp_path / "k.log")
    assert lines and not any(line.startswith("<") for line in lines)
    assert re.match(r"\d{4}-\d\d-\d\dT", lines[0]), lines[0]


# ---- imgnode --version ----

def test_version_names_libvips_and_every_plugin(node):
    node.write(node.base())
    out = node.run("--version")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"imgnode \d+\.\d+\.\d+ \(plugin ABI 1\.\d+\)",
                        lines[0])
    # the version, then the origin (make VIPS=) and the library's file
    assert re.fullmatch(r"libvips \d+\.\d+\.\d+ \((system|bundled): /\S+\)",
                        lines[1])
    plugins = {m.group(1): (m.group(2), m.group(3)) for m in (
        re.fullmatch(r"plugin (\S+) (\S+) (transport|storage|filter) "
                     r"ABI 1\.\d+ (\S+\.so)", line) for line in lines[2:])
        if m}
    assert len(plugins) == len(lines) - 2, lines
    assert len(plugins) == len(list(PLUGINS.glob("*.so")))
    assert plugins["spool"][1] == "transport"
    assert plugins["fs"][1] == "storage"
    assert plugins["thumbnail"][1] == "filter"
    # no config: what can be said without one
    out = subprocess.run([str(IMGNODE), "-c", str(node.dir / "none.ini"),
                          "--version"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0
    assert out.stdout.splitlines()[2].startswith("plugins not listed: ")


# ---- metrics ----

def test_metrics_build_info_and_cache_counts(tmp_path, servers, images):
    tmp_path.chmod(0o755)
    s = make(tmp_path / "n")
    servers.append(s)
    text = s.get("/metrics").text
    m = re.search(r'^imgnode_build_info\{version="(\d+\.\d+\.\d+)",'
                  r'libvips="(\d+\.\d+\.\d+)"\} 1$', text, re.M)
    assert m, text
    out = subprocess.run([str(IMGNODE), "-V"], capture_output=True,
                         text=True, timeout=30).stdout
    assert out.startswith(f"imgnode {m.group(1)} ")
    assert "imgnode_uploads " in text

    hits = s.metric("imgnode_result_cache_hits_total")
    misses = s.metric("imgnode_result_cache_misses_total")
    data = images("tiny.png")
    # 4 uploads of one image and pipeline: one makes it, 3 find it;
    # 2 other pipelines: made
    for pipeline in ["thumbnail(10)|png"] * 4 + ["thumbnail(11)|png",
                                                  "thumbnail(12)|png"]:
        r = s.submit(data, pipeline=pipeline, wait=20)
        assert r.status_code == 200, r.text
    assert s.metric("imgnode_result_cache_hits_total") == hits + 3
    assert s.metric("imgnode_result_cache_misses_total") == misses + 3


@pytest.mark.parametrize("transport", ["spool", "amqp"])
def test_metrics_queue_depth(tmp_path, servers, images, request, transport):
    tmp_path.chmod(0o755)
    extra = ""
    if transport == "amqp":
        url = request.getfixturevalue("shared_broker")[1]
        extra = (f"[transport]\nplugin = amqp\nurl = {url}\n"
                 f"queue = {tmp_path.name}.jobs\n"
                 f"dead_queue = {tmp_path.name}.dead\n"
                 "heartbeat = 2s\nconnect_timeout = 2s\n")
    s = make(tmp_path / "n", workers=0, extra=extra)
    servers.append(s)
    depth = 'imgnode_queue_depth{queue="jobs"}'
    assert s.metric(depth) == 0
    assert s.metric('imgnode_queue_depth{queue="dead"}') == 0
    for size in (10, 11, 12):
        r = s.submit(images("tiny.png"), pipeline=f"thumbnail({size})|png")
        assert r.status_code == 202, r.text
    assert s.metric(depth) == 3
