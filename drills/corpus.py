"""The bad-input corpus: malformed, hostile and odd-but-valid uploads, each with the answer it should get.

Everything is made in memory from one committed photo; nothing is downloaded. Invalid input gets a
4xx with a JSON body `{"code", "type", "message"}`; odd-but-valid images get a prediction. Two answers
come from TorchServe's frontend before our handler sees the request, and are documented as such in
docs/security.md: a body over `max_request_size` (413, empty body) and a form-encoded binary body
(500 ErrorDataDecoderException, what a bare `curl --data-binary` sends).
"""

import base64
import io
import random
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image

from asl_serve.client.settings import Server
from asl_serve.handler import ts_config
from asl_serve.harness.images import decompression_bomb, encode, photo, rotated_jpeg, sixteen_bit_png

PREDICTION = "prediction"
NO_JSON = "(no JSON body)"
OCTET = "application/octet-stream"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'


def max_request_size() -> int:
    """The body size cap of config.properties, in bytes."""
    return int(ts_config.read()["max_request_size"])


@dataclass(frozen=True)
class Case:
    name: str
    status: int  # the documented answer
    kind: str  # its error "type", PREDICTION, or NO_JSON
    body: bytes | None = None
    content_type: str = OCTET  # of `body`; `json` and `files` bring their own
    json: object = None
    files: dict | None = None
    token: str | None = "inference"  # the key sent: "inference", "wrong", or None for no Authorization header
    path: str = "/predictions/asl"
    label: str | None = None  # odd-but-valid photos that keep the sign must still be recognised


@dataclass(frozen=True)
class Answer:
    case: Case
    status: int
    kind: str
    detail: str
    label: str | None
    seconds: float

    @property
    def as_documented(self) -> bool:
        right_label = self.case.label is None or self.label == self.case.label
        return (self.status, self.kind) == (self.case.status, self.case.kind) and right_label


def cases(photo_path: Path, label: str) -> list[Case]:
    """The corpus, built around one real photo of the sign `label`."""
    jpeg = photo_path.read_bytes()
    image = photo(photo_path)
    png = encode(image, "PNG")
    half = len(jpeg) // 2
    dht = jpeg.find(b"\xff\xc4")  # the first Huffman table segment
    limit = max_request_size()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr(photo_path.name, jpeg)
    animated = encode(image, "GIF", save_all=True, append_images=[Image.new("RGB", image.size, (255, 0, 0))])
    noise = random.Random(0).randbytes
    encoded = base64.b64encode(jpeg).decode()
    corner = {"x": 0.02, "y": 0.02, "size": 0.05, "angle": 0}  # a tracking hint where no hand is
    return [
        Case("empty body", 400, "EmptyImage", b""),
        Case("one byte", 415, "UnsupportedMediaType", b"\x00"),
        Case("plain text (text/plain)", 400, "BadRequest", b"hello, is this the ASL server?", "text/plain"),
        Case("HTML page (text/html)", 400, "BadRequest", b"<html><body><img src=x></body></html>", "text/html"),
        Case("JSON without data", 400, "BadRequest", json={"image": "A.jpg"}),
        Case("JSON array", 400, "BadRequest", json=[1, 2, 3]),
        Case("JSON data not base64", 400, "BadRequest", json={"data": "***not base64***"}),
        Case("JSON data base64 of text", 415, "UnsupportedMediaType", json={"data": "aGVsbG8gd29ybGQ="}),
        Case("malformed JSON", 415, "UnsupportedMediaType", b'{"data": ', "application/json"),
        Case("truncated JPEG", 422, "CorruptImage", jpeg[:half]),
        Case("JPEG with a garbled Huffman table", 422, "CorruptImage", jpeg[: dht + 4] + bytes(40) + jpeg[dht + 44 :]),
        Case("JPEG with damaged scan data", 200, PREDICTION, jpeg[:half] + bytes(256) + jpeg[half + 256 :]),
        Case("PNG with a bad IDAT CRC", 422, "CorruptImage", bad_idat_crc(png)),
        Case("PNG with a bad IHDR CRC", 415, "UnsupportedMediaType", png[:29] + bytes(4) + png[33:]),  # IHDR's CRC
        Case("SVG", 415, "UnsupportedMediaType", SVG, "image/svg+xml"),
        Case("ZIP holding the photo", 415, "UnsupportedMediaType", zipped.getvalue(), "application/zip"),
        Case("64 KiB of random bytes", 415, "UnsupportedMediaType", noise(64 * 1024)),
        Case("decompression bomb (20000x20000 PNG)", 413, "ImageTooLarge", decompression_bomb()),
        Case("random bytes exactly at max_request_size", 415, "UnsupportedMediaType", noise(limit)),
        Case("body 1 byte over max_request_size", 413, NO_JSON, noise(limit + 1)),
        Case("multipart without a file", 400, "BadRequest", files={"top_k": (None, "3")}),
        Case("multipart with an empty file", 400, "EmptyImage", files={"data": ("a.jpg", b"", "image/jpeg")}),
        Case("form-encoded JPEG (bare curl --data-binary)", 500, "ErrorDataDecoderException", jpeg,
             "application/x-www-form-urlencoded"),
        Case("no token", 400, "InvalidKeyException", jpeg, token=None),
        Case("wrong token", 400, "InvalidKeyException", jpeg, token="wrong"),
        Case("unknown model version", 404, "ModelVersionNotFoundException", jpeg, path="/predictions/asl/9.9"),
        Case("grayscale JPEG", 200, PREDICTION, encode(image.convert("L"), "JPEG")),
        Case("RGBA PNG", 200, PREDICTION, encode(image.convert("RGBA"), "PNG"), label=label),
        Case("palette PNG", 200, PREDICTION, encode(image.convert("P"), "PNG"), label=label),
        Case("16-bit grayscale PNG", 200, PREDICTION, sixteen_bit_png(image)),
        Case("CMYK JPEG", 200, PREDICTION, encode(image.convert("CMYK"), "JPEG"), label=label),
        Case("animated GIF", 200, PREDICTION, animated, label=label),
        Case("WebP", 200, PREDICTION, encode(image, "WEBP"), label=label),
        Case("BMP", 200, PREDICTION, encode(image, "BMP"), label=label),
        Case("TIFF", 200, PREDICTION, encode(image, "TIFF"), label=label),
        Case("1x1 PNG", 200, PREDICTION, encode(image.resize((1, 1)), "PNG")),
        Case("4000x4 strip", 200, PREDICTION, encode(image.resize((4000, 4)), "PNG")),
        Case("large photo (4000x3000 JPEG)", 200, PREDICTION, encode(image.resize((4000, 3000)), "JPEG", quality=90),
             label=label),
        Case("largest allowed image (6300x6300 PNG)", 200, PREDICTION,
             encode(image.resize((6300, 6300)), "PNG", compress_level=1), label=label),
        Case("EXIF-rotated JPEG", 200, PREDICTION, rotated_jpeg(image), label=label),
        Case("roi hint outside the image", 400, "BadRequest", json={"data": encoded, "roi": {**corner, "x": 5}}),
        Case("roi hint of the wrong shape", 400, "BadRequest", json={"data": encoded, "roi": [0.5, 0.5, 0.2, 0]}),
        Case("roi hint holding NaN (multipart)", 400, "BadRequest",
             files={"data": ("a.jpg", jpeg, "image/jpeg"), "roi": (None, '{"x": NaN, "y": 0, "size": 1, "angle": 0}')}),
        Case("roi hint where no hand is", 200, PREDICTION, json={"data": encoded, "roi": corner}, label=label),
    ]


