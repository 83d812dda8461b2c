"""What writing and running the fuzz harnesses (test/fuzz) turned up in
the ingress, end to end against a real node. The parsers' cases are unit
tests (test_job, test_config)."""
import requests

from nodelib import error_of

FORM = {"Content-Type": "multipart/form-data; boundary=xyz"}


def part(name, data, filename=None):
    disposition = f'form-data; name="{name}"'
    if filename:
        disposition += f'; filename="{filename}"'
    return (b"--xyz\r\nContent-Disposition: " + disposition.encode() +
            b"\r\n\r\n" + data + b"\r\n")


def test_two_pipeline_parts_are_a_400(own, images):
    """Two pipeline parts were joined into one pipeline ("thumbnail(20)"
    and "|png" ran as thumbnail(20)|png), where two file parts are a 400."""
    s = own()
    data = images("fossa.jpg")
    body = (part("pipeline", b"thumbnail(20)") + part("pipeline", b"|png") +
            part("file", data, "a.jpg") + b"--xyz--\r\n")
    r = requests.post(s.url + "/v1/jobs", params={"wait": "20"}, data=body,
                      headers=FORM, timeout=30)
    error_of(r, 400, "bad request")
    # one pipeline part (in two pieces on the wire or not) still works
    body = (part("pipeline", b"thumbnail(20)|png") +
            part("file", data, "a.jpg") + b"--xyz--\r\n")
    r = requests.post(s.url + "/v1/jobs", params={"wait": "20"}, data=body,
                      headers=FORM, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png"
