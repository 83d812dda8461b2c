#!/usr/bin/python3
"""make check-cluster: the three-host cluster (test/lib/cluster) under
faults, with exact accounting. Root only (network namespaces).

For each scenario a fixed batch of new, unique jobs (real photos of the
corpus, each with its own thumbnail width, so that no result is ever
served from another job's) is released at a steady pace through nginx by
client threads that submit with an Idempotency-Key, retry what the
cluster asks them to retry (409/429/502/503/504/507 and broken
connections, every one counted as a client-visible error, the same key
again) and poll each job until it is over, while the fault happens:

  a  a host SIGKILLed whole (node, broker, monitor, OSD), then started;
     the kill waits (20 s at most) until the host's worker is in the
     middle of a job, whose delivery must then come back elsewhere
  b  a host cut off from the others for 60 s, then healed; meanwhile its
     node, asked directly, must answer 503 (no job accepted alone)
  c  a rolling restart of the three nodes, one at a time (SIGTERM, wait,
     start: a package upgrade): no client-visible error at all
  d  the host holding the job queue's quorum leader killed (mid-job, as
     in a), then started
  e  one OSD filled to Ceph's full ratio, then emptied: 507/503 answers
     while full, each with a JSON error; recovery once space returns

Per scenario it counts jobs accepted, done, failed (with reasons), lost
(accepted, and neither done nor failed after a bounded final wait:
must be 0), processed more than once (a worker ran the job more than
once: more than one "job done|failed id=ID attempt=N" line in the nodes'
debug logs, or a delivery attempt above 1 in the record), client-visible
errors, the longest single request, and the time to full recovery (from
the repair until every node answers /readyz 200, Ceph has its three
mons in quorum and every PG active+clean, every broker runs and sees the
two others, and a new job is done).
Every result is checked against a one-node reference run (spool + fs,
loopback) of the same job: the same bytes, or else the same format and
dimensions. Prints the table; exits 1 if any job is lost or any result
wrong, a job is refused (a 4xx) or never accepted, the cluster never
recovers, or a scenario's own condition fails (b: a 2xx from the cut-off
node, or no 503; c: a client-visible error; e: an answer while full that
is no acceptance nor a 507/503 with a JSON error, or no 507/503).
The cluster is test/lib/cluster's in DIR (default build/cluster, made
afresh), on namespace set K (CLUSTER_K, default 0); it is taken down at
the end, even on failure (--keep leaves it up).

  test/cluster/run.py [--dir DIR] [--k K] [--jobs N] [--only abcde] [--keep]

Counts over fixed work, never throughput: the figures in the table are
measurements to report, not thresholds (except those above)."""
import argparse
import collections
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "e2e"))
from nodelib import (IMGNODE, IMGNODECTL, Node, config,  # noqa: E402
                     corpus_paths, image_size)

CLUSTER = ROOT / "test" / "lib" / "cluster"
RABBIT = ROOT / "test" / "lib" / "rabbitmq-cluster"
CEPH = ROOT / "test" / "lib" / "ceph-cluster"
RETRY = {409, 429, 502, 503, 504, 507}  # 409: the same key still in progress
MAX_PHOTO = 2 * 1024 * 1024   # the larger photos add time, not coverage
# a client gives a submission up after this: past the 5 min after which
# an Idempotency-Key claim left pending (its request failed while the
# storage stalled) is taken for stale; until then retries get 409
SUBMIT_BOUND = 330
FINAL_WAIT = 240              # after recovery, before a job counts lost