def bad_idat_crc(png: bytes) -> bytes:
    """The PNG with the CRC of its first IDAT (pixel data) chunk zeroed."""
    start = png.find(b"IDAT")
    end = start + 4 + int.from_bytes(png[start - 4 : start], "big")
    return png[:end] + bytes(4) + png[end + 4 :]


def send(server: Server, case: Case) -> Answer:
    """Post one case and read what came back."""
    headers = {"Content-Type": case.content_type} if case.body is not None and case.content_type else {}
    if case.token:
        key = server.key("inference") if case.token == "inference" else case.token
        headers["Authorization"] = f"Bearer {key}"
    started = time.monotonic()
    response = requests.post(
        server.inference_url + case.path, data=case.body, json=case.json, files=case.files, headers=headers, timeout=60
    )
    seconds = time.monotonic() - started
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "label" in body:
        return Answer(case, response.status_code, PREDICTION, f"{body['label']} ({body['probability']:.2f})",
                      body["label"], seconds)
    if isinstance(body, dict) and body.get("code") == response.status_code and body.get("type") and body.get("message"):
        return Answer(case, response.status_code, body["type"], printable(body["message"][:90]), None, seconds)
    return Answer(case, response.status_code, NO_JSON, printable(response.text[:60]) or "(empty)", None, seconds)


def printable(text: str) -> str:
    """Echoed image bytes (the frontend quotes a bad form body) made safe for a Markdown table."""
    return "".join(c if c.isprintable() else "?" for c in text)


def table(answers: list[Answer]) -> str:
    """A Markdown table: each case, what it should get and what it got."""
    lines = ["| # | case | documented | answered | type | detail | ms |", "|---:|---|---|---|---|---|---:|"]
    for n, a in enumerate(answers, 1):
        mark = "" if a.as_documented else " **(not as documented)**"
        detail = a.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {n} | {a.case.name} | {a.case.status} {a.case.kind} | {a.status}{mark} | {a.kind} | "
                     f"{detail} | {a.seconds * 1000:.0f} |")
    return "\n".join(lines)
