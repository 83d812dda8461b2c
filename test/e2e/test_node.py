"""The real node under its supervisor: the process tree imgnodectl shows,
restarts, reloads (refused and accepted), stop, exit codes and the
service manager's notifications."""
import os
import re
import shutil
import signal
import socket
import time

import pytest

from nodelib import PLUGINS, Imgnode, config, corpus_paths


@pytest.fixture
def running(node):
    made = []

    def start(**kw):
        env = kw.pop("env", None)
        session = kw.pop("session", False)
        config(node, **kw)
        r = Imgnode(node, env=env, session=session)
        made.append(r)
        r.wait_line(r"node: ready")
        return r
    yield start
    for r in made:
        r.close()


def test_status_shows_the_live_tree(running):
    r = running()
    kids = r.children()
    assert set(kids) == {"ingress", "ingress.1", "workers", "worker.1",
                         "worker.2", "reaper", "notifier"}
    for cid in ("ingress.1", "worker.1", "worker.2", "reaper", "notifier"):
        assert kids[cid]["state"] == "running" and kids[cid]["pid"] > 0
    assert kids["workers"]["strategy"] == "simple_one_for_one"
    out = r.ctl("status").stdout
    for cid in ("ingress.1", "worker.1", "worker.2", "reaper", "notifier"):
        assert re.search(rf"^\s*{re.escape(cid)}\s+\d+\s+running", out,
                         re.M), out
    assert r.tree()["node"]["generation"] == 1


