"""README.md's "Pipelines" table against the filter plugins built: one
row per plugin and one plugin per row, and every argument a row names is
one of its plugin's (as `imgnode --filters` lists them). No node runs."""
import re
import subprocess

from nodelib import IMGNODE, ROOT, Node

CELL = re.compile(r"(?<!\\)\|")  # a cell's edge; "\|" is a | in a cell


def readme_rows():
    """name -> the names in its arguments cell, from the Pipelines table."""
    text = (ROOT / "README.md").read_text()
    start = text.index("| step | arguments | what it does |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in CELL.split(line)[1:-1]]
        ok = len(cells) == 3 and re.fullmatch(r"`[a-z0-9_]+`", cells[0]) \
            and cells[2]
        assert ok, f"README: a row not of the form | `name` | args | what |: {line}"
        # the arguments are in code spans: `a[,b]`, or `c=F`
        name, cell = cells[0].strip("`"), ",".join(
            re.findall(r"`([^`]*)`", cells[1]))
        assert name not in rows, f"README: two rows for {name}"
        names = []
        for piece in re.split(r",", cell.replace("[", "").replace("]", "")):
            piece = piece.strip()
            # a positional argument shown by its values: 90\|180\|270
            if not piece or "=" not in piece and "\\|" in piece:
                continue
            names.append(piece.split("=")[0])
        rows[name] = names
    return rows


def built_filters(tmp_path):
    """name -> its argument names, from imgnode --filters."""
    tmp_path.chmod(0o755)
    node = Node(tmp_path)
    node.write(node.base())
    r = subprocess.run([str(IMGNODE), "-c", str(node.ini), "--filters"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    filters, current = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("  "):
            filters[current].append(line.split()[0])
        else:
            current = line.split()[0]
            filters[current] = []
    return filters


def test_readme_table_matches_plugins(tmp_path):
    rows = readme_rows()
    built = built_filters(tmp_path)
    # one filter plugin per plugins/filter/*.c, each built and listed
    assert set(built) == {p.stem for p in
                          (ROOT / "plugins" / "filter").glob("*.c")}
    assert sorted(set(built) - set(rows)) == [], \
        "filter plugins without a README row"
    assert sorted(set(rows) - set(built)) == [], \
        "README rows naming no filter plugin"
    for name, names in rows.items():
        unknown = [n for n in names if n not in built[name]]
        assert not unknown, f"README row {name}: no argument {unknown}"
        assert len(names) <= len(built[name]), name


def test_filters_listing(tmp_path):
    """imgnode --filters: a line per filter, one per argument with its
    type, default or "required", bounds and help."""
    tmp_path.chmod(0o755)
    node = Node(tmp_path)
    node.write(node.base())
    out = subprocess.run([str(IMGNODE), "-c", str(node.ini), "--filters"],
                         capture_output=True, text=True, timeout=60).stdout
    assert "\nthumbnail 1.0 (filter, animations): " in out
    assert "\n  width int, required, 1 to 10000000: Width of the box" in out
    assert "\n  crop none|centre|attention|entropy = none: " in out
    assert "\nsmartcrop 1.0 (filter): " in out
    assert "\njpeg 1.0 (encoder): " in out
    assert "\n  image image, required: " in out
