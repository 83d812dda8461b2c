"""What the end-to-end tests share (a plain module, not a test file; the
fixtures built on it are in conftest.py): the build's paths, the config
tree (Node), the one node runner (Imgnode) and the configs it runs, port
allocation, the image corpus, HTTP helpers, the real services (RabbitMQ,
Ceph, the supervisor driver) and the hostile inputs and /proc readers the
attack suites share. Test modules import from here, never from each
other."""
import hashlib
import hmac
import http.client
import io
import json
import os
import pathlib
import random
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
import requests


# ---- paths and the config tree ----

ROOT = pathlib.Path(__file__).resolve().parents[2]

BUILD = ROOT / os.environ.get("BUILD", "build")

IMGNODE = BUILD / "imgnode"

PLUGINS = BUILD / "plugins"

IMGNODECTL = BUILD / "imgnodectl"

# Small plugins, good and bad (test/unit/fixture_plugin.c).
FIXTURES = BUILD / "test" / "fixtures"

CORPUS_SCRIPT = ROOT / "test" / "data" / "corpus"


def vips_bundled():
    """True if BUILD's binaries use the bundled libvips (make
    VIPS=bundled: sharp's, which has no JPEG XL), as imgnode --version
    says."""
    out = subprocess.run([str(IMGNODE), "--version"], capture_output=True,
                         text=True, timeout=30).stdout
    return "(bundled:" in out


class Node:
    """A config tree in a temp dir: imgnode.ini plus conf.d/."""

    def __init__(self, path):
        self.dir = path
        self.ini = path / "imgnode.ini"
        self.confd = path / "conf.d"
        self.confd.mkdir()
        self.state = path / "state"
        self.runtime = path / "run"

    def base(self):
        """The [node] lines every test config needs (paths under tmp)."""
        return (f"[node]\nstate_dir = {self.state}\n"
                f"runtime_dir = {self.runtime}\nplugin_dir = {PLUGINS}\n")

    def write(self, text, name=None):
        path = self.confd / name if name else self.ini
        path.write_text(text)
        return path

    def run(self, *args, timeout=30):
        return subprocess.run([str(IMGNODE), "-c", str(self.ini), *args],
                              capture_output=True, text=True,
                              timeout=timeout)


# ---- ports and the corpus ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus_paths(category):
    """The paths of one corpus category, sorted; the corpus (in
    $IMGNODE_CORPUS, else build/corpus) is built on first use."""
    out = subprocess.run([str(CORPUS_SCRIPT), "--list", category],
                         capture_output=True, text=True, check=True,
                         timeout=600).stdout.split()
    assert out, category
    return sorted(out)


def corpus(category):
    """name -> path of one corpus category."""
    return {os.path.basename(p): p for p in corpus_paths(category)}


def small_jpeg():
    """A 600x450 grey JPEG of the corpus, read."""
    with open(corpus("formats")["jpeg-gray.jpg"], "rb") as f:
        return f.read()


