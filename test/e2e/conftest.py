"""Shared fixtures for the end-to-end tests: the built daemon and a
throwaway config tree whose plugin_dir is the build's plugins."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("BUILD", "build")
IMGNODE = BUILD / "imgnode"
PLUGINS = BUILD / "plugins"


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


@pytest.fixture
def node(tmp_path):
    tmp_path.chmod(0o755)
    return Node(tmp_path)
