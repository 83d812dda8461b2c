"""imgnode's command line: -t catches every class of config error with
FILE:LINE and exit code 100, -T prints a config that reads back, the
shipped config is what --print-defaults generates, and a running node
reloads on SIGHUP and stops on SIGTERM."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from nodelib import IMGNODE, PLUGINS, ROOT, free_port


def test_version_and_help():
    out = subprocess.run([str(IMGNODE), "-V"], capture_output=True,
                         text=True, check=True).stdout
    assert re.fullmatch(r"imgnode \d+\.\d+\.\d+ \(plugin ABI 1\.5\)\n", out)
    out = subprocess.run([str(IMGNODE), "-h"], capture_output=True,
                         text=True, check=True).stdout
    assert "-t " in out and "-T " in out and "--print-defaults" in out


def test_bad_option_exits_100():
    r = subprocess.run([str(IMGNODE), "--nope"], capture_output=True,
                       text=True)
    assert r.returncode == 100
    assert "usage:" in r.stderr


def test_good_config_passes(node):
    node.write(node.base())
    r = node.run("-t")
    assert r.returncode == 0, r.stderr
    assert f"imgnode: {node.ini}: ok" in r.stderr
    assert "transport spool" in r.stderr and "storage fs" in r.stderr


# (config text after [node], expected error after "imgnode: ")
ERRORS = [
    ("[nope]\na = 1\n",
     "{ini}:6: [nope] a: unknown section"),
    ("[supervisor]\nfrobnicate = 1\n",
     "{ini}:6: [supervisor] frobnicate: unknown key"),
    ("[supervisor]\nintensity = 3\nintensity = 4\n",
     "{ini}:7: [supervisor] intensity: duplicate key (first set at line 6)"),
    ("[supervisor]\nintensity = 10001\n",
     "{ini}:6: [supervisor] intensity: 10001 is out of range (0 to 10000)"),
    ("[supervisor]\nperiod = 30 seconds\n",
     "{ini}:6: [supervisor] period:"),
    ("[node]\nlog_level = loud\n",
     "{ini}:6: [node] log_level: \"loud\" is not one of: error, warn, info, debug"),
    ("this line is not ini\n",
     "{ini}:5: syntax error"),
    ("[transport]\nplugin = carrier_pigeon\n",
     "{ini}:6: [transport] plugin: no transport plugin \"carrier_pigeon\" in "),
    ("[storage]\nmax_object = 12Q\n",
     "{ini}:6: [storage] max_object:"),
    ("[transport]\nurl = amqp://localhost\n",
     "{ini}:6: [transport] url: unknown key"),
    ("[filter.nope]\nx = 1\n",
     "{ini}:6: [filter.nope]: no filter plugin \"nope\""),
    ("[preset.avatar]\npipeline = nosuch(1)\n",
     "{ini}:6: [preset.avatar] pipeline: column 1: unknown filter \"nosuch\""),
    ("[preset.avatar]\nsize = 1\n",
     "{ini}:6: [preset.avatar] size: unknown key (a preset has only pipeline)"),
    ("[preset.Bad Name]\npipeline = x\n",
     "{ini}:6: [preset.Bad Name]: a preset name is 1-64 characters of [a-z0-9_-]"),
    ("[node]\nplugin_dir = relative/dir\n",
     "{ini}:6: [node] plugin_dir:"),
]


@pytest.mark.parametrize("text,expected", ERRORS,
                         ids=[e[1].split(": ", 2)[-1][:40] for e in ERRORS])
def test_config_errors(node, text, expected):
    # base() is 4 lines; the tested text starts on line 5
    node.write(node.base() + text)
    r = node.run("-t")
    assert r.returncode == 100
    # the one line, after the self-tests' caveat on a libvips without
    # JPEG XL (make VIPS=bundled)
    lines = [ln for ln in r.stderr.splitlines()
             if " warn node: filter jxl: " not in ln]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("imgnode: " + expected.format(ini=node.ini)), \
        lines[0]


def test_dropin_overrides_and_errors_name_the_dropin(node):
    node.write(node.base() + "[supervisor]\nintensity = 3\n")
    node.write("[supervisor]\nintensity = 7\n", "50-local.ini")
    r = node.run("-T")
    assert r.returncode == 0, r.stderr
    assert f"intensity = 7  ; {node.confd}/50-local.ini:2" in r.stdout
    node.write("[supervisor]\nintensity = many\n", "60-bad.ini")
    r = node.run("-t")
    assert r.returncode == 100
    assert r.stderr.startswith(
        f"imgnode: {node.confd}/60-bad.ini:2: [supervisor] intensity:")


def test_missing_config_file(node):
    r = node.run("-t")
    assert r.returncode == 100
    assert r.stderr == f"imgnode: cannot read {node.ini}: No such file or directory\n"


def test_effective_config_reads_back(node, tmp_path):
    node.write(node.base() + "[supervisor]\nperiod = 90s\n"
               "[storage]\nfsync = no\n")
    r = node.run("-T")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "period = 1m30s" in out or "period = 90s" in out
    # defaults are shown too, for the core and for the chosen plugins
    for key in ("shutdown_timeout = 10s", "plugin = spool", "plugin = fs",
                "fsync = no", "delivery_limit = 5"):
        assert key in out, key
    # what -T prints is a config imgnode accepts, with the same meaning
    again = tmp_path / "again"
    again.mkdir()
    (again / "imgnode.ini").write_text(out)
    r2 = subprocess.run([str(IMGNODE), "-T", "-c", str(again / "imgnode.ini")],
                        capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr
    strip = lambda s: [re.sub(r"\s*;.*", "", l) for l in s.splitlines()
                       if l and not l.startswith(";")]
    assert strip(r2.stdout) == strip(out)


def test_shipped_config_is_generated_and_valid(node):
    """etc/imgnode/imgnode.ini is exactly --print-defaults (so it shows
    every key and default), and with the build's plugin_dir it passes -t."""
    shipped = (ROOT / "etc/imgnode/imgnode.ini").read_text()
    node.write(node.base())
    r = node.run("--print-defaults")
    assert r.returncode == 0, r.stderr
    norm = lambda s: re.sub(r"(?m)^;(plugin_dir|www_dir) = .*$",
                            r";\1 = X", s)
    assert norm(r.stdout) == norm(shipped), \
        "etc/imgnode/imgnode.ini is stale: regenerate it (see README)"
    shutil.copy(ROOT / "etc/imgnode/imgnode.ini", node.ini)
    node.write(node.base(), "00-test.ini")
    r = node.run("-t")
    assert r.returncode == 0, r.stderr


