"""The built binaries carry the hardening the Makefile asks for (what
checksec reports): PIE executables, full RELRO (GNU_RELRO and BIND_NOW), a
non-executable stack, the stack protector, and _FORTIFY_SOURCE's checked
calls (except in a sanitizer build, which leaves FORTIFY out)."""
import re
import shutil
import subprocess

import pytest

from nodelib import BUILD, IMGNODE, PLUGINS

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None,
                                reason="readelf (binutils) is not installed")

EXECUTABLES = [IMGNODE, BUILD / "imgnodectl"]


def readelf(*args):
    return subprocess.run(["readelf", "-W", *args], capture_output=True,
                          text=True, check=True).stdout


def dynamic_symbols(path):
    return set(re.findall(r"\s(\w+)(?:@\S*)?(?:\s+\(\d+\))?$",
                          readelf("--dyn-syms", str(path)), re.M))


def plugins():
    found = sorted(PLUGINS.glob("*.so"))
    assert found, f"no plugins in {PLUGINS}"
    return found


@pytest.mark.parametrize("path", EXECUTABLES, ids=lambda p: p.name)
def test_executables_are_pie(path):
    assert re.search(r"Type:\s+DYN", readelf("-h", str(path))), \
        f"{path} is not position-independent"
    assert re.search(r"FLAGS_1.*\bPIE\b", readelf("-d", str(path))), \
        f"{path} lacks the PIE flag"


@pytest.mark.parametrize("path", EXECUTABLES + plugins(),
                         ids=lambda p: p.name)
def test_full_relro_and_nx_stack(path):
    headers = readelf("-l", str(path))
    dynamic = readelf("-d", str(path))
    assert "GNU_RELRO" in headers, f"{path}: no GNU_RELRO segment"
    assert re.search(r"\(FLAGS\).*\bBIND_NOW\b", dynamic) or \
        re.search(r"FLAGS_1.*\bNOW\b", dynamic), f"{path}: not BIND_NOW"
    stack = re.search(r"GNU_STACK.*\s(R?W?E?)\s+0x\w+$", headers, re.M)
    assert stack, f"{path}: no GNU_STACK header"
    assert "E" not in stack.group(1), f"{path}: executable stack"


@pytest.mark.parametrize("path", EXECUTABLES, ids=lambda p: p.name)
def test_stack_protector_and_fortify(path):
    symbols = dynamic_symbols(path)
    assert "__stack_chk_fail" in symbols, f"{path}: no stack protector"
    if "__asan_init" in symbols or any(s.startswith("__asan_")
                                       for s in symbols):
        pytest.skip("sanitizer build: _FORTIFY_SOURCE is left out")
    checked = sorted(s for s in symbols if re.match(r"__\w+_chk$", s)
                     and s != "__stack_chk_fail")
    assert checked, f"{path}: no _FORTIFY_SOURCE checked calls"
