"""docs/openapi.yaml against the server (issue 16, point 7).

(a) The routes: every route of the server is documented and every
documented path is routed, from the code (enum ingress_route, the route
table and the paths route() matches in core/node/ingress_http.c, the
query parameters and headers the ingress reads) and from behaviour (a
documented path and method is answered by its route, an undocumented
method is 405 with the documented methods in Allow, a path one level
below a documented one is not routed unless documented).

(b) The answers: for a set of real requests (uploads with and without
wait, polls, results, bad pipelines, unknown jobs, an oversize body, a
wrong key, bad signatures, draining...) the status is one the description
lists for the operation, and the Content-Type, the required headers and
the JSON body are the documented ones (the bodies checked with
jsonschema, Draft 2020-12, as OpenAPI 3.1 says).

One node for the module (spool + fs, one worker), with API keys, signing
keys and the page."""
import hashlib
import json
import re
import subprocess
import time
import urllib.parse

import jsonschema
import pytest
import requests
import yaml

from nodelib import (FILE, IMGNODECTL, MAX_BODY, ROOT, exchange, multipart,
                     signed, small_jpeg, start)

SPEC_PATH = ROOT / "docs" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
HTTP_C = ROOT / "core" / "node" / "ingress_http.c"
INGRESS_H = ROOT / "core" / "node" / "ingress.h"

METHODS = ("get", "head", "post", "put", "delete", "patch", "options")
ALICE, BOB = "key-alice-0123456789", "key-bob-0123456789"
KEYID, SECRET = "k1", "0123456789abcdef0123"
JOB0 = "0" * 32  # a well-formed id no job has


# ---- the description ----

def deref(obj):
    """obj, or what its $ref ("#/...") points to, followed to the end."""
    while isinstance(obj, dict) and "$ref" in obj:
        at = SPEC
        for part in obj["$ref"].lstrip("#/").split("/"):
            at = at[part.replace("~1", "/").replace("~0", "~")]
        obj = at
    return obj


def rest_of_path(path):
    """The path parameters of a documented path that take the rest of the
    path, slashes included (x-imgnode-rest-of-path: a variant's pipeline);
    any other is one segment, as OpenAPI says."""
    return {deref(p)["name"] for p in SPEC["paths"][path].get("parameters", [])
            if deref(p).get("x-imgnode-rest-of-path")}


def template(path):
    """The regex of a documented path."""
    rest = rest_of_path(path)
    return re.compile("^" + re.sub(
        r"\\\{([^}/]+)\\\}",
        lambda m: ".+" if m.group(1) in rest else "[^/]+",
        re.escape(path)) + "$")


PAGE = "/{file}"  # the page's files: any path outside /v1/, at any depth


def documented_path(path):
    """The documented path that path (concrete) is, or None: a path
    without templates before one with (OpenAPI's rule); the page's
    template takes every other path outside /v1/, deeper ones too (its
    description says so: OpenAPI's {param} is one segment)."""
    found = [p for p in SPEC["paths"] if template(p).match(path)]
    if found:
        return min(found, key=lambda p: p.count("{"))
    if PAGE in SPEC["paths"] and not (path + "/").startswith("/v1/"):
        return PAGE
    return None


def operations():
    """(path, method, operation) of every documented operation."""
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def methods_of(path):
    return {m.upper() for m in METHODS if m in SPEC["paths"][path]}


