"""The fixtures the end-to-end tests share, thin, on nodelib (which holds
the helpers): a config tree, the image corpus, nodes of a test's own, and
the real services (RabbitMQ, Ceph) and the supervisor driver, each started
once per module that asks for it, and a headless Chromium."""
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from nodelib import (CEPH, RABBITMQ, Driver, Node, corpus, rabbitmq,
                     setup_extra, start, start_chromium)


@pytest.fixture
def node(tmp_path):
    tmp_path.chmod(0o755)
    return Node(tmp_path)


@pytest.fixture(scope="module")
def images():
    """name -> the bytes of that corpus file (photos, formats, hostile,
    corrupt)."""
    found = {}
    for cat in ("photos", "formats", "hostile", "corrupt"):
        found.update(corpus(cat))

    def read(name):
        with open(found[name], "rb") as f:
            return f.read()
    return read


@pytest.fixture
def own(tmp_path):
    """Starts nodes of the test's own; stops them after it."""
    made = []

    def make(name="n", **kw):
        (tmp_path / name).mkdir()
        s = start(tmp_path / name, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="module", params=["spool+fs", "amqp+rados"])
def api(request, tmp_path_factory):
    """A node the module's tests share, on spool + fs, then on amqp +
    rados (a real RabbitMQ and Ceph)."""
    path = tmp_path_factory.mktemp("api")
    s = start(path, extra=setup_extra(request, path))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A RabbitMQ on loopback (test/lib/rabbitmq): (its dir, its URL)."""
    path = tmp_path_factory.mktemp("rabbitmq")
    # a timeout's SIGTERM still stops the broker (via the finally)
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        url = rabbitmq("start", path)
        yield path, url
    finally:
        subprocess.run([str(RABBITMQ), "stop", str(path)], timeout=120,
                       capture_output=True)
        signal.signal(signal.SIGTERM, old)


@pytest.fixture(scope="module")
def ceph(tmp_path_factory):
    """A one-OSD Ceph on loopback (test/lib/ceph): (its dir, its conf)."""
    path = tmp_path_factory.mktemp("ceph")
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        subprocess.run([str(CEPH), "start", str(path)], check=True,
                       capture_output=True, timeout=300)
        conf = subprocess.run([str(CEPH), "conf", str(path)], check=True,
                              capture_output=True, text=True).stdout.strip()
        yield path, conf
    finally:
        subprocess.run([str(CEPH), "stop", str(path)], capture_output=True,
                       timeout=120)
        signal.signal(signal.SIGTERM, old)


@pytest.fixture
def driver(tmp_path):
    """Starts supdriver trees from specs; closes them after the test."""
    made = []

    def make(spec):
        d = Driver(tmp_path, spec)
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


@pytest.fixture
def browser():
    """A headless Chromium driven by chromedriver (selenium), with a
    profile of its own; quit after the test."""
    profile = tempfile.mkdtemp(prefix="imgnode-chromium-")
    drv = start_chromium(profile)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)
