"""imgnodectl submit: batch work against a real node's HTTP API, with the
corpus's photos. Folders, stdin lists, several pipelines, resuming, the
node's reasons for failures, --json lines, retries of 429, API keys, and
the progress bar drawn on a pseudo-terminal."""
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time

import pytest

from nodelib import BUILD, corpus, image_size, start

CTL = BUILD / "imgnodectl"
PHOTOS = ("fossa.jpg", "xfce-blue.jpg", "xfce-teal.jpg", "wine.jpg",
          "friends.jpg", "painting-colors.jpg")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("submit"), max_body="16M")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def photos():
    return corpus("photos")


@pytest.fixture
def folder(tmp_path, photos):
    """in/: four photos at the top, two in in/sub/, and a text file."""
    top = tmp_path / "in"
    (top / "sub").mkdir(parents=True)
    for i, name in enumerate(PHOTOS):
        shutil.copy(photos[name], top / ("sub" if i >= 4 else "") / name)
    (top / "notes.txt").write_text("not an image\n")
    return top


def submit(node, *args, stdin=None, env=None, timeout=300):
    return subprocess.run([str(CTL), "submit", "--url", node.url, *args],
                          input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


def outputs(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.is_file())


def stem(name):
    return name.rsplit(".", 1)[0]


def test_a_folder_of_photos(node, folder, tmp_path):
    out = tmp_path / "out"
    r = submit(node, "-p", "thumbnail(200)|webp", "-o", str(out), "-j", "3",
               str(folder))
    assert r.returncode == 0, r.stderr
    want = sorted(("sub/" if i >= 4 else "") + stem(n) + ".webp"
                  for i, n in enumerate(PHOTOS))
    # only the images, each where its input was, no temp file left
    assert outputs(out) == want
    for rel in want:
        fmt, w, h = image_size((out / rel).read_bytes())
        assert fmt == "webp" and w == 200 and 0 < h <= 200 * 2, (rel, w, h)
    # not a terminal: a line per input, then the summary
    done = [ln for ln in r.stderr.splitlines() if ln.startswith("done ")]
    assert len(done) == len(PHOTOS), r.stderr
    assert f"{len(PHOTOS)} done, 0 failed, 0 skipped" in r.stderr
    assert r.stdout == ""


def test_resume_skips_what_is_there(node, folder, tmp_path):
    out = tmp_path / "out"
    args = ("-p", "thumbnail(120)|jpeg", "-o", str(out), str(folder))
    assert submit(node, *args).returncode == 0
    before = {p: (out / p).stat().st_mtime_ns for p in outputs(out)}
    assert len(before) == len(PHOTOS)

    r = submit(node, *args)
    assert r.returncode == 0, r.stderr
    assert f"0 done, 0 failed, {len(PHOTOS)} skipped" in r.stderr
    assert not [ln for ln in r.stderr.splitlines() if ln.startswith("done")]
    assert {p: (out / p).stat().st_mtime_ns for p in outputs(out)} == before

    # one output gone (and a half file of an interrupted run): only it
    (out / "wine.jpg").unlink()
    (out / ".fossa.AbC123.part").write_bytes(b"half")
    r = submit(node, *args)
    assert r.returncode == 0, r.stderr
    assert f"1 done, 0 failed, {len(PHOTOS) - 1} skipped" in r.stderr
    fmt, w, _ = image_size((out / "wine.jpg").read_bytes())
    assert (fmt, w) == ("jpeg", 120)


def test_a_bad_file_fails_with_the_nodes_reason(node, folder, tmp_path):
    (folder / "broken.jpg").write_bytes(b"this is no JPEG at all" * 10)
    out = tmp_path / "out"
    r = submit(node, "-p", "thumbnail(64)|png", "-o", str(out), str(folder))
    assert r.returncode == 1, r.stderr
    # the node's own error and detail for that upload
    direct = node.submit((folder / "broken.jpg").read_bytes(),
                         pipeline="thumbnail(64)|png")
    body = direct.json()
    reason = f"HTTP {direct.status_code} {body['error']}: {body['detail']}"
    assert direct.status_code == 415
    assert f"{len(PHOTOS)} done, 1 failed" in r.stderr
    summary = r.stderr[r.stderr.index("failed:\n"):]
    assert f"{folder}/broken.jpg [thumbnail(64)|png]: {reason}" in summary
    assert not (out / "broken.png").exists()
    assert len(outputs(out)) == len(PHOTOS)


def test_paths_on_stdin(node, photos, tmp_path):
    out = tmp_path / "out"
    names = PHOTOS[:3]
    listing = "".join(photos[n] + "\n" for n in names) + "\n"
    r = submit(node, "-p", "thumbnail(90)|png", "-o", str(out), "-",
               stdin=listing)
    assert r.returncode == 0, r.stderr
    assert outputs(out) == sorted(stem(n) + ".png" for n in names)
    for n in names:
        fmt, w, _ = image_size((out / (stem(n) + ".png")).read_bytes())
        assert (fmt, w) == ("png", 90)


def test_json_lines(node, folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "out"
    r = submit(node, "--json", "-p", "thumbnail(50)|webp", "-o", str(out),
               str(folder / "broken.png"), str(folder / "sub"))
    assert r.returncode == 1, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(lines) == 3
    by = {os.path.basename(j["input"]): j for j in lines}
    for n in PHOTOS[4:]:
        j = by[n]
        assert j["status"] == "done" and j["error"] is None, j
        assert j["pipeline"] == "thumbnail(50)|webp" and j["preset"] is None
        assert j["output"] == f"{out}/{stem(n)}.webp"
        assert re.fullmatch(r"[0-9a-f]{32}", j["job"]), j
        assert j["bytes"] == os.path.getsize(j["output"]) > 0
        assert j["http"] == 200
    bad = by["broken.png"]
    assert bad["status"] == "failed" and bad["output"] is None
    assert bad["http"] in (415, 422) and bad["error"].startswith(
        f"HTTP {bad['http']} "), bad
    # again: the done ones are skipped, named as such
    r = submit(node, "--json", "-p", "thumbnail(50)|webp", "-o", str(out),
               str(folder / "sub"))
    assert r.returncode == 0
    assert [json.loads(ln)["status"] for ln in r.stdout.splitlines()] \
        == ["skipped", "skipped"]


def test_several_pipelines(node, photos, tmp_path):
    out = tmp_path / "out"
    names = PHOTOS[:2]
    r = submit(node, "-p", "thumbnail(100)|png", "--preset", "thumb",
               "-p", "thumbnail(30)", "-o", str(out),
               *(photos[n] for n in names))
    assert r.returncode == 0, r.stderr
    want = []
    for n in names:
        want += [f"{stem(n)}.thumbnail100-png.png", f"{stem(n)}.thumb.webp",
                 f"{stem(n)}.thumbnail30.jpg"]
    assert outputs(out) == sorted(want)
    for n in names:
        # preset thumb = thumbnail(64) | webp(q=50); no encoder: the input's
        assert image_size((out / f"{stem(n)}.thumb.webp").read_bytes())[:2] \
            == ("webp", 64)
        assert image_size((out / f"{stem(n)}.thumbnail30.jpg")
                          .read_bytes())[:2] == ("jpeg", 30)
        assert image_size((out / f"{stem(n)}.thumbnail100-png.png")
                          .read_bytes())[:2] == ("png", 100)


def test_two_inputs_for_one_output_is_a_usage_error(node, photos, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(photos["fossa.jpg"], a / "x.jpg")
    shutil.copy(photos["wine.jpg"], b / "x.jpg")
    r = submit(node, "-p", "png", "-o", str(tmp_path / "out"),
               str(a / "x.jpg"), str(b / "x.jpg"))
    assert r.returncode == 100
    assert "would both be written to" in r.stderr
    assert not (tmp_path / "out" / "x.png").exists()


def test_usage_and_unreachable(tmp_path, photos):
    p = photos["fossa.jpg"]
    for args, why in ((["-o", str(tmp_path), p], "no pipeline"),
                      (["-p", "png", p], "no output folder"),
                      (["-p", "png", "-o", str(tmp_path)], "no input"),
                      (["-p", "png", "-o", str(tmp_path), "-j", "0", p],
                       "-j wants")):
        r = subprocess.run([str(CTL), "submit", *args], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 100 and why in r.stderr, (args, r.stderr)
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, no listener
        r = subprocess.run([str(CTL), "submit", "--url", url, "-p", "png",
                            "-o", str(tmp_path / "o"), p],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 111, r.stderr
    assert f"cannot reach the node at {url}" in r.stderr


def test_429_is_retried_after_retry_after(own, photos, tmp_path):
    """A node that takes one job at a time: -j 3 gets 429s, waits as told,
    and every input is done in the end. (The jobs take a while, avif, so
    that the three uploads, sent at once, meet one in flight.)"""
    s = own(max_inflight=1, max_body="16M")
    out = tmp_path / "out"
    names = PHOTOS[:3]
    r = submit(s, "--json", "-j", "3", "--wait", "20", "--retries", "20",
               "-p", "thumbnail(600)|sharpen|avif", "-o", str(out),
               *(photos[n] for n in names))
    assert r.returncode == 0, r.stderr
    assert outputs(out) == sorted(stem(n) + ".avif" for n in names)
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [j["status"] for j in lines] == ["done"] * 3
    assert sum(j["retries"] for j in lines) >= 1, lines
    # and with no retries allowed, the 429 is the failure's reason
    r = submit(s, "-j", "3", "--retries", "0", "-p",
               "thumbnail(601)|sharpen|avif",
               "-o", str(tmp_path / "o2"), *(photos[n] for n in names))
    assert r.returncode == 1, r.stderr
    assert "HTTP 429 too many jobs" in r.stderr


def test_api_key_from_the_environment(own, photos, tmp_path):
    s = own(api_keys="alice:sekrit-key-1", max_body="16M")
    p = photos["fossa.jpg"]
    r = submit(s, "-p", "thumbnail(20)|png", "-o", str(tmp_path / "a"), p)
    assert r.returncode == 1 and "HTTP 401 unauthorized" in r.stderr
    env = dict(os.environ, IMGNODE_API_KEY="sekrit-key-1")
    r = submit(s, "-p", "thumbnail(20)|png", "-o", str(tmp_path / "b"), p,
               env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "fossa.png").exists()
    assert "sekrit" not in r.stderr + r.stdout


def read_pty(fd, proc, timeout=300):
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
        elif proc.poll() is not None:
            break
    return got.decode(errors="replace")


def test_progress_bar_on_a_terminal(node, folder, tmp_path):
    out = tmp_path / "out"
    main, sub = pty.openpty()
    proc = subprocess.Popen([str(CTL), "submit", "--url", node.url, "-p",
                             "thumbnail(150)|webp", "-j", "2", "-o",
                             str(out), str(folder)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=sub)
    os.close(sub)
    text = read_pty(main, proc)
    os.close(main)
    assert proc.wait(timeout=60) == 0, text
    n = len(PHOTOS)
    # redrawn in place: carriage returns and erase-line, a bar each time
    frames = [f for f in re.split(r"\r\x1b\[K", text) if f.strip()]
    assert len(frames) >= 2, text
    counts = [tuple(map(int, m.groups())) for m in
              (re.search(r" (\d+)/(\d+) +\d+%", f) for f in frames) if m]
    assert counts[0] == (0, n), text
    assert all(t == n for _, t in counts)
    assert [c for c, _ in counts] == sorted(c for c, _ in counts)
    last = [f for f in frames if re.search(r" \d+/\d+ ", f)][-1]
    assert f" {n}/{n} 100% " in last and "[" + "#" * 10 in last, last
    assert "0 failed" in last
    # no line per file on a terminal; the summary after the bar
    assert "\ndone " not in text
    assert f"{n} done, 0 failed" in text
    assert proc.stdout.read() == b""


def test_interrupted_leaves_no_half_file_and_resumes(node, folder, tmp_path):
    out = tmp_path / "out"
    args = ["-p", "thumbnail(1000)|sharpen|avif", "-j", "2", "-o", str(out),
            str(folder)]
    proc = subprocess.Popen([str(CTL), "submit", "--url", node.url, *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # the first input done: others in flight
    assert first.startswith("done "), first
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert re.search(r"^imgnodectl: submit: interrupted with [1-9]\d* not "
                     r"done; run the same command again to resume$",
                     rest, re.M), rest
    made = outputs(out)
    assert all(not os.path.basename(p).startswith(".") for p in made), made
    assert 1 <= len(made) < len(PHOTOS), made
    r = submit(node, *args)
    assert r.returncode == 0, r.stderr
    assert f"{len(PHOTOS) - len(made)} done, 0 failed, {len(made)} skipped" \
        in r.stderr
    assert len(outputs(out)) == len(PHOTOS)


def test_signed_requests(own, photos, tmp_path):
    """With hmac_keys every upload is signed (v2, docs/signing.md); with
    --wait 0 the result is fetched by signed GETs too."""
    s = own(hmac_keys="k1:0123456789abcdef-secret", api_keys="alice:key-a",
            max_body="16M")
    p = photos["fossa.jpg"]
    env = dict(os.environ, IMGNODE_API_KEY="key-a")
    r = submit(s, "-p", "thumbnail(24)|png", "-o", str(tmp_path / "a"), p,
               env=env)
    assert r.returncode == 1
    assert "HTTP 403 bad signature" in r.stderr, r.stderr
    env["IMGNODE_HMAC_KEY"] = "k1:0123456789abcdef-secret"
    r = submit(s, "--json", "--wait", "0", "-p", "thumbnail(24)|png",
               "--preset", "tiny", "-o", str(tmp_path / "b"), p, env=env)
    assert r.returncode == 0, r.stderr
    assert outputs(tmp_path / "b") == ["fossa.thumbnail24-png.png",
                                       "fossa.tiny.png"]
    assert "secret" not in r.stderr + r.stdout
    r = submit(s, "-p", "thumbnail(25)|png", "-o", str(tmp_path / "c"), p,
               "--hmac-key", "k1:not-the-secret-at-all", env=env)
    assert r.returncode == 1 and "HTTP 403 bad signature" in r.stderr


def test_the_url_from_the_config(node, photos, tmp_path):
    r = subprocess.run([str(CTL), "-c", str(node.node.ini), "submit",
                        "--preset", "tiny", "-o", str(tmp_path),
                        photos["wine.jpg"]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert image_size((tmp_path / "wine.png").read_bytes())[:2] \
        == ("png", 16)


def test_folder_walk_skips_links_to_folders_and_the_output(node, folder):
    (folder / "loop").symlink_to(folder)  # would loop for ever
    (folder / "linked.jpg").symlink_to(folder / "wine.jpg")  # a file: sent
    out = folder / "out"  # the results inside the folder given
    args = ("-p", "thumbnail(32)|png", "-o", str(out), str(folder))
    r = submit(node, *args)
    assert r.returncode == 0, r.stderr
    assert f"not following {folder}/loop, a link to a folder" in r.stderr
    assert len(outputs(out)) == len(PHOTOS) + 1
    assert (out / "linked.png").exists()
    r = submit(node, *args)  # out/*.png are not inputs now
    assert r.returncode == 0, r.stderr
    assert f"0 done, 0 failed, {len(PHOTOS) + 1} skipped" in r.stderr