def sched(pid):
    """(niceness, policy) of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[16]), int(fields[38])  # stat fields 19 and 41


def test_workers_yield_the_cpu_to_the_ingress(running, node):
    r = running()
    kids = r.children()
    base, policy = sched(kids["ingress.1"]["pid"])
    assert policy == os.SCHED_OTHER
    for w in ("worker.1", "worker.2"):
        assert sched(kids[w]["pid"]) == (min(base + 10, 19), os.SCHED_BATCH)
    r.close()
    r = running(extra="[workers]\nnice = 0\n")
    assert sched(r.children()["worker.1"]["pid"]) == (base, os.SCHED_OTHER)


def test_killed_worker_is_replaced(running):
    r = running()
    old = r.children()["worker.1"]["pid"]
    os.kill(old, signal.SIGKILL)
    r.wait(lambda: r.children()["worker.1"]["pid"] not in (0, old)
           and r.children()["worker.1"]["state"] == "running",
           "a new worker.1")
    w = r.children()["worker.1"]
    assert w["restarts"] == 1 and w["last_exit"] == "signal SIGKILL"
    assert r.children()["worker.2"]["restarts"] == 0


def test_restart_command(running):
    r = running()
    old = r.children()["reaper"]["pid"]
    r.ctl("restart", "reaper")
    r.wait(lambda: r.children()["reaper"]["pid"] not in (0, old),
           "a new reaper")
    bad = r.ctl("restart", "nobody", check=False)
    assert bad.returncode == 1
    assert "no child \"nobody\"" in bad.stderr


def test_reload_refuses_a_bad_plugin_and_keeps_serving(running, tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugins)
    r = running(plugins=plugins)
    before = {c: k["pid"] for c, k in r.children().items() if k.get("pid")}
    (plugins / "broken.so").write_text("not a plugin\n")
    res = r.ctl("reload", check=False)
    assert res.returncode == 1
    assert f"{plugins}/broken.so: cannot load" in res.stderr
    assert r.tree()["node"]["generation"] == 1
    after = {c: k["pid"] for c, k in r.children().items() if k.get("pid")}
    assert after == before
    # fixed: the reload goes through and the workers roll
    (plugins / "broken.so").unlink()
    res = r.ctl("reload")
    r.wait(lambda: r.tree()["node"]["generation"] == 2, "generation 2")
    r.wait(lambda: set(r.children()) >= {"worker.3", "worker.4"}
           and all(r.children()[w]["state"] == "running"
                   for w in ("worker.3", "worker.4"))
           and "worker.1" not in r.children(), "rolled workers")


def test_sighup_with_a_bad_config_keeps_running(running, node):
    r = running()
    node.write("[workers]\ncount = many\n", "90-bad.ini")
    r.proc.send_signal(signal.SIGHUP)
    line = r.wait_line(r"reload refused")
    assert "90-bad.ini:2: [workers] count" in line
    assert r.proc.poll() is None
    os.unlink(node.confd / "90-bad.ini")
    node.write("[workers]\ncount = 3\n", "90-more.ini")
    r.proc.send_signal(signal.SIGHUP)
    r.wait(lambda: sum(1 for c, k in r.children().items()
                       if c.startswith("worker.") and k["state"] == "running")
           == 3, "3 workers")


def test_stop_command_stops_everything(running):
    r = running()
    pids = [k["pid"] for k in r.children().values() if k.get("pid")]
    res = r.ctl("stop")
    assert res.returncode == 0
    assert r.proc.wait(timeout=30) == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")
    assert not r.sock.exists()


def test_ctrl_c_stops_the_tree_once(running):
    """Ctrl-C in a terminal (make run) sends SIGINT to the whole process
    group: the root stops the tree in order (a worker finishes its job);
    no child dies of it or takes it as its own stop and gets restarted."""
    r = running(session=True)
    os.killpg(r.proc.pid, signal.SIGINT)
    assert r.proc.wait(timeout=30) == 0
    time.sleep(0.2)  # the last lines of stderr
    log = "".join(r.lines)
    assert "child exited" not in log, log
    assert "signal SIGINT" not in log, log  # each stopped in order
    # ingress.1, two workers, the reaper and the notifier
    assert len([line for line in r.lines if "child started" in line]) == 5


def test_sigterm_and_notify_socket(running, tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(20)
    r = running(env=dict(os.environ, NOTIFY_SOCKET=path))
    got = []
    while "READY=1" not in got or not any(m.startswith("STATUS=")
                                          for m in got):
        got.append(s.recv(4096).decode())
    status = [m for m in got if m.startswith("STATUS=")][0]
    assert re.fullmatch(r"STATUS=generation 1: 5 of 5 children running, "
                        r"0 restarts", status), status
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=30) == 0
    msgs = []
    s.settimeout(1)
    try:
        while True:
            msgs.append(s.recv(4096).decode())
    except socket.timeout:
        pass
    assert "STOPPING=1" in msgs


def test_a_child_failing_permanently_stops_the_node_with_100(node, tmp_path):
    # the storage dir cannot be created: every child fails at start
    blocker = tmp_path / "file"
    blocker.write_text("")
    config(node, extra=f"[storage]\ndir = {blocker}/store\n")
    r = Imgnode(node)
    try:
        assert r.proc.wait(timeout=60) == 100
        r.wait_line(r"unable to create store directory .*/file/store: "
                    r"Not a directory")
        r.wait_line(r"cannot start: storage plugin \"fs\" failed to start")
        r.wait_line(r"failed permanently")
    finally:
        r.close()


def test_children_die_with_a_killed_supervisor(running):
    r = running()
    pids = [k["pid"] for k in r.children().values() if k.get("pid")]
    r.proc.kill()
    r.proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]


def test_in_flight_count_survives_a_killed_ingress(running):
    """Jobs counted by an ingress that is SIGKILLed before hearing of their
    end must not stay 'in flight' (which would end in 429s for good)."""
    import http.client
    r = running()
    port = int(re.search(r"port = (\d+)", r.node.ini.read_text()).group(1))
    photo = corpus_paths("photos")[0]
    body = open(photo, "rb").read()

    def inflight():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        return int(re.search(r"^imgnode_jobs_inflight (\d+)$", text,
                             re.M).group(1))

    for w in range(300, 306):  # about a second of work for two workers
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", f"/v1/jobs?pipeline=thumbnail({w})|sharpen|jpeg",
                  body=body)
        assert c.getresponse().status == 202
    old = r.children()["ingress.1"]["pid"]
    os.kill(old, signal.SIGKILL)
    r.wait(lambda: r.children()["ingress.1"]["pid"] not in (0, old)
           and r.children()["ingress.1"]["state"] == "running",
           "a new ingress")
    r.wait(lambda: inflight() == 0, "nothing in flight")
