"""Hostile and corrupt inputs from the corpus (known-malicious files,
decompression bombs, fuzzed and truncated images) through the workers'
code (imgnodectl process): each one gives a clean one-line error or a
decoded image, in bounded time and memory, and never a crash."""
import os
import resource
import subprocess

import pytest

from nodelib import IMGNODECTL, PLUGINS, corpus_paths

# ASan reserves terabytes of address space: no RLIMIT_AS under SAN=1
MEMORY = None if os.environ.get("SAN") == "1" else 2 << 30


def limited():
    if MEMORY:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


@pytest.fixture(scope="module")
def ini(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "imgnode.ini"
    path.write_text(f"[node]\nplugin_dir = {PLUGINS}\n")
    return path


def run(ini, path, pipeline, out):
    return subprocess.run(
        [str(IMGNODECTL), "-c", str(ini), "process", path, pipeline,
         str(out)], capture_output=True, text=True, timeout=60,
        preexec_fn=limited)


@pytest.mark.parametrize("category", ["hostile", "corrupt"])
def test_every_bad_file_fails_cleanly_or_decodes(ini, tmp_path, category):
    outcomes = {}
    for path in corpus_paths(category):
        r = run(ini, path, "thumbnail(256)|jpeg", tmp_path / "out.jpg")
        name = os.path.basename(path)
        # a negative code is a signal: a crash
        assert r.returncode in (0, 1), (name, r.returncode, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1, (name, r.stderr)
        if r.returncode:
            assert lines[0].startswith(f"imgnodectl: {path}: "), lines[0]
        outcomes[name] = r.returncode
    # the hostile set is there to be refused: most of it must be
    if category == "hostile":
        assert sum(outcomes.values()) >= len(outcomes) * 3 // 4, outcomes


@pytest.mark.parametrize("name,message", [
    ("large.jpg", "image is 22500x33300 (749 Mpx), limit is 30 Mpx"),
    ("large.png", "image is 25200x33300 (839 Mpx), limit is 100 Mpx"),
    ("issue205.jpg", "image is 64250x64250 (4128 Mpx), limit is"),
    ("cve-2015-4491.bmp", "unsupported format: bmp (blocked; accepted:"),
])
def test_bombs_are_refused_from_the_header(ini, tmp_path, name, message):
    path = [p for p in corpus_paths("hostile") if p.endswith("/" + name)][0]
    r = run(ini, path, "thumbnail(256)|jpeg", tmp_path / "out.jpg")
    assert r.returncode == 1
    assert message in r.stderr, r.stderr


def test_truncated_jpeg_is_named_corrupt(ini, tmp_path):
    photo = corpus_paths("photos")[0]
    data = open(photo, "rb").read()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    r = run(ini, str(cut), "thumbnail(256)|jpeg", tmp_path / "out.jpg")
    assert r.returncode == 1
    assert f"imgnodectl: {cut}: corrupt jpeg: " in r.stderr, r.stderr


def test_process_summary_line(ini, tmp_path):
    photo = corpus_paths("photos")[0]
    r = run(ini, photo, "thumbnail(800)|sharpen|webp(q=75)",
            tmp_path / "out.webp")
    assert r.returncode == 0, r.stderr
    import re
    assert re.fullmatch(r"jpeg \d+x\d+ [\d.]+ (KiB|MiB) -> webp 800x\d+ "
                        r"[\d.]+ (KiB|B) in [\d.]+ ms\n", r.stderr), r.stderr
    assert (tmp_path / "out.webp").read_bytes()[8:12] == b"WEBP"