def validate(instance, schema, what):
    """instance against schema (any $ref resolved in the description)."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": SPEC["components"], "allOf": [schema]}
    try:
        jsonschema.Draft202012Validator(root).validate(instance)
    except jsonschema.ValidationError as e:
        pytest.fail(f"{what}: {e.message} (at {list(e.absolute_path)}; "
                    f"schema {list(e.absolute_schema_path)})\n"
                    f"{json.dumps(instance)[:600]}")


def media_type(content_type, content):
    """The key of content (a response's) that content_type matches:
    exactly, or by its type without parameters, or type/*."""
    bare = content_type.split(";")[0].strip().lower()
    for key in content:
        if key.lower() == content_type.lower():
            return key
    for key in content:
        k = key.lower()
        if k == bare or (k.endswith("/*") and bare.startswith(k[:-1])):
            return key
    return None


def check(method, path, status, headers, body):
    """One answer against the description: its status is listed for the
    operation, its Content-Type, required headers and body documented.
    Returns the body as JSON when it is."""
    headers = {k.lower(): v for k, v in headers.items()}
    route = urllib.parse.urlsplit(path).path
    doc = documented_path(route)
    assert doc, f"{method} {route}: no documented path matches"
    op = SPEC["paths"][doc].get(method.lower())
    if op is None:  # an undocumented method: the shared 405
        assert status == 405, (method, route, status, body[:300])
        resp = deref(SPEC["components"]["responses"]["MethodNotAllowed"])
        assert set(headers["allow"].split(", ")) == methods_of(doc)
    else:
        listed = sorted(op["responses"])
        assert str(status) in op["responses"], (
            f"{method} {route} answered {status}, which docs/openapi.yaml "
            f"does not list for {op['operationId']} ({listed}): "
            f"{body[:300]!r}")
        resp = deref(op["responses"][str(status)])
    for h, spec in resp.get("headers", {}).items():
        spec = deref(spec)
        if h.lower() in headers:
            validate(headers[h.lower()], spec["schema"],
                     f"{method} {route} {status}: header {h}")
        else:
            assert not spec.get("required"), (
                f"{method} {route} {status}: no {h} header, which "
                f"docs/openapi.yaml says it has ({sorted(headers)})")
    content = resp.get("content", {})
    if not content:
        return None
    ctype = headers.get("content-type", "")
    key = media_type(ctype, content)
    assert key, (f"{method} {route} {status}: Content-Type {ctype!r} is "
                 f"not documented ({sorted(content)})")
    if method.upper() == "HEAD":
        assert body == b"", (method, route)
        return None
    schema = content[key].get("schema", {})
    if key == "application/json":
        j = json.loads(body)
        validate(j, schema, f"{method} {route} {status}")
        return j
    if deref(schema).get("type") == "string" and key.startswith("text/"):
        validate(body.decode(), schema, f"{method} {route} {status}")
    return None


def answer(r):
    """Checks a requests answer; returns r."""
    check(r.request.method, r.request.path_url, r.status_code, r.headers,
          r.content)
    return r


def raw(port, text):
    """Sends raw request bytes, checks the one answer; (status, headers,
    body)."""
    status, headers, body, _ = exchange(port, text)
    line = text.split(b"\r\n", 1)[0].decode()
    method, target = line.split()[:2]
    check(method, target, status, headers, body)
    return status, headers, body


# ---- the code ----

def route_enum():
    text = INGRESS_H.read_text()
    body = re.search(r"enum ingress_route \{(.*?)\};", text, re.S).group(1)
    return set(re.findall(r"\b(ROUTE_\w+)\b", body))


def route_literals():
    """The paths and path pieces the code of ingress_http.c compares a
    URL with (its string literals that are paths, comments left out)."""
    code = re.sub(r"/\*.*?\*/", "", HTTP_C.read_text(), flags=re.S)
    return set(re.findall(r'"(/[A-Za-z0-9_/.-]*)"', code))


def route_table():
    """(path, ROUTE_*) of the route tables in ingress_http.c."""
    return re.findall(r'\{\s*"(/[^"]*)"\s*,\s*(ROUTE_\w+)\s*\}',
                      HTTP_C.read_text())


def ingress_sources():
    return sorted((ROOT / "core" / "node").glob("ingress*.c")) + \
        [ROOT / "core" / "node" / "auth.c"]


def query_args_read():
    """name -> file of every query argument the ingress reads."""
    found = {}
    for f in ingress_sources():
        text = f.read_text()
        for m in re.finditer(r'\barg\(\s*r\s*,\s*"([^"]+)"\s*\)', text):
            found.setdefault(m.group(1), f.name)
        for m in re.finditer(r'MHD_GET_ARGUMENT_KIND\s*,\s*"([^"]+)"', text):
            found.setdefault(m.group(1), f.name)
    return found


# HTTP's own request headers, which the description does not repeat
STANDARD_HEADERS = {"host", "content-length", "content-type",
                    "transfer-encoding", "connection", "expect",
                    "x-forwarded-for"}


def headers_read():
    """name (lowercase) -> file of every request header the ingress
    reads, by literal or by libmicrohttpd's MHD_HTTP_HEADER_* name."""
    found = {}
    for f in ingress_sources():
        text = f.read_text()
        for m in re.finditer(r'MHD_HEADER_KIND\s*,\s*(?:\n\s*)?'
                             r'(?:"([^"]+)"|MHD_HTTP_HEADER_(\w+))', text):
            name = m.group(1) or m.group(2).replace("_", "-")
            found.setdefault(name.lower(), f.name)
        for m in re.finditer(r'\bheader\(\s*r\s*,\s*(?:"([^"]+)"|'
                             r'MHD_HTTP_HEADER_(\w+))\s*\)', text):
            name = m.group(1) or m.group(2).replace("_", "-")
            found.setdefault(name.lower(), f.name)
    return found


def documented_params(where):
    out = set()
    for path, item in SPEC["paths"].items():
        for p in item.get("parameters", []):
            p = deref(p)
            if p["in"] == where:
                out.add(p["name"].lower() if where == "header"
                        else p["name"])
        for _, _, op in ((path, m, item[m]) for m in METHODS if m in item):
            for p in op.get("parameters", []):
                p = deref(p)
                if p["in"] == where:
                    out.add(p["name"].lower() if where == "header"
                            else p["name"])
    for s in SPEC["components"].get("securitySchemes", {}).values():
        if s.get("in") == where:
            out.add(s["name"].lower() if where == "header" else s["name"])
    return out


# ---- (a) the routes, from the code ----

def test_the_description_is_openapi_3_1_and_its_schemas_are_valid():
    assert SPEC["openapi"].startswith("3.1.")
    assert SPEC["info"]["version"] == (ROOT / "VERSION").read_text().strip()
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), "operationIds repeat"
    for name, schema in SPEC["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    # every $ref resolves
    def walk(x):
        if isinstance(x, dict):
            if "$ref" in x:
                deref(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(SPEC)
    for path, method, op in operations():
        assert op.get("responses"), (path, method)
        for status in op["responses"]:
            assert re.fullmatch(r"[1-5][0-9][0-9]", str(status)), status
        for p in re.findall(r"\{([^}]+)\}", path):
            params = [deref(q) for q in
                      SPEC["paths"][path].get("parameters", []) +
                      op.get("parameters", [])]
            assert any(q["in"] == "path" and q["name"] == p
                       for q in params), f"{path}: {{{p}}} undocumented"


def test_every_route_of_the_server_is_documented():
    documented = {op.get("x-imgnode-route") for _, _, op in operations()}
    for path, method, op in operations():
        assert op.get("x-imgnode-route"), (
            f"{method.upper()} {path} has no x-imgnode-route (the enum "
            f"ingress_route constant that serves it)")
    served = route_enum()
    assert served, "no enum ingress_route in core/node/ingress.h"
    for r in sorted(served - documented):
        pytest.fail(f"route {r} is served (enum ingress_route, "
                    f"core/node/ingress.h) but not documented: no "
                    f"operation in docs/openapi.yaml has "
                    f"x-imgnode-route: {r}")
    for r in sorted(documented - served):
        pytest.fail(f"docs/openapi.yaml documents x-imgnode-route: {r}, "
                    f"which enum ingress_route does not have")


def test_every_path_of_the_route_table_is_documented():
    table = route_table()
    assert ("/v1/jobs", "ROUTE_SUBMIT") in table, table
    for path, route in table:
        assert path in SPEC["paths"], (
            f"route {path} ({route}) is served (core/node/ingress_http.c) "
            f"but not documented in docs/openapi.yaml")
        ops = [SPEC["paths"][path][m] for m in METHODS
               if m in SPEC["paths"][path]]
        assert all(op["x-imgnode-route"] == route for op in ops), (
            f"{path}: the route table says {route}, docs/openapi.yaml "
            f"{[op['x-imgnode-route'] for op in ops]}")


def test_every_path_route_matches_is_documented():
    """The paths the routing compares the URL with ("/v1/jobs/",
    "/result"): each is a run of literal segments of a documented path."""
    literals = route_literals()
    assert "/v1/jobs/" in literals and "/result" in literals, literals
    docs = [[s for s in p.split("/") if s] for p in SPEC["paths"]]
    for lit in literals:
        want = [s for s in lit.split("/") if s]
        ok = any(d[i:i + len(want)] == want
                 for d in docs for i in range(len(d) - len(want) + 1))
        assert ok, (f"core/node/ingress_http.c routes "
                    f"{lit!r}: that route is served but not documented "
                    f"in docs/openapi.yaml")


def test_every_query_parameter_and_header_read_is_documented():
    args = query_args_read()
    assert {"pipeline", "preset", "wait", "keyid", "expires", "sig",
            "sha256"} <= set(args), args
    documented = documented_params("query")
    for name, f in sorted(args.items()):
        assert name in documented, (
            f"query parameter {name}= is read by the server "
            f"(core/node/{f}) but documented on no operation in "
            f"docs/openapi.yaml")
    headers = headers_read()
    assert {"x-api-key", "x-request-id"} <= set(headers), headers
    documented = documented_params("header")
    for name, f in sorted(headers.items()):
        if name in STANDARD_HEADERS:
            continue
        assert name in documented, (
            f"request header {name} is read by the server (core/node/{f}) "
            f"but documented on no operation in docs/openapi.yaml")


# ---- the node ----

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("openapi"), workers=1,
              api_keys=f"alice:{ALICE}, bob:{BOB}",
              hmac_keys=f"{KEYID}:{SECRET}", www_dir=ROOT / "www")
    yield s
    s.stop()


SAMPLE = {"file": "index.html", "variant": "thumb", "k": "0"}  # else an id


def fill(path):
    """A concrete path for a documented one."""
    return re.sub(r"\{([^}]+)\}", lambda m: SAMPLE.get(m.group(1), JOB0),
                  path)


def unrouted(r):
    """The answer to a path no route takes (not for a HEAD: no body)."""
    assert r.request.method != "HEAD"
    if r.status_code != 404:
        return False
    j = r.json()
    return j.get("error") == "not found" and \
        j.get("detail", "").startswith("no such path")


def call(server, method, path, **kw):
    kw.setdefault("headers", {"X-Api-Key": ALICE})
    kw.setdefault("timeout", 30)
    return requests.request(method, server.url + path, **kw)


# ---- (a) the routes, from behaviour ----

def test_every_documented_operation_is_routed(server):
    for path, method, op in operations():
        r = answer(call(server, method, fill(path)))
        assert r.status_code != 405, (method, path, r.text)
        if method != "head":
            assert not unrouted(r), (
                f"{method.upper()} {path} is documented but not routed: "
                f"{r.status_code} {r.text}")
        else:  # a HEAD has no body: routed if its GET is
            g = call(server, "GET", fill(path))
            assert r.status_code == g.status_code, (path, r.status_code)


def test_undocumented_methods_are_405_with_allow(server):
    for path in SPEC["paths"]:
        allowed = methods_of(path)
        for method in METHODS:
            if method.upper() in allowed:
                continue
            r = answer(call(server, method, fill(path)))
            assert r.status_code == 405, (method, path, r.status_code)
            assert set(r.headers["Allow"].split(", ")) == allowed, (
                f"{path} answers {method.upper()} 405 with Allow: "
                f"{r.headers['Allow']}, docs/openapi.yaml lists "
                f"{sorted(allowed)}")
            if method != "head":
                assert r.json()["error"] == "method not allowed"


def test_nothing_below_a_documented_path_is_routed_undocumented(server):
    """A segment more under each /v1/ path, and each path of the route
    table: answered by a route only if documented."""
    probes = {fill(p) + "/x" for p in SPEC["paths"] if p.startswith("/v1/")}
    probes |= {fill(p) + "/" + seg for p in SPEC["paths"]
               if p.startswith("/v1/") for seg in (JOB0, "0")}
    probes |= {p for p, _ in route_table()}
    probes |= {"/v1", "/v1/", "/v1/x", "/v2/jobs"}
    for path in sorted(probes):
        for method in ("GET", "POST"):
            r = call(server, method, path)
            if unrouted(r):
                continue
            assert documented_path(path), (
                f"{method} {path} is served ({r.status_code} {r.text[:200]})"
                f" but not documented in docs/openapi.yaml")
            answer(r)


# ---- (b) the answers ----

def post(server, body, pipeline=None, key=ALICE, sign=True, wait=None,
         headers=None, **extra):
    q = {}
    if pipeline is not None:
        q["pipeline"] = pipeline
        if sign:
            q.update(signed(KEYID, SECRET, "POST", "/v1/jobs",
                            "pipeline=" + pipeline))
    if wait is not None:
        q["wait"] = str(wait)
    q.update(extra)
    h = {"X-Api-Key": key} if key else {}
    h.update(headers or {})
    return answer(requests.post(server.url + "/v1/jobs", params=q,
                                data=body, headers=h, timeout=60))


def get(server, path, key=ALICE, method="GET", **kw):
    h = {"X-Api-Key": key} if key else {}
    h.update(kw.pop("headers", {}))
    return answer(requests.request(method, server.url + path, headers=h,
                                   timeout=30, **kw))


def test_upload_with_wait_poll_and_result(server):
    jpeg = small_jpeg()
    r = post(server, jpeg, "thumbnail(32)|png", wait=20)
    assert r.status_code == 200, r.text
    job = r.headers["X-Imgnode-Job"]
    rec = get(server, f"/v1/jobs/{job}").json()
    assert rec["status"] == "done" and rec["api_key_id"] == "alice"
    assert get(server, f"/v1/jobs/{job}/result").content == r.content
    get(server, f"/v1/jobs/{job}/result", method="HEAD")
    get(server, f"/v1/jobs/{job}", method="HEAD")
    # the same again: the result cache, accepted done
    again = post(server, jpeg, "thumbnail(32)|png")
    assert again.status_code == 202 and again.json()["status"] == "done"
    # another key may not read it; a signed GET may, without a key
    assert get(server, f"/v1/jobs/{job}", key=BOB).status_code == 404
    q = signed(KEYID, SECRET, "GET", f"/v1/jobs/{job}/result")
    assert get(server, f"/v1/jobs/{job}/result", key=None,
               params=q).status_code == 200


def test_upload_then_poll(server):
    r = post(server, small_jpeg(), "thumbnail(40)|webp")
    assert r.status_code == 202 and r.json()["status"] == "queued", r.text
    job = r.json()["id"]
    assert r.headers["Location"] == f"/v1/jobs/{job}"
    deadline = time.monotonic() + 30
    while True:  # 409 until done: both answers checked
        res = get(server, f"/v1/jobs/{job}/result")
        if res.status_code == 200 or time.monotonic() > deadline:
            break
        assert res.status_code == 409, res.text
        time.sleep(0.05)
    assert res.status_code == 200
    assert get(server, f"/v1/jobs/{job}").json()["output"]["mime"] == \
        "image/webp"


def test_multipart_uploads(server):
    body = multipart([(FILE, small_jpeg())])
    ctype = {"Content-Type": "multipart/form-data; boundary=xyz"}
    r = post(server, body, "thumbnail(24)|png", headers=ctype)
    assert r.status_code == 202, r.text
    # a pipeline in a form part cannot be signed: refused
    part = b'Content-Disposition: form-data; name="pipeline"\r\n'
    r = post(server, multipart([(part, b"png"), (FILE, small_jpeg())]),
             headers=ctype)
    assert r.status_code == 403, r.text


def test_refused_uploads(server, images):
    jpeg = small_jpeg()
    cases = [
        (post(server, jpeg, "nosuch(1)"), 400, "bad pipeline"),
        (post(server, jpeg), 400, "bad pipeline"),
        (post(server, jpeg, "png", wait="soon"), 400, "bad request"),
        (post(server, jpeg, "png", key="wrong"), 401, "unauthorized"),
        (post(server, jpeg, "png", key=None), 401, "unauthorized"),
        (post(server, jpeg, "png", sign=False), 403, "bad signature"),
        (post(server, jpeg, "png", sign=False, keyid=KEYID,
              expires=str(int(time.time()) + 60), sig="0" * 64), 403,
         "bad signature"),
        (post(server, jpeg, "png", sign=False, keyid=KEYID,
              expires="tomorrow", sig="0" * 64), 400, "bad request"),
        (post(server, jpeg, "png", sha256=hashlib.sha256(b"x").hexdigest()),
         403, "bad signature"),
        (post(server, b"just some text", "png"), 415, "unsupported format"),
        (post(server, jpeg, "thumbnail(24000,size=up)|png"), 422,
         "image rejected"),
        (post(server, images("premature-end.jpg"), "thumbnail(32)|png",
              wait=20), 422, "job failed"),
    ]
    for r, status, error in cases:
        assert (r.status_code, r.json()["error"]) == (status, error), \
            (r.request.url, r.text)
    # sha256= signed: the upload must be that image
    sha = hashlib.sha256(b"not the image").hexdigest()
    q = signed(KEYID, SECRET, "POST", "/v1/jobs", "pipeline=png", sha=sha)
    r = answer(requests.post(server.url + "/v1/jobs",
                             params={"pipeline": "png", **q}, data=jpeg,
                             headers={"X-Api-Key": ALICE}, timeout=60))
    assert r.status_code == 403 and "sha256" in r.json()["detail"]


def test_oversize_body_and_bad_framing(server):
    status, _, body = raw(
        server.port,
        b"POST /v1/jobs?pipeline=png HTTP/1.1\r\nHost: x\r\n"
        b"X-Api-Key: " + ALICE.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
    assert status == 413, body
    status, _, body = raw(
        server.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
    assert status == 400, body


def test_unknown_jobs_and_paths(server):
    for path in (f"/v1/jobs/{JOB0}", f"/v1/jobs/{JOB0}/result",
                 "/v1/jobs/not-an-id", "/nosuch.css", "/.hidden.html"):
        assert get(server, path).status_code == 404, path
        assert get(server, path, method="HEAD").status_code == 404, path
    assert get(server, f"/v1/jobs/{JOB0}", key="wrong").status_code == 401


def test_page_presets_and_pipeline_check(server):
    assert get(server, "/", key=None).headers["Content-Type"].startswith(
        "text/html")
    for name in ("app.js", "style.css", "favicon.svg", "index.html"):
        assert get(server, "/" + name, key=None).status_code == 200, name
    j = get(server, "/v1/presets").json()
    assert [p["name"] for p in j["presets"]] == ["thumb", "tiny"]
    assert get(server, "/v1/presets", key=None).status_code == 401
    ok = get(server, "/v1/pipeline/check",
             params={"pipeline": "thumbnail(8) | png"}).json()
    assert ok["canonical"].startswith("thumbnail(") and ok["encoder"], ok
    bad = get(server, "/v1/pipeline/check",
              params={"pipeline": "png|thumbnail(x)"})
    assert bad.status_code == 400 and bad.json()["column"] >= 1, bad.text
    assert get(server, "/v1/pipeline/check").status_code == 400


def test_health_and_request_ids(server):
    for path in ("/healthz", "/livez", "/readyz", "/metrics"):
        for method in ("GET", "HEAD"):
            r = get(server, path, key=None, method=method)
            assert r.status_code == 200, (path, r.text)
    r = get(server, "/healthz", headers={"X-Request-ID": "trace-42"})
    assert r.headers["X-Request-ID"] == "trace-42"
    r = get(server, "/healthz", headers={"X-Request-ID": "has space"})
    assert r.headers["X-Request-ID"] != "has space"


def test_draining_is_503_with_retry_after(server):
    ctl = [str(IMGNODECTL), "-c", str(server.node.ini)]
    subprocess.run(ctl + ["-t", "30", "drain"], check=True, timeout=60,
                   capture_output=True)
    try:
        r = post(server, small_jpeg(), "png")
        assert r.status_code == 503 and r.json()["error"] == "draining"
        assert r.headers["Retry-After"]
        r = get(server, "/readyz", key=None)
        assert r.status_code == 503 and r.json()["detail"] == "draining"
    finally:
        subprocess.run(ctl + ["undrain"], check=True, timeout=60,
                       capture_output=True)
    server.wait_ready()


def test_images_and_variants(server):
    q = signed(KEYID, SECRET, "POST", "/v1/images")
    r = answer(requests.post(server.url + "/v1/images", params=q,
                             data=small_jpeg(), headers={"X-Api-Key": ALICE},
                             timeout=60))
    assert r.status_code in (200, 201), r.text
    image = r.json()["id"]
    assert get(server, f"/v1/images/{image}").json()["id"] == image
    get(server, f"/v1/images/{image}", method="HEAD")
    assert get(server, f"/v1/images/{image}", key=BOB).status_code == 404
    v = get(server, f"/v1/images/{image}/thumb")
    assert v.status_code == 200 and v.headers["Content-Type"] == \
        "image/webp", v.text
    assert get(server, f"/v1/images/{image}/nosuch(1)").status_code == 400
    assert get(server, f"/v1/images/{image}/thumbnail(24000,size=up)%7Cpng"
               ).status_code == 422
    assert get(server, f"/v1/images/{JOB0}/thumb").status_code == 404
    assert get(server, f"/v1/images/{image}",
               method="DELETE").status_code == 204
    assert get(server, f"/v1/images/{image}").status_code == 404


def test_renditions(server):
    pipelines = "thumbnail(30)|png;thumbnail(20)|webp"
    r = post(server, small_jpeg(), sign=False, wait=20,
             renditions=pipelines,
             **signed(KEYID, SECRET, "POST", "/v1/jobs",
                      "pipeline=" + pipelines))
    assert r.status_code == 200, r.text
    rec = r.json()
    assert [x["mime"] for x in rec["results"]] == ["image/png", "image/webp"]
    job = rec["id"]
    assert get(server, f"/v1/jobs/{job}/result/1").headers[
        "Content-Type"] == "image/webp"
    get(server, f"/v1/jobs/{job}/result/1", method="HEAD")
    assert get(server, f"/v1/jobs/{job}/result/2").json()["error"] == \
        "unknown result"