def image_size(data):
    """(format, width, height) from an encoded image's header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ("png",) + struct.unpack(">II", data[16:24])
    if data[:3] == b"GIF":
        return ("gif",) + struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return ("webp", w & 0x3fff, h & 0x3fff)
        if kind == b"VP8L":
            b = int.from_bytes(data[21:25], "little")
            return ("webp", (b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1)
        if kind == b"VP8X":
            return ("webp", int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            if marker == 0x01 or 0xD0 <= marker <= 0xD8:
                i += 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return ("jpeg", w, h)
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    raise AssertionError(f"not an image I can read: {data[:16]!r}")


# ---- the node runner and its configs ----

class Imgnode:
    """imgnode running a config tree (a Node), its stderr collected. Given
    a port, it waits until the node is ready: the supervisor says so and
    /readyz answers 200 (on ready_port, the admin port, when the node has
    one); without one, the caller waits for what it wants (wait_line).
    env and session are Popen's (a new session: the node's own process
    group). stop() is a SIGTERM and a wait, close() a SIGKILL."""

    def __init__(self, node, port=None, ready_port=None, env=None,
                 session=False):
        self.node = node
        self.sock = node.runtime / "control.sock"
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else None
        self.ready_url = f"http://127.0.0.1:{ready_port or port}"
        self.lines = []
        self.proc = subprocess.Popen([str(IMGNODE), "-c", str(node.ini)],
                                     stderr=subprocess.PIPE, text=True,
                                     env=env, start_new_session=session)
        threading.Thread(target=self._read, daemon=True).start()
        if port:
            self.wait_ready()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def log(self):
        return "".join(self.lines[-60:])

    def wait_ready(self, timeout=30):
        """Until the whole tree is up (the supervisor says so) and the
        ingress is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"imgnode exited {self.proc.returncode}:\n"
                            + self.log())
            try:
                if any(" node: ready " in line for line in self.lines) \
                        and requests.get(self.ready_url + "/readyz",
                                         timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        pytest.fail("the node never got ready:\n" + self.log())

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.get(self.url + path, **kw)

    def submit(self, data, pipeline=None, preset=None, wait=None,
               headers=None, timeout=60, **params):
        if pipeline is not None:
            params["pipeline"] = pipeline
        if preset is not None:
            params["preset"] = preset
        if wait is not None:
            params["wait"] = str(wait)
        return requests.post(self.url + "/v1/jobs", params=params,
                             data=data, headers=headers, timeout=timeout)

    def metric(self, name):
        text = self.get("/metrics").text
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert m, f"no {name} in /metrics"
        return float(m.group(1))

    def record(self, job, **kw):
        r = self.get(f"/v1/jobs/{job}", **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, job, statuses, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = self.record(job)
            if rec["status"] in statuses:
                return rec
            time.sleep(0.05)
        pytest.fail(f"job {job} stayed {rec['status']}:\n" + self.log())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_line(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"no line matching {pattern!r}:\n" +
                    "".join(self.lines[-40:]))

    def ctl(self, *args, check=True):
        r = subprocess.run([str(IMGNODECTL), "-s", str(self.sock), *args],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            pytest.fail(f"imgnodectl {args}: {r.returncode} {r.stderr}")
        return r

    def tree(self):
        return json.loads(self.ctl("--json", "status").stdout)

    def children(self):
        """id -> child, flattened."""
        out = {}

        def walk(n):
            for c in n.get("children", []):
                out[c["id"]] = c
                walk(c)
        walk(self.tree()["tree"])
        return out

    def wait(self, cond, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n" +
                    "".join(self.lines[-40:]))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class AdminServer(Imgnode):
    """A node whose /readyz is on its admin port."""

    def __init__(self, node, port, admin):
        self.admin_url = f"http://127.0.0.1:{admin}"
        super().__init__(node, port, ready_port=admin)


def config(node, plugins=PLUGINS, extra=""):
    """Writes the config of a node with 2 workers on a free port, extra
    appended; returns the port."""
    port = free_port()
    node.write(f"[node]\nstate_dir = {node.state}\n"
               f"runtime_dir = {node.runtime}\nplugin_dir = {plugins}\n"
               f"[supervisor]\ncontrol_socket = {node.runtime}/control.sock\n"
               f"shutdown_timeout = 5s\n"
               f"[ingress]\nport = {port}\n[workers]\ncount = 2\n" + extra)
    return port


PRESETS = ("[preset.thumb]\npipeline = thumbnail(64) | webp(q=50)\n"
           "[preset.tiny]\npipeline = thumbnail(16) | png\n")


MAX_BODY = 1024 * 1024  # [ingress] max_body of the shared nodes


def start(path, workers=2, extra="", port=None, drop_in=None, cls=Imgnode,
          **ingress):
    """A node in path, [ingress] keys from ingress, extra lines after the
    presets; drop_in: (name, text) of a file of conf.d/. Returns the
    started node, a cls (Imgnode or a subclass)."""
    path.chmod(0o755)
    node = Node(path)
    port = port or free_port()
    keys = {"port": port, "max_body": MAX_BODY, "wait_max": "20s", **ingress}
    node.write(node.base() +
               f"[supervisor]\ncontrol_socket = {node.runtime}/control.sock\n"
               "shutdown_timeout = 4s\n[ingress]\n" +
               "".join(f"{k} = {v}\n" for k, v in keys.items()) +
               f"[workers]\ncount = {workers}\n" + PRESETS + extra)
    if drop_in:
        node.write(drop_in[1], drop_in[0])
    return cls(node, port)


def setup_extra(request, path, setup=None):
    """The config lines of a setup (setup, else the module fixture's
    request.param): none for spool+fs; for amqp+rados, the real broker
    and Ceph (started once per session) with queues and a pool named
    after path: the node sees no other's jobs, records or results (no
    cache hit of another module's), as on services of its own."""
    if (setup or request.param) != "amqp+rados":
        return ""
    url = request.getfixturevalue("shared_broker")[1]
    ceph_dir, conf = request.getfixturevalue("shared_ceph")
    # test/lib/ceph start on a running cluster makes the pool and waits
    # until it takes writes
    subprocess.run([str(CEPH), "start", str(ceph_dir)], check=True,
                   capture_output=True, timeout=300,
                   env=dict(os.environ, POOL=path.name))
    return (f"[transport]\nplugin = amqp\nurl = {url}\n"
            f"queue = {path.name}.jobs\ndead_queue = {path.name}.dead\n"
            "heartbeat = 2s\nconnect_timeout = 2s\n"
            f"[storage]\nplugin = rados\nconf = {conf}\n"
            f"pool = {path.name}\n"
            "osd_op_timeout = 5s\nmon_op_timeout = 5s\n")


# ---- HTTP ----

def error_of(r, status, error):
    """Asserts an error answer: the status and {"error", "detail"}."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


def raw_http(port, request, timeout=10):
    """Sends request bytes on one connection; returns all it reads until
    the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def submit(port, pipeline, body):
    status, _, data = request(port, "POST", f"/v1/jobs?pipeline={pipeline}",
                              body)
    assert status == 202, (status, data)
    return json.loads(data)["id"]


def wait_all(port, ids, timeout=240):
    """Polls every record until it is done or failed; returns them."""
    left, recs = set(ids), {}
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for job in list(left):
            status, _, data = request(port, "GET", f"/v1/jobs/{job}")
            assert status == 200, (job, status)
            rec = json.loads(data)
            if rec["status"] in ("done", "failed"):
                recs[job] = rec
                left.discard(job)
        if left:
            time.sleep(0.2)
    assert not left, f"{len(left)} jobs never finished"
    return recs


def wait_for(what, cond, timeout=30):
    """Polls cond until it returns something true (returned), for at most
    timeout seconds (a bound, not a measure); fails naming what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def canonical(keyid, expires, method, path, what="", sha=""):
    return "\n".join(["IMGNODE-HMAC-V2", keyid, str(expires), method, path,
                      what, sha])


def signed(keyid, secret, method, path, what="", sha="", expires=None,
           ttl=300):
    """The query arguments of a v2-signed request."""
    expires = int(time.time()) + ttl if expires is None else expires
    text = canonical(keyid, expires, method, path, what, sha)
    sig = hmac.new(secret.encode(), text.encode(), hashlib.sha256)
    q = {"keyid": keyid, "expires": str(expires), "sig": sig.hexdigest()}
    if sha:
        q["sha256"] = sha
    return q


MB = 1024 * 1024

# ASan keeps freed memory in its quarantine (256 MB by default): under
# SAN=1 the memory bounds get that much room (the leaks ASan reports)
SAN_SLACK = 256 * MB if os.environ.get("SAN") == "1" else 0


def connect(port, source="127.0.0.1", timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_response(s, timeout=10):
    """(status, headers, body) of one response on s, read to its end."""
    s.settimeout(timeout)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        assert chunk, f"closed before a response: {got!r}"
        got += chunk
    head, body = got.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        assert chunk, "closed before the end of the body"
        body += chunk
    return status, headers, body


def new_lines(server, since):
    """The node's log lines since line since, less the access log's one
    line per answered request (the bounds here are on what refused and
    cut connections write)."""
    return [line for line in server.lines[since:]
            if " info access: " not in line]


def read_rest(c, got, size, want):
    """Reads the rest of a response whose start (headers included) is in
    got: its body must be size bytes whose SHA-256 is want."""
    c.settimeout(30)
    body = got.split(b"\r\n\r\n", 1)[1]
    h = hashlib.sha256(body)
    n = len(body)
    while n < size:
        chunk = c.recv(1 << 20)
        assert chunk, f"cut off at {n} of {size}"
        h.update(chunk)
        n += len(chunk)
    assert n == size and h.hexdigest() == want


def trickle(conns, most, each=None):
    """Sends each open connection a header line a second (calling each()
    first every second) until the node has closed them all, without ever
    answering one 2xx; fails if any is still open after most lines.
    Returns how many lines were sent."""
    open_ = set(range(len(conns)))
    by_fd = {c.fileno(): i for i, c in enumerate(conns)}
    for line in range(most):
        if each:
            each()
        for i in list(open_):
            try:
                conns[i].sendall(b"X-Slow-%d: yes\r\n" % line)
            except OSError:
                open_.discard(i)
        poller = select.poll()
        for i in open_:
            poller.register(conns[i], select.POLLIN)
        for fd, _ in poller.poll(1000):
            i = by_fd[fd]
            try:
                got = conns[i].recv(65536)
            except OSError:
                got = b""
            assert not got.startswith(b"HTTP/1.1 2"), got
            if not got:
                open_.discard(i)
        if not open_:
            return line
    pytest.fail(f"{len(open_)} trickling connections still open")


def exchange(port, request, timeout=10, close_wait=None):
    """Sends request bytes on one connection and reads one answer:
    (status, headers, body, closed), closed when the server closed the
    connection after the answer, within close_wait seconds (timeout if
    None; a connection kept alive costs the whole wait, so a caller that
    ignores closed passes 0: closed then says only what already
    happened)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer: {got!r}"
            got += chunk
        head, body = got.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            chunk = s.recv(65536)
            assert chunk, "closed in the middle of the answer"
            body += chunk
        s.settimeout(timeout if close_wait is None else close_wait)
        try:
            closed = s.recv(1) == b""
        except (socket.timeout, BlockingIOError):
            closed = False
        return status, headers, body[:want], closed


def json_error(status_headers_body, status, error):
    got, headers, body, _ = status_headers_body
    assert got == status, (got, body)
    assert headers["content-type"] == "application/json"
    j = json.loads(body)
    assert j["error"] == error and j["detail"], j
    return j


def multipart(parts, boundary=b"xyz", end=True):
    body = b""
    for headers, data in parts:
        body += b"--" + boundary + b"\r\n" + headers + b"\r\n" + data + \
            b"\r\n"
    if end:
        body += b"--" + boundary + b"--\r\n"
    return body


FILE = b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n'


# ---- real services and the supervisor driver ----

RABBITMQ = ROOT / "test" / "lib" / "rabbitmq"


def rabbitmq(*args, timeout=120):
    """Runs test/lib/rabbitmq with args; its output."""
    return subprocess.run([str(RABBITMQ), *map(str, args)], check=True,
                          capture_output=True, text=True,
                          timeout=timeout).stdout.strip()


CEPH = ROOT / "test" / "lib" / "ceph"

SUPDRIVER = BUILD / "test" / "supdriver"


def gone(pid):
    """True once pid no longer exists (not even as a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Driver:
    def __init__(self, tmp_path, spec):
        self.log = tmp_path / "events"
        resize = tmp_path / "resize"
        self.status_path = tmp_path / "status.json"
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, SUPDRIVER_LOG=str(self.log),
                   SUPDRIVER_STATUS=str(self.status_path),
                   SUPDRIVER_RESIZE=str(resize))
        self.proc = subprocess.Popen([str(SUPDRIVER), str(spec_path)],
                                     stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def events(self):
        if not self.log.exists():
            return []
        return [tuple(l.split()) for l in self.log.read_text().splitlines()]

    def starts(self, cid=None):
        return [(e[1], int(e[2])) for e in self.events()
                if e[0] == "start" and (cid is None or e[1] == cid)]

    def pid(self, cid):
        return self.starts(cid)[-1][1]

    def wait(self, cond, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.02)
        pytest.fail(f"timed out waiting for {what}; stderr:\n"
                    + "".join(self.lines[-30:]))

    def ready(self):
        self.wait(lambda: any("supdriver: ready" in l for l in self.lines),
                  what="ready")

    def status(self):
        if self.status_path.exists():
            self.status_path.unlink()
        self.proc.send_signal(signal.SIGUSR1)
        self.wait(self.status_path.exists, what="status")
        return json.loads(self.status_path.read_text())

    def child(self, cid):
        def walk(node):
            for c in node.get("children", []):
                if c["id"] == cid:
                    return c
                found = walk(c)
                if found:
                    return found
        return walk(self.status())

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def all_pids_gone(self):
        return all(gone(pid) for _, pid in self.starts())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for _, pid in self.starts():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


# ---- hostile inputs ----

def noise_png(size=8, seed=1):
    """A size x size RGB PNG of noise (8x8: about 270 bytes)."""
    from PIL import Image  # only the attack tests need Pillow
    rnd = random.Random(seed)
    im = Image.new("RGB", (size, size))
    im.putdata([tuple(rnd.randrange(256) for _ in range(3))
                for _ in range(size * size)])
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def turned_jpeg(size=8):
    """A size x size JPEG whose EXIF says: turn me a quarter (6)."""
    from PIL import Image  # only the attack tests need Pillow
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 90)).save(
        out, "JPEG", exif=exif.tobytes(), quality=50)
    return out.getvalue()


WATERMARK = " ".join(["WW"] * 70)

# (input, pipeline, the step the refusal names, what it says)
BOMBS = [
    ("png", "thumbnail(16000,crop=attention,size=up)|thumbnail(50)",
     "step 1 thumbnail(crop=attention,height=0,size=up,width=16000)",
     "output 16000x16000 (256 Mpx) is over max_pixels (100 Mpx)"),
    ("jpeg", "thumbnail(24000,size=up)|thumbnail(50)",
     "step 1 thumbnail(crop=none,height=0,size=up,width=24000)",
     "output 24000x24000 (576 Mpx) is over max_pixels (100 Mpx)"),
    ("png", f'thumbnail(9000,size=up)|watermark(text="{WATERMARK}",'
     'size=1000)|thumbnail(50)',
     "step 2 watermark(gravity=south-east,opacity=0.5,size=1000,",
     "intermediate image 9000x"),
    ("png", "thumbnail(10000,size=up)|png(compression=0)",
     "step 2 png(colours=256,compression=0,palette=false)",
     "output of at least 286.1 MiB is over max_output (100 MiB)"),
    ("png", "resize(scale=10)|resize(scale=10)|resize(scale=10)|"
     "resize(scale=10)|thumbnail(50)",
     'step 4 resize(background="black",dpr=1,fit=cover,fx=0.5,fy=0.5,'
     'gravity=centre,height=0,scale=10',
     "output 80000x80000 is over max_dimension (30000 pixels a side)"),
]


def bomb_input(kind):
    return noise_png() if kind == "png" else turned_jpeg()


# Strings planted in each kind of metadata of the test upload.
MAKE = b"imgnode-secret-make"

GPS = b"imgnode-secret-gps"

XMP = b"imgnode-secret-xmp"

IPTC = b"imgnode-secret-iptc"

COMMENT = b"imgnode-secret-comment"

SECRETS = (MAKE, GPS, XMP, IPTC, COMMENT)

GPS_IFD = 0x8825


def segment(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) \
        + payload


def hostile_jpeg(images):
    """The corpus's 640x428 camera photo with EXIF orientation 6, given a
    GPS position, a camera make, XMP, IPTC, a comment (each with a secret
    above) and the ICC profile of another corpus file. Returns (bytes,
    profile)."""
    from PIL import Image  # only the attack tests need Pillow
    icc = Image.open(io.BytesIO(images("jpeg-icc.jpg"))).info["icc_profile"]
    im = Image.open(io.BytesIO(images("jpeg-exif-orient6.jpg")))
    exif = im.getexif()
    assert exif[0x0112] == 6
    exif[0x010F] = MAKE.decode()
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0),
                0x1B: b"ASCII\0\0\0" + GPS})
    exif[GPS_IFD] = gps
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif.tobytes(), icc_profile=icc,
            comment=COMMENT, quality=90)
    data = out.getvalue()
    xmp = (b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'>"
           b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
           b"<rdf:Description xmlns:dc='http://purl.org/dc/elements/1.1/'>"
           b"<dc:creator>" + XMP + b"</dc:creator></rdf:Description>"
           b"</rdf:RDF></x:xmpmeta>")
    caption = b"\x1c\x02\x78" + struct.pack(">H", len(IPTC)) + IPTC
    irb = b"8BIM\x04\x04\0\0" + struct.pack(">I", len(caption)) + caption
    irb += b"\0" * (len(irb) % 2)
    data = data[:2] + segment(0xE1, xmp) + \
        segment(0xED, b"Photoshop 3.0\0" + irb) + data[2:]
    # the upload really carries all of it
    for secret in SECRETS:
        assert secret in data, secret
    back = Image.open(io.BytesIO(data))
    assert back.getexif().get_ifd(GPS_IFD)[1] == "N"
    assert back.info["icc_profile"] == icc
    return data, icc


# ---- processes, from /proc ----

# ASan reserves terabytes of address space: the node ignores max_memory
SAN = os.environ.get("SAN") == "1"


def vm_hwm(pid):
    """Peak resident memory of a process, in bytes (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) * 1024


def field(pid, name, path="status"):
    """A line's value in /proc/PID/status (or another /proc file)."""
    with open(f"/proc/{pid}/{path}") as f:
        m = re.search(rf"^{name}:\s*(.*)$", f.read(), re.M)
    return m.group(1).strip() if m else None


def children(server):
    """id -> pid of the node's live children, from its log."""
    found = {}
    for line in server.lines:
        m = re.search(r"child ready id=(\S+) pid=(\d+)", line)
        if m:
            found[m.group(1)] = int(m.group(2))
    live = {}
    for i, p in found.items():
        try:
            if field(p, "PPid") == str(server.proc.pid):
                live[i] = p
        except OSError:
            pass  # gone (replaced, rolled)
    return live


def address_space_limit(pid):
    """(soft, hard) of 'Max address space' in /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max address space"):
                return tuple(line.split()[3:5])
    raise AssertionError(f"no address space line for {pid}")


def pieces(keys):
    """What to look for: the last 16 characters of each secret, as freed
    memory keeps a string but its first 16 bytes (malloc's pointers)."""
    return {k[-16:].encode() for k in keys}


def memory_holds(pid, needles):
    """The needles (bytes) found anywhere in pid's readable memory."""
    found = set()
    longest = max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if parts[1][0] != "r" or (len(parts) > 5 and parts[5] in (
                    "[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            tail = b""
            for at in range(start, end, 1 << 20):
                try:
                    mem.seek(at)
                    chunk = mem.read(min(1 << 20, end - at))
                except OSError:
                    tail = b""
                    continue
                data = tail + chunk
                found.update(n for n in needles if n in data)
                tail = data[-longest:]
    return found


def control_socket_inode(path):
    """The inode of the listening Unix socket bound to path."""
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == str(path):
                return parts[6]
    raise AssertionError(f"no socket bound to {path}")


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            out.add(m.group(1))
    return out


# ---- a real browser ----

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--window-size=1200,1100")


def start_chromium(profile):
    """A headless Chromium driven by chromedriver (Debian's packages),
    its profile in the directory profile; the caller quits it."""
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver")
               if not os.path.exists(p)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: install the test "
                    "packages with test/lib/deps (chromium chromium-driver "
                    "python3-selenium)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.fail(f"no selenium ({e}): install python3-selenium with "
                    "test/lib/deps")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for f in CHROMIUM_FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                           options=opts)
    drv.set_page_load_timeout(30)
    return drv