def say(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---- HTTP ----

def req(url, method, path, body=None, headers=None, timeout=90):
    """(status, headers, body, seconds); status 0 and the error's name
    when the connection failed."""
    host, port = url.split("//")[1].split(":")
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data, time.monotonic() - t0
    except (OSError, http.client.HTTPException) as e:
        return 0, {}, type(e).__name__.encode(), time.monotonic() - t0


def retry_after(headers):
    try:
        return min(max(float(headers.get("Retry-After", 1)), 0.2), 5)
    except ValueError:
        return 1


def is_json_error(data):
    try:
        body = json.loads(data)
        return bool(body.get("error")) and bool(body.get("detail"))
    except (ValueError, AttributeError):
        return False


# ---- the jobs ----

class Job:
    def __init__(self, n, photo, width, fmt):
        self.n, self.photo = n, photo
        self.pipeline = f"thumbnail({width})|{fmt}"
        self.key = str(uuid.uuid4())
        self.id = None
        self.status = None      # done / failed, once seen
        self.reason = None
        self.record = None

    def path(self):
        q = self.pipeline.replace("(", "%28").replace(")", "%29")
        return "/v1/jobs?pipeline=" + q.replace("|", "%7C")


def make_jobs(count, start):
    """count jobs numbered from start, each of its own width."""
    photos = [p for p in corpus_paths("photos")
              if os.path.getsize(p) <= MAX_PHOTO]
    fmts = ["jpeg(q=80)", "webp(q=70)", "png"]
    return [Job(n, photos[n % len(photos)], 80 + n, fmts[n % len(fmts)])
            for n in range(start, start + count)]


def body_of(job, cache={}):
    if job.photo not in cache:
        cache[job.photo] = pathlib.Path(job.photo).read_bytes()
    return cache[job.photo]


def reference(jobs, where):
    """Every job's result on one node (spool + fs, loopback, 2 workers):
    {job.n: bytes}."""
    where.mkdir(parents=True)
    node = Node(where)
    port = config(node)
    log = open(where / "node.log", "w")
    proc = subprocess.Popen([str(IMGNODE), "-c", str(node.ini)],
                            stderr=log)
    url = f"http://127.0.0.1:{port}"
    out = {}
    try:
        deadline = time.monotonic() + 60
        while req(url, "GET", "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "reference node not ready"
            time.sleep(0.1)
        lock = threading.Lock()
        todo = collections.deque(jobs)

        def run():
            while True:
                with lock:
                    if not todo:
                        return
                    job = todo.popleft()
                for _ in range(3):
                    st, _, data, _ = req(url, "POST", job.path() + "&wait=30",
                                          body_of(job))
                    if st == 200:
                        out[job.n] = data
                        break
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    missing = [j.n for j in jobs if j.n not in out]
    assert not missing, f"the reference node made no result for {missing}"
    return out


# ---- the cluster ----

class Cluster:
    def __init__(self, dir, k):
        self.dir, self.k = dir, k
        self.env = dict(os.environ, CLUSTER_K=str(k))

    def run(self, *args, timeout=600, check=True):
        say("cluster", *args)
        r = subprocess.run([str(CLUSTER), args[0], str(self.dir),
                            *map(str, args[1:])], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"cluster {args}: {r.returncode}\n"
                               f"{r.stdout}{r.stderr}")
        return r.stdout.strip()

    def up(self):
        self.url = self.run("up").splitlines()[-1]
        self.key = self.run("api-key")
        self.nodes = [self.run("node-url", i) for i in (1, 2, 3)]

    def leader(self, queue="imgnode.jobs"):
        r = subprocess.run([str(RABBIT), "leader", str(self.dir / "rabbit"),
                            str(self.k), queue], capture_output=True,
                           text=True, timeout=120, check=True)
        return int(r.stdout.split()[-1])

    def ceph(self, *args):
        say("ceph-cluster", *args)
        subprocess.run([str(CEPH), args[0], str(self.dir / "ceph"),
                        str(self.k), *map(str, args[1:])], check=True,
                       capture_output=True, timeout=600)

    def whole(self):
        """Every mon in quorum, every OSD up and in and none full, every
        PG active+clean (recovery over), every broker running and seeing
        the other two."""
        r = subprocess.run([str(CEPH), "status", str(self.dir / "ceph"),
                            str(self.k)], capture_output=True, text=True,
                           timeout=60)
        want = ["quorum: h1 h2 h3", "up: 0 1 2", "in: 0 1 2", "full: -"]
        clean = re.search(r"^clean: (\d+) of (\d+) PGs", r.stdout, re.M)
        if r.returncode or any(w not in r.stdout.splitlines()
                               for w in want) or not clean or \
                clean.group(1) != clean.group(2):
            return False
        r = subprocess.run([str(RABBIT), "status", str(self.dir / "rabbit"),
                            str(self.k)], capture_output=True, text=True,
                           timeout=60)
        lines = r.stdout.splitlines()
        return r.returncode == 0 and len(lines) == 3 and all(
            re.match(r"\d running members=1,2,3 ", line) for line in lines)

    def busy(self, i, bound=20):
        """Waits (at most bound seconds) until a worker of node i is in
        the middle of a job: its CPU time grows by 30 ms within 50 ms (an
        idle worker sleeps on the broker). True if it saw one."""
        r = subprocess.run([str(IMGNODECTL), "-s",
                            str(self.dir / f"h{i}" / "run" / "control.sock"),
                            "--json", "status"], capture_output=True,
                           text=True, timeout=30)
        pids = []

        def walk(n):
            for c in n.get("children", []):
                if c["id"].startswith("worker.") and c.get("pid"):
                    pids.append(c["pid"])
                walk(c)
        if r.returncode == 0:
            walk(json.loads(r.stdout)["tree"])

        def cpu(pid):
            try:
                f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1]
                return sum(int(x) for x in f.split()[11:13])
            except (OSError, ValueError, IndexError):
                return 0
        tick = os.sysconf("SC_CLK_TCK")
        deadline = time.monotonic() + bound
        while pids and time.monotonic() < deadline:
            before = [cpu(p) for p in pids]
            time.sleep(0.05)
            if any(cpu(p) - b >= 0.03 * tick for p, b in zip(pids, before)):
                return True
        return False

    def services(self):
        """RabbitMQ's and Ceph's status lines, joined."""
        out = []
        for script, sub in ((RABBIT, "rabbit"), (CEPH, "ceph")):
            r = subprocess.run([str(script), "status", str(self.dir / sub),
                                str(self.k)], capture_output=True,
                               text=True, timeout=60)
            out += r.stdout.splitlines()
        return "; ".join(out)

    def ready(self, i):
        return req(self.nodes[i - 1], "GET", "/readyz", timeout=5)[0] == 200

    def logs(self):
        return "".join((self.dir / f"h{i}" / "node.log").read_text(
            errors="replace") for i in (1, 2, 3)
            if (self.dir / f"h{i}" / "node.log").exists())


# ---- one scenario ----

class Load:
    """A fixed batch released over `span` seconds through nginx by
    `threads` submitters; pollers follow each accepted job to its end."""

    def __init__(self, cluster, jobs, span, threads=4, pollers=3):
        self.c, self.jobs, self.span = cluster, jobs, span
        self.lock = threading.Lock()
        self.errors = collections.Counter()   # client-visible, by kind
        self.longest = 0.0                     # one request
        self.slowest = 0.0                     # retries until accepted
        self.unaccepted = []                   # (job, last answer)
        self.rejected = []                     # 4xx other than 429
        self.pending = collections.deque()
        self.submitting = True
        self.stopped = False
        self.t0 = time.monotonic()
        self.next = 0
        self.submitters = [threading.Thread(target=self.submitter,
                                            daemon=True)
                           for _ in range(threads)]
        self.threads = self.submitters + [
            threading.Thread(target=self.poller, daemon=True)
            for _ in range(pollers)]
        for t in self.threads:
            t.start()

    def headers(self, job=None):
        h = {"X-Api-Key": self.c.key}
        if job:
            h["Idempotency-Key"] = job.key
        return h

    def call(self, what, method, path, body=None, job=None):
        st, hd, data, secs = req(self.c.url, method, path, body,
                                  self.headers(job))
        with self.lock:
            self.longest = max(self.longest, secs)
            if st == 0 or st in RETRY or st >= 500:
                self.errors[f"{what} {st or data.decode()}"] += 1
        return st, hd, data

    def submitter(self):
        while True:
            with self.lock:
                if self.next >= len(self.jobs):
                    return
                job = self.jobs[self.next]
                release = self.t0 + self.span * self.next / len(self.jobs)
                self.next += 1
            time.sleep(max(0, release - time.monotonic()))
            self.submit(job)

    def submit(self, job):
        t0 = time.monotonic()
        deadline = t0 + SUBMIT_BOUND
        while True:
            st, hd, data = self.call("submit", "POST", job.path(),
                                     body_of(job), job)
            if st in (200, 202):
                job.id = json.loads(data)["id"] if st == 202 \
                    else hd["X-Imgnode-Job"]
                with self.lock:
                    self.pending.append(job)
                    self.slowest = max(self.slowest, time.monotonic() - t0)
                return
            if st and st not in RETRY and st < 500:
                with self.lock:
                    self.rejected.append((job, st, data[:200]))
                return
            if time.monotonic() > deadline:
                with self.lock:
                    self.unaccepted.append((job, st, data[:200]))
                return
            time.sleep(retry_after(hd) if st else 1)

    def poll(self, job):
        st, _, data = self.call("poll", "GET", f"/v1/jobs/{job.id}")
        if st == 200:
            rec = json.loads(data)
            if rec["status"] in ("done", "failed"):
                job.status, job.record = rec["status"], rec
                job.reason = rec.get("error")
                return True
        elif st == 404:
            with self.lock:
                self.errors["poll 404"] += 1
        return False

    def poller(self):
        while True:
            with self.lock:
                job = self.pending.popleft() if self.pending else None
                if self.stopped or (job is None and not self.submitting):
                    return
            if job is None:
                time.sleep(0.2)
                continue
            if not self.poll(job):
                time.sleep(0.3)
                with self.lock:
                    self.pending.append(job)

    def join(self):
        for t in self.submitters:
            t.join()
        self.submitting = False

    def settle(self, bound):
        """Until every accepted job is over, for at most bound seconds
        (then the rest are lost)."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending and not any(
                        t.is_alive() for t in self.threads):
                    return
            time.sleep(0.5)
        self.stopped = True


def recover(cluster, since, canary):
    """Seconds from since until every node is ready, the services whole
    again and a new job went through nginx to done (bounded: None if
    never)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if all(cluster.ready(i) for i in (1, 2, 3)) and cluster.whole():
            st, _, _, _ = req(cluster.url, "POST", canary.path() + "&wait=30",
                               body_of(canary),
                               {"X-Api-Key": cluster.key,
                                "Idempotency-Key": canary.key})
            if st == 200:
                return time.monotonic() - since
        time.sleep(0.5)
    return None


def probe(cluster, url, jobs, until, seen, bad):
    """Asks url (a node directly, or nginx) to take jobs, one every 2 s
    until `until`; tallies the answers in seen, and in bad those that are
    neither an acceptance nor a 503/507 with a JSON error. The jobs
    accepted are returned (to be accounted like any other)."""
    accepted = []
    i = 0
    while time.monotonic() < until and i < len(jobs):
        job = jobs[i]
        st, hd, data, _ = req(url, "POST", job.path(), body_of(job),
                              {"X-Api-Key": cluster.key,
                               "Idempotency-Key": job.key})
        seen[st] += 1
        if st in (200, 202):
            job.id = json.loads(data)["id"] if st == 202 \
                else hd["X-Imgnode-Job"]
            accepted.append(job)
            i += 1
        elif st not in (503, 507) or not is_json_error(data):
            bad.append((st, data[:120]))
        else:
            seen[f"{st} {json.loads(data)['detail']}"] += 1
        time.sleep(2)
    return accepted


def tally(seen):
    """'503x4 202x0' of the statuses seen; the details are printed
    under the table."""
    return " ".join(f"{k or 'conn'}x{v}" for k, v in sorted(
        (k, v) for k, v in seen.items() if isinstance(k, int)))


SCENARIOS = {
    "a": "host killed whole, then started",
    "b": "host cut off 60 s, then healed",
    "c": "rolling restart of the three nodes",
    "d": "quorum leader's host killed",
    "e": "one OSD filled to the full ratio",
}


def scenario(cluster, name, jobs, probes, canary):
    """Runs one scenario; returns its row (a dict)."""
    span = {"b": 90, "e": 80}.get(name, 60)
    row = {"name": name, "what": SCENARIOS[name], "extra": ""}
    say(f"scenario {name}: {SCENARIOS[name]}: {len(jobs)} jobs over {span}s")
    load = Load(cluster, jobs, span)
    probed = []
    t = lambda: time.monotonic() - load.t0  # noqa: E731
    wait_until = lambda s: time.sleep(max(0, s - t()))  # noqa: E731
    if name in ("a", "d"):
        host = cluster.leader() if name == "d" else 3
        wait_until(12)
        # mid-job if it can: the job's delivery must come back elsewhere
        busy = cluster.busy(host)
        cluster.run("kill-host", host)
        row["extra"] = f"host {host}" + (", its worker busy" if busy
                                         else ", its worker idle")
        wait_until(35)
        repaired = time.monotonic()
        cluster.run("start-host", host)
    elif name == "b":
        host = 3
        wait_until(10)
        cluster.run("cut-host", host)
        seen, bad = collections.Counter(), []
        # the minority's answers from the first second of the cut on,
        # before pause_minority and the mons' election have seen it (a
        # write needs 2 of 3 OSDs, a confirmed publish 2 of 3 brokers)
        wait_until(11)
        probed = probe(cluster, cluster.nodes[host - 1], probes,
                       load.t0 + 66, seen, bad)
        # what the services made of it, as they say
        row["during"] = cluster.services()
        wait_until(70)
        repaired = time.monotonic()
        cluster.run("heal-host", host)
        row["extra"] = "cut node: " + tally(seen)
        row["said"] = [k for k in seen if isinstance(k, str)]
        row["minority_ok"] = not probed and not bad and seen[503] > 0
        row["unclear"] = bad
    elif name == "c":
        wait_until(8)
        for host in (1, 2, 3):
            repaired = time.monotonic()
            cluster.run("restart-node", host)
            time.sleep(5)
    elif name == "e":
        wait_until(5)
        cluster.ceph("fill", 2)
        seen, bad = collections.Counter(), []
        # new jobs while it is full: refused clearly, or taken and kept
        probed = probe(cluster, cluster.url, probes,
                       time.monotonic() + 20, seen, bad)
        repaired = time.monotonic()
        cluster.ceph("unfill", 2)
        row["extra"] = "while full: " + tally(seen)
        row["said"] = [k for k in seen if isinstance(k, str)]
        row["full_ok"] = not bad and (seen[507] + seen[503]) > 0
        row["unclear"] = bad
    # recovery is timed from the repair's start (c: the last restart's),
    # while the load goes on
    row["recovery"] = recover(cluster, repaired, canary)
    load.join()
    load.settle(FINAL_WAIT)
    for job in probed:  # jobs the probes got accepted, if any
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not load.poll(job):
            time.sleep(0.5)
    row["load"], row["jobs"] = load, [j for j in jobs + probed if j.id]
    return row


# ---- accounting ----

def account(row, ref, cluster, logs):
    load, jobs = row["load"], row["jobs"]
    done = [j for j in jobs if j.status == "done"]
    failed = [j for j in jobs if j.status == "failed"]
    lost = [j for j in jobs if j.status is None]
    runs = collections.Counter(
        m.group(1) for m in re.finditer(
            r"worker: job (?:done|failed) id=([0-9a-f]+) attempt=\d+", logs))
    again = [j for j in jobs if runs[j.id] > 1 or
             (j.record or {}).get("attempts", 1) > 1]
    # the signal must see every job a worker finished
    unseen = [j.id for j in done + failed if not runs[j.id]]
    same = dims = wrong = 0
    wrongs = []
    for j in done:
        st, _, data, _ = req(cluster.url, "GET", f"/v1/jobs/{j.id}/result",
                              headers={"X-Api-Key": cluster.key})
        want = ref[j.n]
        if st == 200 and data == want:
            same += 1
        elif st == 200 and image_size(data) == image_size(want):
            dims += 1
        else:
            wrong += 1
            wrongs.append((j.id, j.pipeline, st))
    row.update(accepted=len(jobs), done=len(done), failed=len(failed),
               lost=len(lost), again=len(again), same=same, dims=dims,
               wrong=wrong, wrongs=wrongs, errors=sum(load.errors.values()),
               kinds=dict(load.errors), longest=load.longest,
               slowest=load.slowest,
               unaccepted=load.unaccepted, rejected=load.rejected,
               reasons=collections.Counter(j.reason for j in failed),
               lost_ids=[j.id for j in lost], unseen=unseen,
               again_ids=[(j.id, (j.record or {}).get("attempts"), runs[j.id])
                          for j in again])
    return row


LEGEND = """\
again: processed more than once; same/dims: results equal to the one-node
reference byte for byte / in format and size only; errors: client-visible,
each one retried; longest: the longest single request; accept: the longest
a job took to be accepted, its retries included; recovery: from the repair
until the cluster is whole again and a new job is done
"""


def table(rows):
    head = ("scen accepted done failed lost again same/dims wrong "
            "errors longest  accept recovery  fault")
    print(head)
    for r in rows:
        rec = f"{r['recovery']:.1f}s" if r["recovery"] is not None else "never"
        print(f"{r['name']:<4} {r['accepted']:>8} {r['done']:>4} "
              f"{r['failed']:>6} {r['lost']:>4} {r['again']:>5} "
              f"{r['same']:>4}/{r['dims']:<4} {r['wrong']:>5} "
              f"{r['errors']:>6} {r['longest']:>6.1f}s "
              f"{r['slowest']:>6.1f}s {rec:>8}  "
              f"{r['what']}; {r['extra']}")
    for r in rows:
        print(f"{r['name']}: lost {r['lost']}" + (
            f" (never over: {' '.join(r['lost_ids'])})" if r["lost"] else ""))
        if r["kinds"]:
            print("   client-visible errors: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(r["kinds"].items())))
        if r["reasons"]:
            print("   failed: " + "; ".join(
                f"{k} x{v}" for k, v in r["reasons"].items()))
        for job, st, data in r["unaccepted"]:
            print(f"   never accepted within {SUBMIT_BOUND}s: "
                  f"{job.pipeline} (Idempotency-Key {job.key}), last "
                  f"answer {st} {data!r}")
        for job, st, data in r["rejected"]:
            print(f"   refused {st}: {job.pipeline}: {data!r}")
        for job, attempts, ran in r["again_ids"]:
            print(f"   processed more than once: {job}: delivery attempt "
                  f"{attempts}, {ran} finished runs in the logs")
        if r["unseen"]:
            print(f"   no worker log line for {len(r['unseen'])} finished "
                  "jobs: 'again' may be undercounted")
        for w in r["wrongs"]:
            print(f"   WRONG result: {w}")
        if r.get("during"):
            print(f"   services during the cut: {r['during']}")
        for said in r.get("said", []):
            print(f"   answered: {said}")
        if r.get("unclear"):
            print(f"   unclear answers: {r['unclear']}")


def verdict(rows):
    bad = []
    for r in rows:
        if r["lost"]:
            bad.append(f"{r['name']}: {r['lost']} lost")
        if r["wrong"]:
            bad.append(f"{r['name']}: {r['wrong']} wrong results")
        if r["rejected"]:
            bad.append(f"{r['name']}: {len(r['rejected'])} refused")
        if r["unaccepted"]:
            bad.append(f"{r['name']}: {len(r['unaccepted'])} never "
                       "accepted")
        if r["recovery"] is None:
            bad.append(f"{r['name']}: never recovered")
        if r["name"] == "b" and not r["minority_ok"]:
            bad.append("b: the cut-off node did not answer 503 alone")
        if r["name"] == "c" and r["errors"]:
            bad.append("c: client-visible errors in a rolling restart")
        if r["name"] == "e" and not r["full_ok"]:
            bad.append("e: a full cluster's answers were not clear 507/503")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=str(ROOT / "build" / "cluster"))
    ap.add_argument("--k", type=int,
                    default=int(os.environ.get("CLUSTER_K", 0)))
    ap.add_argument("--jobs", type=int, default=48)
    ap.add_argument("--only", default="acdbe")
    ap.add_argument("--keep", action="store_true",
                    help="leave the cluster up (test/lib/cluster down DIR)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("check-cluster: network namespaces need root")
    where = pathlib.Path(a.dir)
    cluster = Cluster(where, a.k)
    if where.exists():
        if (where / "k").exists():
            cluster.run("down", check=False)
        shutil.rmtree(where)
    where.mkdir(parents=True)
    plan, n = {}, 0
    for name in a.only:
        plan[name] = (make_jobs(a.jobs, n), make_jobs(8, n + a.jobs),
                      make_jobs(1, n + a.jobs + 8)[0])
        n += a.jobs + 9
    every = [j for jobs, probes, canary in plan.values()
             for j in jobs + probes + [canary]]
    t_start = time.monotonic()
    ref, err = {}, []

    def ref_run():
        try:
            ref.update(reference(every, where / "reference"))
        except Exception as e:  # reported below
            err.append(e)
    # the reference node runs while the cluster comes up
    rt = threading.Thread(target=ref_run)
    rt.start()
    rows = []
    try:
        t = time.monotonic()
        cluster.up()
        say(f"cluster up in {time.monotonic() - t:.0f}s at {cluster.url}")
        rt.join()
        if err:
            raise err[0]
        say(f"reference: {len(ref)} results")
        for name in a.only:
            jobs, probes, canary = plan[name]
            row = scenario(cluster, name, jobs, probes, canary)
            rows.append(account(row, ref, cluster, cluster.logs()))
            table(rows[-1:])
    finally:
        rt.join()
        if not a.keep:
            cluster.run("down", check=False)
    print()
    print(LEGEND)
    table(rows)
    bad = verdict(rows)
    mins = (time.monotonic() - t_start) / 60
    if bad:
        print(f"check-cluster: FAILED ({mins:.1f} min): " + "; ".join(bad))
        return 1
    print(f"check-cluster: {len(rows)} scenarios, lost 0 in each, every "
          f"result checked ({mins:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