def test_example_cluster_config_passes(node):
    """etc/imgnode/examples/cluster.ini (amqp + rados) is a valid drop-in;
    -t checks keys and plugins without connecting to anything."""
    node.write(node.base())
    shutil.copy(ROOT / "etc/imgnode/examples/cluster.ini",
                node.confd / "50-cluster.ini")
    r = node.run("-t")
    assert r.returncode == 0, r.stderr
    assert "transport amqp" in r.stderr and "storage rados" in r.stderr


def test_bad_plugin_in_plugin_dir_is_named(node, tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugins)
    (plugins / "junk.so").write_text("not a shared object\n")
    node.write(node.base().replace(str(PLUGINS), str(plugins)))
    r = node.run("-t")
    assert r.returncode == 100
    assert r.stderr.startswith(f"imgnode: {plugins}/junk.so: cannot load: ")


def wait_for(proc, pattern, timeout=10):
    """Reads proc's stderr lines until one matches; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if re.search(pattern, line):
            return line
        if not line and proc.poll() is not None:
            break
    pytest.fail(f"no line matching {pattern!r} from imgnode")


def test_run_reload_and_stop(node):
    port = free_port()
    node.write(node.base() + f"[ingress]\nport = {port}\n"
               f"[supervisor]\ncontrol_socket = {node.runtime}/ctl.sock\n")
    proc = subprocess.Popen([str(IMGNODE), "-c", str(node.ini)],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(proc, r"\bready\b")
        assert node.state.is_dir() and node.runtime.is_dir()
        # a broken config is refused and the node keeps running
        node.write("[supervisor]\nintensity = -1\n", "90-bad.ini")
        proc.send_signal(signal.SIGHUP)
        line = wait_for(proc, r"reload refused")
        assert "90-bad.ini:2: [supervisor] intensity" in line
        assert proc.poll() is None
        os.unlink(node.confd / "90-bad.ini")
        proc.send_signal(signal.SIGHUP)
        wait_for(proc, r"reloaded")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
