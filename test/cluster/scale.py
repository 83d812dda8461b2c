#!/usr/bin/python3
"""make bench-cluster: the same fixed batch of jobs through 1, 2 and 3
nodes of the three-host cluster (test/lib/cluster), for sizing a real
one. Root only (network namespaces).

For each node count n the nodes 1..n run (the others are stopped, so no
worker of theirs takes a job from the shared queue), and the batch (new,
unique jobs: real photos of the corpus, each with a thumbnail width of
its own) is submitted to those nodes' own addresses in turn by 4
clients that wait for each result. Reported per n: jobs/s over the
batch, CPU-seconds per job of the imgnode nodes (every process in their
hosts' namespaces named imgnode), of RabbitMQ (beam.smp, epmd, the
Erlang helpers) and of Ceph (ceph-mon, ceph-osd), from /proc over the
batch. Every job must end done: a measurement, so no figure is asserted.

This machine has 2 cores for the three hosts' nodes, brokers, monitors
and OSDs: the nodes' throughput stops growing once they have both, which
the table shows; per-job CPU is what carries over to real hosts.

  test/cluster/scale.py [--dir DIR] [--k K] [--jobs N] [--out FILE]"""
import argparse
import collections
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import Cluster, body_of, make_jobs, req, say  # noqa: E402

KINDS = {"imgnode": "imgnode", "beam.smp": "rabbitmq", "epmd": "rabbitmq",
         "erl_child_setup": "rabbitmq", "inet_gethost": "rabbitmq",
         "ceph-mon": "ceph", "ceph-osd": "ceph"}


def cpu_by_kind(k):
    """{kind: CPU seconds so far} of every process in set k's hosts."""
    tick = os.sysconf("SC_CLK_TCK")
    out = collections.Counter()
    for i in (1, 2, 3):
        r = subprocess.run(["ip", "netns", "pids", f"imgn{k}-h{i}"],
                           capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            f = stat.rsplit(")", 1)[1].split()
            kind = KINDS.get(comm)
            if kind:
                out[kind] += (int(f[11]) + int(f[12])) / tick
    return out


def same_jobs(count, shift):
    """The batch: the same photos, pipelines and sizes every time, but
    each output shift pixels wider (no result of an earlier batch is a
    cache hit; 1-3 px more cost nothing measurable)."""
    jobs = make_jobs(count, 200)
    for job in jobs:
        w = 80 + job.n
        job.pipeline = job.pipeline.replace(f"thumbnail({w})",
                                            f"thumbnail({w + shift})")
    return jobs


def settle(k, bound=90):
    """Waits (at most bound seconds) until the nodes are idle: a node just
    started keeps its workers busy for seconds after it is ready (libvips,
    plugins, self-tests), which is no job's cost."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        a = cpu_by_kind(k)["imgnode"]
        time.sleep(2)
        if cpu_by_kind(k)["imgnode"] - a < 0.05:
            return


def batch(cluster, n, jobs, clients=4):
    """Runs jobs through nodes 1..n; (seconds, failures)."""
    todo = collections.deque(jobs)
    lock = threading.Lock()
    bad = []

    def client(c):
        while True:
            with lock:
                if not todo:
                    return
                job = todo.popleft()
            url = cluster.nodes[job.n % n]
            for _ in range(5):
                st, h, data, _ = req(url, "POST", job.path() + "&wait=60",
                                     body_of(job),
                                     {"X-Api-Key": cluster.key,
                                      "Idempotency-Key": job.key})
                if st == 200:
                    break
                time.sleep(1)
            else:
                with lock:
                    bad.append((job.n, st, data[:200]))
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,))
               for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="build/cluster-scale")
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    d = pathlib.Path(a.dir).resolve()
    # a cluster made anew: results of an earlier run would be cache hits
    if (d / "k").exists():
        Cluster(d, a.k).run("down", check=False)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    cluster = Cluster(d, a.k)
    rows, failed = [], False
    try:
        cluster.up()
        say("cluster up")
        # warm-up: every node's workers have started libvips once
        batch(cluster, 3, same_jobs(6, 10))
        for n in (1, 2, 3):
            for i in (1, 2, 3):
                cluster.run("start-node" if i <= n else "stop-node", i)
            settle(a.k)
            jobs = same_jobs(a.jobs, n)
            before = cpu_by_kind(a.k)
            secs, bad = batch(cluster, n, jobs)
            after = cpu_by_kind(a.k)
            cpu = {kind: after[kind] - before[kind]
                   for kind in ("imgnode", "rabbitmq", "ceph")}
            rows.append((n, len(jobs), secs, cpu, len(bad)))
            say(f"{n} node(s): {len(jobs)} jobs in {secs:.1f}s, "
                f"failures {bad[:3]}")
            failed |= bool(bad)
    finally:
        cluster.run("down", check=False)
    lines = [
        f"# The cluster's scale ({time.strftime('%Y-%m-%d')})", "",
        f"`test/cluster/scale.py --jobs {a.jobs}`: the same kind of batch "
        "(new jobs, real photos up to 2 MB, `thumbnail(W)`, W 280-340, to JPEG, "
        "WebP or PNG) through 1, 2 and 3 nodes of the three-host cluster on "
        "one 2-core machine (each node 1 worker; brokers, monitors and "
        "OSDs on all three hosts throughout), 4 clients waiting for each "
        "result. CPU-seconds per job from /proc over the batch.", "",
        "| nodes | jobs | jobs/s | node CPU s/job | RabbitMQ CPU ms/job "
        "| Ceph CPU ms/job | failed |",
        "|---|---|---|---|---|---|---|"]
    for n, count, secs, cpu, bad in rows:
        lines.append(f"| {n} | {count} | {count / secs:.2f} | "
                     f"{cpu['imgnode'] / count:.3f} | "
                     f"{1000 * cpu['rabbitmq'] / count:.0f} | "
                     f"{1000 * cpu['ceph'] / count:.0f} | {bad} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        pathlib.Path(a.out).write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
