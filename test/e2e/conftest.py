"""The fixtures the end-to-end tests share, thin, on nodelib (which holds
the helpers): a config tree, the image corpus, nodes of a test's own, and
the real services (RabbitMQ, Ceph) and the supervisor driver: each
service once per session for the modules that only use it (shared_broker,
shared_ceph), or once per module for those that take it away (broker,
ceph), and a headless Chromium."""
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


def run_broker(path):
    """A RabbitMQ on loopback (test/lib/rabbitmq) in path, for as long as
    the generator runs: yields (its dir, its URL)."""
    # a timeout's SIGTERM still stops the broker (via the finally)
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        url = rabbitmq("start", path)
        yield path, url
    finally:
        subprocess.run([str(RABBITMQ), "stop", str(path)], timeout=120,
                       capture_output=True)
        signal.signal(signal.SIGTERM, old)


def run_ceph(path):
    """A one-OSD Ceph on loopback (test/lib/ceph) in path, for as long as
    the generator runs: yields (its dir, its conf)."""
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


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A RabbitMQ of the module's own: (its dir, its URL). For modules
    that kill, freeze or restart it; the others take shared_broker."""
    yield from run_broker(tmp_path_factory.mktemp("rabbitmq"))


@pytest.fixture(scope="module")
def ceph(tmp_path_factory):
    """A Ceph of the module's own: (its dir, its conf). For modules that
    kill or stop its daemons; the others take shared_ceph."""
    yield from run_ceph(tmp_path_factory.mktemp("ceph"))


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory):
    """One RabbitMQ for every module that only uses it (queues named
    after each node's dir), started once per session: (dir, URL)."""
    yield from run_broker(tmp_path_factory.mktemp("rabbitmq-shared"))


@pytest.fixture(scope="session")
def shared_ceph(tmp_path_factory):
    """One Ceph for every module that only uses it, started once per
    session: (dir, conf)."""
    yield from run_ceph(tmp_path_factory.mktemp("ceph-shared"))


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
