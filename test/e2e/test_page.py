"""The upload page (www/, served by the ingress at /): its static files
and their headers, what it refuses to serve (traversal, symlinks, hidden
files, listings), the two calls it makes (GET /v1/presets and GET
/v1/pipeline/check), and the page itself driven in a real headless
Chromium through the shipped nginx site, with an API key: corpus files
uploaded at once with a typed pipeline, each job followed to its end (the
photo's result shown beside the original, a truncated JPEG's failure and a
text file's refusal with their reasons), and a bad pipeline's error under
the field at its column."""
import os
import re
import shutil
import subprocess

import pytest
import requests

from nodelib import BUILD, ROOT, corpus, error_of, free_port, raw_http

WWW = ROOT / "www"
KEY = "alice:page-test-key-0123456789"
CSP = "default-src 'self'; img-src 'self' blob: data:"


def page_headers_ok(r, type_prefix):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(type_prefix), r.headers
    assert r.headers["Content-Security-Policy"].startswith(CSP)
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_page_files_need_no_key(own):
    s = own(www_dir=WWW, api_keys=KEY)
    r = s.get("/")
    page_headers_ok(r, "text/html; charset=utf-8")
    assert r.content == (WWW / "index.html").read_bytes()
    for name, kind in (("app.js", "text/javascript"),
                       ("style.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):
        r = s.get("/" + name)
        page_headers_ok(r, kind)
        assert r.content == (WWW / name).read_bytes()
    r = requests.head(s.url + "/app.js", timeout=10)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == (WWW / "app.js").stat().st_size
    # the API still wants its key
    error_of(s.get("/v1/presets"), 401, "unauthorized")
    error_of(s.get("/v1/pipeline/check", params={"pipeline": "png"}), 401,
             "unauthorized")


def test_no_page_without_www_dir(own):
    s = own(www_dir="")
    error_of(s.get("/"), 404, "not found")
    error_of(s.get("/app.js"), 404, "not found")


def test_page_serves_nothing_outside_its_files(own, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(WWW, www)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-OUTSIDE\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.txt").write_text("SECRET-OUTSIDE\n")
    (www / "link.txt").symlink_to(secret)
    (www / "linkdir").symlink_to(tmp_path / "outside")
    (www / ".hidden.txt").write_text("SECRET-HIDDEN\n")
    (www / "sub").mkdir()
    (www / "sub" / "ok.txt").write_text("fine\n")
    (www / "notes.md").write_text("SECRET-KIND\n")
    os.mkfifo(www / "fifo.txt")
    s = own(www_dir=www)
    assert s.get("/sub/ok.txt").text == "fine\n"
    bad = ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
           "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
           "//etc/passwd", "/" + str(secret), "/%2f" + str(secret)[1:],
           "/link.txt", "/linkdir/x.txt", "/.hidden.txt", "/sub/",
           "/sub", "/linkdir/", "/notes.md", "/fifo.txt", "/./index.html",
           "/sub//ok.txt", "/" + "a" * 300 + ".txt",
           "/..", "/.", "/%2e%2e%2fsecret.txt"]
    for path in bad:
        got = raw_http(s.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n".encode())
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404 "), (path, got[:300])
        assert b"SECRET" not in body and b"root:" not in body, path
    # the node is still up and serving
    assert s.get("/").status_code == 200


def test_presets_and_pipeline_check(own):
    s = own(api_keys=KEY)
    h = {"X-Api-Key": KEY.split(":", 1)[1]}
    r = s.get("/v1/presets", headers=h)
    assert r.status_code == 200 and r.headers["Content-Type"] == \
        "application/json"
    body = r.json()
    assert body["presets_only"] is False
    names = [p["name"] for p in body["presets"]]
    assert names == ["thumb", "tiny"]
    thumb = body["presets"][0]["pipeline"]
    # canonical: defaults filled in, as a job's record shows them
    assert thumb.startswith("thumbnail(") and "width=64" in thumb \
        and "|webp(" in thumb and "q=50" in thumb, thumb
    r = s.get("/v1/pipeline/check", headers=h,
              params={"pipeline": "thumbnail(64) | webp(q=50)"})
    assert r.json()["canonical"] == thumb
    r = s.get("/v1/pipeline/check", headers=h,
              params={"pipeline": "thumbnail(320) | webp"})
    assert r.status_code == 200, r.text
    assert "width=320" in r.json()["canonical"]
    assert r.json()["encoder"] is True
    r = s.get("/v1/pipeline/check", headers=h,
              params={"pipeline": "thumbnail(320)|nosuch"})
    body = error_of(r, 400, "bad pipeline")
    assert body["column"] == 16 and body["detail"].startswith("column 16:")
    r = s.get("/v1/pipeline/check", headers=h, params={"pipeline": "png\n"})
    error_of(r, 400, "bad request")
    error_of(s.get("/v1/pipeline/check", headers=h), 400, "bad request")
    assert s.get("/v1/presetsx", headers=h).status_code == 404
    only = own("only", presets_only="yes")
    assert only.get("/v1/presets").json()["presets_only"] is True
    error_of(only.get("/v1/pipeline/check", params={"pipeline": "png"}),
             400, "bad pipeline")


# ---- in a real browser ----

@pytest.fixture
def behind_nginx(own, tmp_path):
    """A node with an API key and the page, behind the shipped nginx
    site; (node, front URL)."""
    s = own(www_dir=WWW, api_keys=KEY)
    front = free_port()
    ngx = tmp_path / "nginx"
    subprocess.run(["test/lib/nginx", "start", str(ngx), str(front),
                    str(s.port)], cwd=ROOT, check=True, timeout=60)
    yield s, f"http://127.0.0.1:{front}"
    subprocess.run(["test/lib/nginx", "stop", str(ngx)], cwd=ROOT,
                   timeout=60)


def test_page_through_nginx_headers(behind_nginx):
    s, front = behind_nginx
    r = requests.get(front + "/", timeout=10)
    page_headers_ok(r, "text/html")
    r = requests.get(front + "/app.js", timeout=10)
    page_headers_ok(r, "text/javascript")
    r = requests.get(front + "/v1/presets", timeout=10,
                     headers={"X-Api-Key": KEY.split(":", 1)[1]})
    assert r.status_code == 200 and r.json()["presets"]


def corpus_file(category, name):
    root = os.environ.get("IMGNODE_CORPUS")
    path = os.path.join(root, category, name) if root else None
    if not path or not os.path.exists(path):
        path = corpus(category)[name]
    return path


def test_upload_in_chromium(browser, behind_nginx, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    s, front = behind_nginx
    wait = WebDriverWait(browser, 60, poll_frequency=0.1)
    browser.get(front + "/")
    assert browser.title == "imgnode: upload images"
    by_id = lambda i: browser.find_element(By.ID, i)  # noqa: E731
    # without the key the page says it needs one
    wait.until(lambda d: "API key" in by_id("presets-msg").text)
    by_id("key").send_keys(KEY.split(":", 1)[1] + Keys.TAB)
    wait.until(lambda d: len(by_id("preset").find_elements(
        By.TAG_NAME, "option")) == 3)
    assert "thumb: thumbnail(" in by_id("preset").text

    field = by_id("pipeline")
    field.clear()
    field.send_keys("thumbnail(320)|nosuch")
    msg = wait.until(lambda d: by_id("pipeline-msg").text.count("column")
                     and by_id("pipeline-msg"))
    assert "bad" in msg.get_attribute("class")
    lines = msg.text.split("\n")
    assert lines[0] == "thumbnail(320)|nosuch"
    assert lines[1] == " " * 15 + "^", lines
    assert lines[2].startswith("column 16: "), lines
    browser.save_screenshot(str(BUILD / "page-error.png"))

    field.send_keys(Keys.CONTROL + "a")
    field.send_keys("thumbnail(320)|webp")
    wait.until(lambda d: "ok" in by_id("pipeline-msg").get_attribute(
        "class") and "width=320" in by_id("pipeline-msg").text)

    # several at once: a photo (4096x2304), a truncated JPEG whose job
    # fails in the worker, and a file that is no image at all
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    by_id("files").send_keys("\n".join([
        corpus_file("photos", "fossa.jpg"),
        corpus_file("corrupt", "premature-end.jpg"), str(notes)]))
    over = "li.job[data-state=done], li.job[data-state=failed], " \
        "li.job[data-state=refused]"
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, over)) == 3)
    cards = {c.find_element(By.CLASS_NAME, "name").text: c
             for c in browser.find_elements(By.CSS_SELECTOR, "li.job")}
    # in the order chosen
    assert list(cards) == ["fossa.jpg", "premature-end.jpg", "notes.txt"]
    bad = cards["premature-end.jpg"]
    assert bad.get_attribute("data-state") == "failed", bad.text
    # libjpeg-turbo says "Premature end", sharp's mozjpeg "premature end"
    assert "premature end" in \
        bad.find_element(By.CLASS_NAME, "reason").text.lower()
    refused = cards["notes.txt"]
    assert refused.get_attribute("data-state") == "refused", refused.text
    assert refused.find_element(By.CLASS_NAME, "reason").text.startswith(
        "unsupported format: "), refused.text
    job = cards["fossa.jpg"]
    text = job.text
    assert job.get_attribute("data-state") == "done", text
    job_id = job.get_attribute("data-id")
    rec = s.record(job_id, headers={"X-Api-Key": KEY.split(":", 1)[1]})
    out = rec["output"]
    assert (out["format"], out["width"]) == ("webp", 320)
    assert re.search(rf"webp · 320×{out['height']} · .*\({out['bytes']:,}"
                     r" bytes\)", text), text
    assert re.search(r"jpeg · 4096×2304 · ", text), text
    # both images are shown, the result from a blob: URL it fetched
    imgs = job.find_elements(By.TAG_NAME, "img")
    assert [i.get_attribute("src")[:5] for i in imgs] == ["blob:", "blob:"]
    assert all(browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", i)
        for i in imgs)
    assert browser.execute_script(
        "return arguments[0].naturalWidth", imgs[1]) == 320
    link = job.find_element(By.CSS_SELECTOR, "a.download")
    assert link.is_displayed() and link.get_attribute(
        "download") == "fossa-imgnode.webp"
    browser.execute_script("arguments[0].scrollIntoView()", job)
    browser.save_screenshot(str(BUILD / "page.png"))
    # the key stayed in the tab's sessionStorage, nowhere else
    assert browser.execute_script(
        "return sessionStorage.getItem('imgnode-key')") == \
        KEY.split(":", 1)[1]
    assert browser.execute_script("return localStorage.length") == 0
    logs = [e for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not logs, logs


def test_preset_in_chromium(browser, behind_nginx):
    """A preset chosen from the node's list: the pipeline field shows its
    canonical pipeline, read-only, and the upload names the preset."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    s, front = behind_nginx
    wait = WebDriverWait(browser, 60, poll_frequency=0.1)
    by_id = lambda i: browser.find_element(By.ID, i)  # noqa: E731
    browser.get(front + "/")
    by_id("key").send_keys(KEY.split(":", 1)[1] + Keys.TAB)
    wait.until(lambda d: len(by_id("preset").find_elements(
        By.TAG_NAME, "option")) == 3)
    Select(by_id("preset")).select_by_value("thumb")
    field = by_id("pipeline")
    assert not field.is_enabled()
    assert field.get_attribute("value").startswith("thumbnail(") and \
        "width=64" in field.get_attribute("value")
    assert by_id("pipeline-msg").text == "Preset thumb."
    by_id("files").send_keys(corpus_file("photos", "fossa.jpg"))
    job = wait.until(lambda d: d.find_elements(
        By.CSS_SELECTOR, "li.job[data-state=done], li.job[data-state=failed]"
        ", li.job[data-state=refused]"))[0]
    assert job.get_attribute("data-state") == "done", job.text
    assert "webp · 64×36 · " in job.text, job.text
    rec = s.record(job.get_attribute("data-id"),
                   headers={"X-Api-Key": KEY.split(":", 1)[1]})
    assert rec["pipeline"] == field.get_attribute("value")
