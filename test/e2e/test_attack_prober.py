"""Hostile traffic against the header probe: untrusted bytes are read by
libvips only in prober processes, never in the ingress (which holds the API
secrets). Each prober is a fresh program (exec, not fork) under the
workers' sandbox (address-space limit, no_new_privs, seccomp without
network), holds no secret and no descriptor but its socket to the ingress;
one that dies or hangs during a probe costs that upload a 422, and the
next upload gets a new one; one killed between uploads costs nothing."""
import os
import re
import secrets
import signal
import threading
import time

import pytest

from nodelib import (SAN, children, error_of, field, memory_holds, pieces,
                     vips_bundled)

API_KEY = f"key-{secrets.token_hex(16)}"
PIPELINE = "thumbnail(32)|png"


def ingress_pid(server):
    pids = [p for i, p in children(server).items()
            if i.startswith("ingress")]
    assert len(pids) == 1, "no live ingress:\n" + server.log()
    return pids[0]


def probers(server, want=None, timeout=10):
    """The pids of the ingress's prober processes (want of them, if
    given, waiting for a replacement to start)."""
    parent = str(ingress_pid(server))
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if argv[1:2] == [b"--probe-helper"] and \
                        field(d, "PPid") == parent and \
                        field(d, "State")[0] != "Z":
                    found.append(int(d))
            except (OSError, TypeError):
                continue
        if want is None or len(found) == want or \
                time.monotonic() > deadline:
            return sorted(found)
        time.sleep(0.05)


def post(server, data, pipeline=PIPELINE, **kw):
    return server.submit(data, pipeline=pipeline,
                         headers={"X-Api-Key": API_KEY}, **kw)


def gone(pid):
    """True once pid is no process (killed and reaped by the ingress)."""
    try:
        field(pid, "State")
    except OSError:
        return True
    return False


@pytest.fixture
def node(own):
    return own(probers=2, api_keys=API_KEY)


def test_probers_are_sandboxed_programs(node, images):
    assert post(node, images("xfce-blue.jpg")).status_code == 202
    pids = probers(node, want=2)
    assert len(pids) == 2, node.log()
    for pid in pids:
        # a program of its own, started by exec (not a fork of the ingress)
        assert field(pid, "NoNewPrivs") == "1"
        assert field(pid, "Seccomp") == "2"
        if not SAN:  # ASan reserves more than any limit
            with open(f"/proc/{pid}/limits") as f:
                line = next(ln for ln in f
                            if ln.startswith("Max address space"))
            assert line.split()[3:5] == [str(2 << 30)] * 2, line
        # stdin (its socket to the ingress), stdout, stderr: nothing else
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        assert fds == [0, 1, 2], fds
        assert os.readlink(f"/proc/{pid}/fd/0").startswith("socket:")
        assert os.readlink(f"/proc/{pid}/fd/1") == "/dev/null"
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert b"KEY" not in f.read()
        assert not memory_holds(pid, pieces([API_KEY]))


def test_the_ingress_never_starts_libvips(node, images):
    """libvips' loader modules and threads appear where libvips starts
    (the probers) and not in the ingress, which has read an upload."""
    assert post(node, images("xfce-blue.jpg")).status_code == 202
    ing = ingress_pid(node)
    prober = probers(node, want=2)[0]

    def vips_threads(pid):
        names = set()
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/comm") as f:
                    names.add(f.read().strip())
            except OSError:
                pass
        return {n for n in names if n.startswith("vips")}

    def modules(pid):
        with open(f"/proc/{pid}/maps") as f:
            return {ln.split()[-1] for ln in f if "vips-modules" in ln}

    # what a started libvips looks like, seen in a prober
    if vips_bundled():
        # one statically linked file, no loader modules and no thread
        # before any pixel work: a started libvips looks like any other
        pytest.skip("make VIPS=bundled: a started libvips shows no sign")
    assert modules(prober) or vips_threads(prober), "no sign of libvips"
    assert not modules(ing) and not vips_threads(ing)


def test_a_prober_killed_between_uploads_costs_nothing(node, images):
    data = images("xfce-blue.jpg")
    before = probers(node, want=2)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    for pid in before:
        deadline = time.monotonic() + 10
        while field(pid, "State")[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
    for i in range(4):
        r = post(node, data, pipeline=f"thumbnail({40 + i})|png")
        assert r.status_code == 202, r.text
    after = probers(node)
    assert after and not set(after) & set(before)
    assert "a prober ended between probes (signal SIGKILL)" in node.log()


def test_a_stuck_prober_times_out(own, images):
    s = own(probers=1, probe_timeout="1s", api_keys=API_KEY)
    data = images("xfce-blue.jpg")
    [stuck] = probers(s, want=1)
    os.kill(stuck, signal.SIGSTOP)
    try:
        body = error_of(post(s, data), 422, "image rejected")
        assert re.search(r"the header probe timed out after 1000 ms",
                         body["detail"]), body
    finally:
        if not gone(stuck):
            os.kill(stuck, signal.SIGCONT)
    assert gone(stuck)  # killed and reaped
    r = post(s, data)
    assert r.status_code == 202, r.text
    [fresh] = probers(s, want=1)
    assert fresh != stuck


def test_probers_killed_at_any_moment(own, images):
    """Probers are killed again and again while uploads go on: every
    upload gets its job (the prober died before reading it: another one
    reads it) or a clear 422 (it died during the probe), never anything
    else; the node goes on. (Probers are killed once in seccomp, which is
    just before they say they are ready: one killed in between makes that
    upload a 503 "probe unavailable", as when a prober cannot start.)"""
    s = own(probers=1, api_keys=API_KEY)
    data = images("xfce-blue.jpg")
    answers = []
    done = threading.Event()

    def upload():
        try:
            for i in range(40):
                answers.append(post(s, data, pipeline=f"thumbnail({i + 8})"))
        finally:
            done.set()
    t = threading.Thread(target=upload)
    t.start()
    killed = set()
    while not done.wait(0.02) and len(killed) < 200:
        for pid in probers(s):
            try:  # a started one (it enters seccomp, then says ready)
                if field(pid, "Seccomp") != "2":
                    continue
            except OSError:
                continue
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    t.join(120)
    assert len(answers) == 40 and len(killed) > 1, (len(answers), killed)
    for r in answers:
        if r.status_code == 503:  # killed between seccomp and "ready"
            body = error_of(r, 503, "probe unavailable")
            assert body["detail"] == \
                "a prober did not start (signal SIGKILL)", body
        elif r.status_code != 202:
            body = error_of(r, 422, "image rejected")
            assert body["detail"] == \
                "the header probe crashed (signal SIGKILL)", body
    assert post(s, data).status_code == 202
    assert not set(probers(s, want=1)) & killed


def test_formats_and_limits_still_answered(node, images):
    """The prober's answers reach the client as image_probe's did."""
    body = error_of(post(node, b"BM" + b"\0" * 64), 415,
                    "unsupported format")
    assert "bmp" in body["detail"]
    body = error_of(post(node, b"\xff\xd8\xff\xe0 not a jpeg at all"), 422,
                    "image rejected")
    assert "jpeg" in body["detail"]
